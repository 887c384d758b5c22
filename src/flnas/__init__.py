"""flnas: FL-NAS, fairness-aware neural architecture search with a large language model as designer.

The pipeline, one subpackage each: data -> space -> designers -> evaluate -> study -> report, the Python
API on top (:mod:`flnas.api`), and the command line (``flnas``) on that::

    import flnas

    result = flnas.search(data="path/to/isic", designer="heuristic", iters=10, study="isic")
    result.best.metrics["test"]["balanced_accuracy"]
    result.export("best/")
    table = flnas.report(study="isic", out="report/")
    metrics = flnas.evaluate(result.best.spec, data="path/to/isic", epochs=5)
    audit = flnas.audit("best/predictions.csv")

The API is imported on first use (``import flnas`` stays light; ``flnas --help`` never loads torch).
``flnas.evaluate`` and ``flnas.report`` are also the subpackages of those names: calling them runs the API
function (see :mod:`flnas._facade`). docs/api.md walks through it.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "audit", "evaluate", "experiment", "report", "search"]

_API = {"search", "audit", "experiment", "baselines", "SearchResult"}
_CALLABLE_PACKAGES = {"evaluate", "report"}


def __getattr__(name: str) -> Any:
    """``flnas.search`` and friends, imported from :mod:`flnas.api` on first use."""
    import importlib

    if name in _API:
        return getattr(importlib.import_module("flnas.api"), name)
    if name in _CALLABLE_PACKAGES:
        return importlib.import_module(f"flnas.{name}")
    raise AttributeError(f"module 'flnas' has no attribute {name!r}")
