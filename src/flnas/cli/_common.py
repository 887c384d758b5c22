"""Helpers shared by the CLI modules: consoles, JSON output, and one-line errors."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def _clean(value: Any) -> Any:
    """Make a value JSON-safe: NaN/inf become null, tuples lists, numpy scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (no rich markup, so scripts can parse it)."""
    sys.stdout.write(json.dumps(_clean(obj), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def fmt(value: float | None, digits: int = 4, percent: bool = False) -> str:
    """Format a metric for a table; undefined values are shown as ``n/a``, never 0."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if percent:
        return f"{100 * value:.2f}%"
    return f"{value:.{digits}f}"


def wide_console(min_width: int = 160) -> Console:
    """The console for wide tables: the terminal as it is, or, when output is piped, one wide enough not to
    cut numbers short (rich assumes 80 columns for a pipe)."""
    if console.is_terminal:
        return console
    return Console(file=sys.stdout, width=max(console.width, min_width))
