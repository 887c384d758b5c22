"""``--workers N`` on the command line: each worker runs the user's command without ``--workers``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
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


@pytest.mark.slow
def test_flnas_search_workers_runs_two_searches_on_one_study_with_one_progress_view(tmp_path, capsys):
    from flnas.cli.main import main
    from flnas.records import is_evaluated
    from flnas.study.history import load_candidates
    from flnas.study.storage import open_study

    db, out = tmp_path / "w.db", tmp_path / "run"
    argv = ["search", "--workers", "2", "--designer", "random", "--iters", "3", "--image-size", "16", "--epochs", "1",
            "--no-hardware", "--study", "w", "--storage", str(db), "--out", str(out), "--device", "cpu"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    printed = capsys.readouterr().out
    assert exc.value.code == 0, printed
    evaluated = [c for c in load_candidates(open_study("w", str(db), create=False)) if is_evaluated(c)]
    assert sorted(c.iteration for c in evaluated) == [1, 2, 3]
    finished = [line for line in printed.splitlines() if line.startswith("[") and "] trial #" in line]
    assert len(finished) == 3, printed  # one line per finished candidate, from the study
    assert "3/3 evaluated candidates; 2 of 2 worker(s) finished cleanly" in printed
    logs = sorted(p.name for p in (out / "workers").iterdir())
    assert logs == ["worker-0.log", "worker-1.log"]


@pytest.mark.slow
def test_an_experiment_with_workers_runs_each_search_as_worker_processes(tmp_path):
    import flnas
    from flnas.study.storage import get_search_settings, open_study

    result = flnas.experiment(workers=2, designer="random", iters=2, image_size=16, epochs=1, no_hardware=True,
                              models="resnet18", out=tmp_path / "exp", formats="md", repeats=0)
    assert (result.search.evaluated, result.search.stopped) == (2, None)
    assert result.fahana is not None and result.fahana.evaluated == 2
    assert {c.designer for c in result.search.candidates} == {"random"}
    for designer in ("random", "fahana-rl"):
        logs = sorted(p.name for p in (tmp_path / "exp" / "search" / f"workers-{designer}").iterdir())
        assert logs == ["worker-0.log", "worker-1.log"]
    study = open_study("experiment", f"sqlite:///{tmp_path / 'exp' / 'flnas.db'}", create=False)
    assert get_search_settings(study)["designer"] == "random"  # FaHaNa's search leaves the settings as they were
    assert (tmp_path / "exp" / "report").is_dir()
