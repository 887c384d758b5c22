"""``--workers N`` on the command line: each worker runs the user's command without ``--workers``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from flnas.cli._workers import worker_command


def _command_of(argv: list[str]) -> list[str]:
    app = typer.Typer()
    got: list[list[str]] = []

    @app.command("search")
    def search(
        ctx: typer.Context,
        data: Path | None = typer.Option(None, "--data"),
        iters: int | None = typer.Option(None, "--iters"),
        workers: int = typer.Option(1, "--workers"),
        no_hardware: bool = typer.Option(False, "--no-hardware"),
        class_weighted: bool | None = typer.Option(None, "--class-weighted/--no-class-weighted"),
        lr: float = typer.Option(0.001, "--lr"),
    ) -> None:
        got.append(worker_command(ctx))

    @app.command("other")
    def other() -> None:  # two commands: typer keeps "search" as a subcommand name
        """Unused."""

    app(["search", *argv], prog_name="flnas", standalone_mode=False)
    return got[0]


def test_a_worker_runs_the_options_the_user_gave_without_workers(tmp_path):
    argv = ["--data", str(tmp_path), "--workers", "3", "--iters", "4", "--no-hardware", "--no-class-weighted"]
    assert _command_of(argv) == [sys.executable, "-m", "flnas", "search", "--data", str(tmp_path), "--iters", "4",
                                 "--no-hardware", "--no-class-weighted"]


def test_options_left_at_their_defaults_are_left_to_each_worker():
    assert _command_of(["--workers", "2"]) == [sys.executable, "-m", "flnas", "search"]
    assert _command_of(["--lr", "0.01", "--class-weighted"])[4:] == ["--class-weighted", "--lr", "0.01"]
