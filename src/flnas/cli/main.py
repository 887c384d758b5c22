"""Entry point: ``flnas data | metrics | space | evaluate | search | prompt | export | baselines | report | llm``.

Each command lives in its own module and imports heavy libraries (torch, optuna) only when it runs,
so ``flnas --help`` stays fast. Errors a user can cause (:class:`flnas.errors.FlnasError`) end as one
line on stderr with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import sys

import typer
import typer.main

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
    from flnas.cli import data, evaluate, export, llm, metrics, report, search, space

    app.add_typer(data.app, name="data")
    app.add_typer(space.app, name="space")
    app.add_typer(llm.app, name="llm")
    metrics.register(app)
    evaluate.register(app)
    search.register(app)
    export.register(app)
    report.register(app)


_register()


def _click_exception() -> type[Exception]:
    """The ``ClickException`` class of the click copy the installed typer raises.

    typer up to 0.24 uses the ``click`` package; later releases carry their own copy (``typer._click``),
    whose exceptions the ``click`` package's classes do not catch. ``typer.BadParameter`` is public in both
    and derives from the right ``ClickException``, so that class is found through it.
    """
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


_ClickException = _click_exception()


def _context_for(args: list[str]) -> object:
    """A click context for the deepest command that ``args`` names (for its usage line)."""
    command = typer.main.get_command(app)
    ctx = command.context_class(command, info_name="flnas", **command.context_settings)
    for token in args:
        sub = (getattr(command, "commands", None) or {}).get(token)
        if sub is None:
            break
        command = sub
        ctx = command.context_class(command, info_name=token, parent=ctx, **command.context_settings)
    return ctx


def _show_usage_error(exc: Exception, args: list[str]) -> None:
    """Print a usage error as click does: the usage line, a hint, the message.

    Some typer releases raise a few usage errors ("Option '--json' does not take a value") without their
    context, which would print the message alone; the context is rebuilt from the arguments then.
    """
    if getattr(exc, "ctx", False) is None:
        try:
            exc.ctx = _context_for(args)  # type: ignore[attr-defined]
            exc.cmd = exc.ctx.command  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - the message alone is still a clear answer
            exc.ctx = None  # type: ignore[attr-defined]
    exc.show()  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn user errors into one line and an exit code."""
    try:
        # without standalone mode click returns the code of `typer.Exit(n)` instead of exiting
        rc = app(args=argv, prog_name="flnas", standalone_mode=False)
    except FlnasError as exc:
        from rich.markup import escape

        # escaped: a message may hold brackets that are not markup, e.g. pip install 'flnas[local-llm]'
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except _ClickException as exc:  # usage errors: the usage line, the message, exit 2
        _show_usage_error(exc, list(sys.argv[1:] if argv is None else argv))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # the study's database failing under any command (full disk, damaged file)
        problem = _storage_problem(exc)
        if problem is None:
            raise
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(problem)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    sys.exit(rc if isinstance(rc, int) else 0)


def _storage_problem(exc: BaseException) -> str | None:
    """One sentence when ``exc`` comes from the study's database (optuna, SQLAlchemy, sqlite3), else None."""
    seen, current = 0, exc
    while current is not None and seen < 10:
        module = type(current).__module__
        if module.startswith(("sqlalchemy", "sqlite3", "optuna.exceptions", "_sqlite3")):
            from flnas.study.storage import storage_problem

            lines = str(current).strip().splitlines()
            detail = lines[0] if lines else type(current).__name__
            return storage_problem(exc, None) or f"the study database failed ({detail})"
        current, seen = current.__cause__ or current.__context__, seen + 1
    return None
