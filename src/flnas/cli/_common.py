"""Helpers shared by the CLI modules: consoles, JSON output, and one-line errors."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from rich.console import Console

from flnas.jsonsafe import json_safe

console = Console()
err_console = Console(stderr=True)


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (no rich markup, so scripts can parse it)."""
    sys.stdout.write(json.dumps(json_safe(obj), indent=2, sort_keys=False) + "\n")
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


def print_data_warnings(summary: dict[str, Any]) -> None:
    """The data summary's warnings (one class, no demographics, a subset larger than the data) on stderr."""
    for warning in summary.get("warnings") or ():
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, markup=True, soft_wrap=True)
