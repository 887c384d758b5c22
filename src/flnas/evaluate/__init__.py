"""Evaluator (paper section III-E): train each candidate under one TrainConfig and measure it.

Public API: :class:`Evaluator`, :class:`EvalResult`, :class:`TrainConfig` and :func:`save_artifacts`.
Fairness and hardware metrics live in :mod:`flnas.evaluate.fairness` and :mod:`flnas.evaluate.hardware`;
the paper's optMetrics line (how an evaluation is shown to the LLM) in :mod:`flnas.designers.optmetrics`.
"""

from __future__ import annotations

from flnas.evaluate.artifacts import save_artifacts
from flnas.evaluate.config import TrainConfig
from flnas.evaluate.evaluator import EvalResult, Evaluator

__all__ = ["EvalResult", "Evaluator", "TrainConfig", "save_artifacts"]
