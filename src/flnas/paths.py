"""Where flnas keeps files it can rebuild (decoded-image cache, embedded synthetic dataset)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$FLNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/flnas``, else ``~/.cache/flnas``."""
    if env := os.environ.get("FLNAS_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flnas"
