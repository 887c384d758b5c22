"""Usage errors on every command: a misspelled option and a bad value end in the usage line and exit 2.

typer 0.25+ raises the exceptions of its own copy of click (``typer._click``), which the ``click``
package's classes do not catch; every usage error then became a traceback. These tests walk the real
command tree, so a new command or subcommand fails here until it has its two cases.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from flnas.cli.main import app, main

# command path -> (a misspelled option or subcommand, arguments with a value the option parser rejects)
CASES: dict[str, tuple[str, list[str]]] = {
    "": ("--verison", ["--version=yes"]),
    "metrics": ("--predictons", ["--json=maybe"]),
    "evaluate": ("--epcohs", ["--epochs", "abc"]),
    "search": ("--itres", ["--iters", "abc"]),
    "prompt": ("--stduy", ["--candidates", "many"]),
    "export": ("--trail", ["--trial", "seven"]),
    "report": ("--reapets", ["--repeats", "abc"]),
    "baselines": ("--modles", ["--epochs", "1.5"]),
    "experiment": ("--itres", ["--iters", "x"]),
    "data": ("sumary", ["summary", "--subset", "all"]),
    "data summary": ("--sbuset", ["--subset", "many"]),
    "data prepare": ("--imgae-size", ["--image-size", "big"]),
    "data synth": ("--seeed", ["--n", "x"]),
    "data card": ("--jsno", ["one", "two"]),
    "space": ("valdiate", ["params", "--image-size", "x"]),
    "space schema": ("--jsno", ["extra"]),
    "space example": ("--jsno", ["extra"]),
    "space choices": ("--choises", ["--choices"]),
    "space validate": ("--image-szie", ["--num-classes", "two"]),
    "space to-pytorch": ("--class-nmae", ["--num-classes", "x"]),
    "space params": ("--image-szie", ["--image-size", "x"]),
    "llm": ("serv", ["serve", "--port", "x"]),
    "llm serve": ("--prot", ["--port", "http"]),
}


def command_paths() -> list[str]:
    """Every command and group of the CLI as it is registered ("" is the root)."""
    paths = []

    def walk(command, path: list[str]) -> None:
        paths.append(" ".join(path))
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_every_command_has_its_usage_cases():
    assert sorted(CASES) == sorted(command_paths())


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Were a usage error ever missed, the command would run: keep whatever it writes out of the repo."""
    monkeypatch.chdir(tmp_path)


def run(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out + captured.err


def _usage_line(path: str) -> str:
    return f"Usage: flnas {path} [OPTIONS]" if path else "Usage: flnas [OPTIONS]"


@pytest.mark.parametrize("path", sorted(CASES), ids=lambda p: p or "root")
def test_misspelled_option_prints_the_usage_and_exits_2(path, capsys):
    typo, _ = CASES[path]
    code, output = run([*path.split(), typo], capsys)
    assert code == 2, output
    assert _usage_line(path) in output and "Traceback" not in output
    assert typo in output  # the message names what was not understood


@pytest.mark.parametrize("path", sorted(CASES), ids=lambda p: p or "root")
def test_bad_value_prints_the_usage_and_exits_2(path, capsys):
    _, bad = CASES[path]
    code, output = run([*path.split(), *bad], capsys)
    assert code == 2, output
    assert "Usage: flnas" in output and "Error:" in output and "Traceback" not in output


def test_the_installed_entry_point_prints_no_traceback(tmp_path):
    """The real process (not the in-process runner): `flnas search --iters abc` is a usage error."""
    done = subprocess.run(
        [sys.executable, "-m", "flnas", "search", "--iters", "abc"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 2
    assert "Usage: flnas search [OPTIONS]" in done.stderr and "'--iters'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
