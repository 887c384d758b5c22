"""The Python API: ``flnas.search``, ``flnas.evaluate``, ``flnas.audit``, ``flnas.report``, ``flnas.experiment``.

In the manner of ``optuna.create_study(...).optimize(...)`` and ``timm.create_model(...)``: keyword arguments
with the command line's names and defaults (:mod:`flnas.api.defaults`), nothing printed unless asked
(``progress=True`` or a ``callback``), and errors a user can cause raised as :mod:`flnas.errors` types with
the one-sentence messages the CLI prints. Every search, here and on the command line, is built by
:mod:`flnas.api.assembly`. The submodules are imported on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SearchResult", "audit", "baselines", "evaluate", "experiment", "report", "search"]

_WHERE = {
    "search": "flnas.api.searching",
    "SearchResult": "flnas.api.searching",
    "evaluate": "flnas.api.evaluation",
    "audit": "flnas.api.evaluation",
    "report": "flnas.api.experiments",
    "baselines": "flnas.api.experiments",
    "experiment": "flnas.api.experiments",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'flnas.api' has no attribute {name!r}")
