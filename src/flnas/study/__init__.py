"""Algorithm 1 over an Optuna study: storage layout, history, the loop, workers, and setup helpers.

Import the submodules (``flnas.study.loop``, ``.history``, ``.recording``, ``.setup``, ``.storage``,
``.baselines``, ...); this package module stays light so ``flnas --help`` does not import optuna or torch.
GetBestMetrics, the rule that chooses the best candidate, is :mod:`flnas.records` (designers rank with it too).
"""

from __future__ import annotations

__all__ = [
    "baselines",
    "degenerate",
    "export",
    "history",
    "loop",
    "recording",
    "repeats",
    "setup",
    "storage",
    "workers",
]
