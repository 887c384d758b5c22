"""Algorithm 1 over an Optuna study: storage layout, history, GetBestMetrics, the loop, and setup helpers.

Import the submodules (``flnas.study.loop``, ``.selection``, ``.history``, ``.setup``, ``.storage``);
this package module stays light so ``flnas --help`` does not import optuna or torch.
"""

from __future__ import annotations

__all__ = ["history", "loop", "selection", "setup", "storage"]
