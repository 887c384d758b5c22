"""`flnas space ...` (placeholder until its owner fills it in)."""

from __future__ import annotations

import typer

app = typer.Typer(help="space commands", no_args_is_help=True)
