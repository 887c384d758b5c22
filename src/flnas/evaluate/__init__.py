"""Evaluator (paper section III-E): train each candidate under one TrainConfig and measure it.

Public API: :class:`Evaluator`, :class:`EvalResult`, :class:`TrainConfig`, :func:`format_opt_metrics`
(the paper's optMetrics line) and :func:`save_artifacts`. Fairness and hardware metrics live in
:mod:`flnas.evaluate.fairness` and :mod:`flnas.evaluate.hardware`.
"""

from __future__ import annotations

from flnas.evaluate.artifacts import save_artifacts
from flnas.evaluate.config import TrainConfig
from flnas.evaluate.evaluator import EvalResult, Evaluator
from flnas.evaluate.optmetrics import format_opt_metrics

__all__ = ["EvalResult", "Evaluator", "TrainConfig", "format_opt_metrics", "save_artifacts"]
