"""Entry point: ``flnas data | metrics | space | evaluate | search | prompt | baselines | report``.

Each command lives in its own module and imports heavy libraries (torch, optuna) only when it runs,
so ``flnas --help`` stays fast. Errors a user can cause (:class:`flnas.errors.FlnasError`) end as one
line on stderr with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import sys

import click
import typer

from flnas import __version__
from flnas.cli._common import err_console
from flnas.errors import FlnasError

app = typer.Typer(
    name="flnas",
    help="FL-NAS: an LLM designs small, accurate and fair neural networks for edge devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"flnas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """FL-NAS: an LLM designs small, accurate and fair neural networks for edge devices."""


def _register() -> None:
    from flnas.cli import data, evaluate, metrics, report, search, space

    app.add_typer(data.app, name="data")
    app.add_typer(space.app, name="space")
    metrics.register(app)
    evaluate.register(app)
    search.register(app)
    report.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn user errors into one line and an exit code."""
    try:
        # without standalone mode click returns the code of `typer.Exit(n)` instead of exiting
        rc = app(args=argv, prog_name="flnas", standalone_mode=False)
    except FlnasError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(rc if isinstance(rc, int) else 0)
