"""Evaluator (paper section III-E): train each candidate under one EvaluatorConfig and measure it.

Public API: :class:`Evaluator`, :class:`EvalResult`, :class:`EvaluatorConfig` and :func:`save_artifacts`.
Fairness and hardware metrics live in :mod:`flnas.evaluate.fairness` and :mod:`flnas.evaluate.hardware`;
the paper's optMetrics line (how an evaluation is shown to the LLM) in :mod:`flnas.designers.optmetrics`.
"""

from __future__ import annotations

from flnas._facade import make_callable
from flnas.evaluate.artifacts import save_artifacts
from flnas.evaluate.config import EvaluatorConfig
from flnas.evaluate.evaluator import EvalResult, Evaluator

__all__ = ["EvalResult", "Evaluator", "EvaluatorConfig", "save_artifacts"]

# `flnas.evaluate(...)` is the API function (flnas._facade explains why the package is callable)
make_callable(__name__, "flnas.api.evaluation:evaluate")
