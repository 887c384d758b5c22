"""`flnas search` (Algorithm 1, persistent and resumable) and `flnas prompt` (the next iteration's prompt).

With no arguments, `flnas search` runs the embedded default: the synthetic dataset at 32x32, the heuristic
designer, 5 iterations of a few epochs each (about 3 minutes on 2 CPU cores), in study "flnas-default".
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from flnas.api import defaults
from flnas.cli import _options as opt
from flnas.cli._common import console, err_console, fmt, print_data_warnings, wide_console


def _progress():
    """(on_epoch, state): epochs on a spinner line in a terminal, else one stderr line per epoch."""
    state: dict[str, Any] = {"label": "", "status": None}

    def on_epoch(epoch: int, logs: dict[str, Any]) -> None:
        text = (
            f"{state['label']}epoch {epoch}/{logs.get('epochs')}: "
            f"train loss {fmt(logs.get('train_loss'))}, val loss {fmt(logs.get('val_loss'))}, "
            f"val acc {fmt(logs.get('val_accuracy'), percent=True)}"
        )
        if state["status"] is not None:
            state["status"].update(escape(text))
        else:
            err_console.print(f"  {escape(text)}", highlight=False, style="dim")

    return on_epoch, state


def _top_table(ranked: list[Any], best: Any, accuracy: str, n: int = 5) -> Any:
    from rich.table import Table

    title = f"top candidates (validation metrics, best first, * = OptDNN; {len(ranked)} ok)"
    table = Table(title=title, title_justify="left")
    accs = ("bal. acc", "val acc") if accuracy == "balanced" else ("val acc", "bal. acc")
    columns = (
        "trial",
        "iter",
        "designer",
        *accs,
        "unfairness",
        "EODD",
        "EOPP1",
        "params",
        "latency (s)",
    )
    for col in columns:
        table.add_column(col, justify="left" if col == "designer" else "right")
    for c in ranked[:n]:
        val = (c.metrics or {}).get("val") or {}
        params = (c.metrics or {}).get("params") or 0
        mark = " *" if best is not None and c.number == best.number else ""
        keys = ("balanced_accuracy", "accuracy") if accuracy == "balanced" else ("accuracy", "balanced_accuracy")
        table.add_row(
            f"#{c.number}{mark}",
            str(c.iteration),
            c.designer,
            *(fmt(val.get(key), percent=True) for key in keys),
            fmt(val.get("unfairness")),
            fmt(val.get("eodd")),
            fmt(val.get("eopp1")),
            f"{int(params):,}",
            fmt((c.metrics or {}).get("latency_s"), 6),
        )
    return table


def _export_best(assembly: Any, best: Any, out: Path) -> str:
    """Copy the chosen candidate's files to out/best (retrain with the study's seed if they are gone)."""
    from flnas.api.assembly import export_best

    exported = export_best(assembly, best, out / "best")
    how = " retrained with the study's seed and" if exported.source == "retrained" else ""
    return f"OptDNN (trial #{best.number}){how} exported to {exported.target}"


def _storage_guarded(run: Callable[..., None]) -> Callable[..., None]:
    """A full disk or a damaged study database while ``run`` works ends in one sentence (StudyError)."""

    @functools.wraps(run)
    def guarded(**kwargs: Any) -> None:
        from flnas.study.storage import storage_errors, storage_url

        with storage_errors(storage_url(kwargs.get("storage"))):
            run(**kwargs)

    return guarded


def _launch(ctx: typer.Context, workers: int, options: dict[str, Any]) -> None:
    """``--workers N``: N processes of this command (without ``--workers``) on the study, one progress view."""
    from flnas.cli._workers import worker_command
    from flnas.study.launch import launch_search

    study = options["study"] or (defaults.STUDY_EMBEDDED if options["data"] is None else defaults.STUDY)
    result = launch_search(
        worker_command(ctx),
        workers,
        device=options["device"],
        study_name=study,
        storage=options["storage"],
        designer=options["designer"],
        iters=options["iters"],
        k=options["candidates"],
        out=options["out"] or Path("runs") / study,
        show=lambda m: console.print(m, markup=False, highlight=False, soft_wrap=True),
    )
    if not result.complete:
        raise typer.Exit(1)


@_storage_guarded
def _run(*, storage: str | None, **options: Any) -> None:
    """Plan the search (study, setup, designer), show it, run Algorithm 1, show and export the result.

    Several of these commands on one study are workers of one search (see :mod:`flnas.study.workers`).
    """
    from flnas.api.assembly import prompt_sizes, usage_totals
    from flnas.api.searching import plan_search, run_plan
    from flnas.designers.optmetrics import format_opt_metrics
    from flnas.records import rank
    from flnas.study.storage import storage_url

    plan = plan_search(
        storage=storage,
        progress=True,
        log=lambda m: console.print(m, markup=False, highlight=False),
        note=lambda m: err_console.print(f"[yellow]note:[/] {m}"),
        **options,
    )
    assembly, study, setup = plan.assembly, plan.assembly.study, plan.assembly.setup
    accuracy, selection, tolerance = assembly.accuracy, plan.selection, plan.tolerance
    what = "resuming study" if assembly.resumed else "new study"
    used = ": its stored setup is used" if assembly.resumed else ""
    where = f"{assembly.name!r} in {storage_url(storage)}"
    console.print(f"{what} {where}{used} ({_describe(setup)})", highlight=False, markup=False)
    print_data_warnings(assembly.data.summary)
    if assembly.data.synthetic:
        console.print(
            "[bold yellow]synthetic data:[/] the embedded synthetic set, not ISIC images; the "
            "numbers only show that the pipeline works",
            highlight=False,
            soft_wrap=True,
        )
    on_epoch, progress = _progress()

    def log(message: str) -> None:
        console.print(message, markup=False, highlight=False, soft_wrap=True)
        if message.startswith("iteration "):
            progress["label"] = message.split(":")[0] + ": "

    def on_candidate(candidate: Any, evaluation: Any) -> None:
        if candidate.status == "ok":
            console.print(
                "  " + format_opt_metrics(candidate.metrics),
                markup=False,
                highlight=False,
                soft_wrap=True,
                style="dim",
            )

    use_status = console.is_terminal
    with console.status("starting") if use_status else contextlib.nullcontext() as status:
        progress["status"] = status
        result = run_plan(plan, log=log, on_epoch=on_epoch, on_candidate=on_candidate)
    ranked = rank(result.candidates, rule=selection, tolerance=tolerance, accuracy=accuracy)
    degenerate = sum(1 for c in result.candidates if c.status == "degenerate")
    console.print(
        f"{result.evaluated}/{result.target} evaluated candidates; {len(result.new)} new trial(s) in this run"
        + (f"; {degenerate} degenerate (never selected)" if degenerate else "")
        + f"; selection rule {selection!r} (tolerance {tolerance}, {accuracy} accuracy)",
        highlight=False,
    )
    if ranked:
        wide = wide_console(120)
        wide.print(_top_table(ranked, result.best, accuracy))
    best = result.best
    if best is None:
        why = " (every evaluated one was degenerate)" if degenerate else ""
        err_console.print(f"no candidate was evaluated successfully{why}; nothing to export")
        sys.exit(1)
    console.print(
        f"[bold]OptDNN[/]: trial #{best.number} (iteration {best.iteration}, {best.designer})",
        highlight=False,
    )
    console.print(format_opt_metrics(best.metrics), markup=False, highlight=False, soft_wrap=True)
    if result.files_error:
        err_console.print(f"[bold red]error:[/] {escape(result.files_error)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    console.print(_export_best(assembly, best, plan.out), markup=False, highlight=False, soft_wrap=True)
    usage = usage_totals(study)
    if usage.get("total_tokens") or usage.get("calls"):
        console.print(
            "token usage (whole study): " + ", ".join(f"{key} {v:,}" for key, v in usage.items()),
            highlight=False,
        )
    sizes = prompt_sizes(study)
    if sizes:
        console.print(
            "prompt size in tokens per iteration: " + ", ".join(f"{i}: {n:,}" for i, n in sizes.items()),
            highlight=False,
            soft_wrap=True,
        )
    if result.stopped:
        sys.exit(1)


def _describe(setup: dict[str, Any]) -> str:
    train = setup.get("train") or {}
    data = setup.get("data") or "embedded synthetic set"
    from flnas.study.setup import accuracy_from_setup, describe_training

    return (
        f"data {data}, subset {setup.get('subset')}, image size {setup.get('image_size')}, seed "
        f"{setup.get('seed')}, epochs {train.get('epochs')}, patience {train.get('patience')}, "
        f"env {setup.get('env')}, {accuracy_from_setup(setup)} accuracy, {describe_training(train)}"
    )


def register(app: typer.Typer) -> None:
    """Add `flnas search` and `flnas prompt` to the root app."""

    @app.command("search")
    def search(
        ctx: typer.Context,
        data: Path | None = typer.Option(
            None,
            "--data",
            help="Dataset card (YAML/JSON), folder with flnas.yaml, or ISIC 2019 folder; omitted: the embedded "
            "synthetic default (5 iterations at 32x32).",
        ),
        subset: opt.Subset = None,
        designer: str | None = typer.Option(
            None,
            "--designer",
            help="llm | heuristic | random | evolution | fahana-rl | tpe | nsga2 | gp "
            "(default: llm when an endpoint is set, else heuristic).",
        ),
        iters: int | None = typer.Option(
            None,
            "--iters",
            min=1,
            help="IterMax: iterations with an evaluated candidate (default 10; 5 for the embedded default).",
        ),
        candidates: opt.Candidates = defaults.CANDIDATES,
        env: opt.Env = None,
        choices_path: opt.ChoicesPath = None,
        study_name: str | None = typer.Option(
            None, "--study", help="Study name (flnas; flnas-default for the embedded default)."
        ),
        storage: opt.Storage = None,
        out: Path | None = typer.Option(
            None, "--out", help="Run folder: candidates/<trial>/ and best/ (default ./runs/<study>)."
        ),
        selection: opt.Selection = defaults.SELECTION,
        tolerance: opt.Tolerance = defaults.TOLERANCE,
        accuracy: opt.Accuracy = None,
        init_spec: Path | None = typer.Option(None, "--init-spec", help="First architecture (heuristic)."),
        epochs: opt.Epochs = None,
        patience: opt.Patience = None,
        batch_size: opt.BatchSize = None,
        lr: opt.Lr = None,
        image_size: int | None = typer.Option(
            None, "--image-size", min=8, max=1024, help="Input size (64; 32 embedded)."
        ),
        seed: int | None = typer.Option(
            None, "--seed", min=0, max=opt.SEED_MAX, help="Seed: split, training, designers (0)."
        ),
        device: opt.Device = None,
        cache_dir: opt.CacheDir = None,
        max_train_seconds: opt.MaxTrainSeconds = None,
        no_hardware: opt.NoHardware = False,
        class_weighted: opt.ClassWeighted = None,
        precision: opt.Precision = None,
        channels_last: opt.ChannelsLast = None,
        llm_model: opt.LlmModel = None,
        llm_base_url: opt.LlmBaseUrl = None,
        llm_temperature: opt.LlmTemperature = None,
        llm_timeout: opt.LlmTimeout = None,
        llm_max_retries: opt.LlmMaxRetries = None,
        llm_structured: opt.LlmStructured = None,
        prompt_template: opt.PromptTemplate = None,
        heartbeat_interval: opt.HeartbeatInterval = defaults.HEARTBEAT_INTERVAL,
        grace_period: opt.GracePeriod = defaults.GRACE_PERIOD,
        workers: opt.Workers = 1,
    ) -> None:
        """Run (or resume) the FL-NAS search and export the chosen OptDNN.

        Several of these commands with the same arguments and --storage (on one machine or many) are
        workers of one search: together they evaluate iters x candidates, none twice (docs/search.md).

        Exit status: 0 when IterMax candidates were evaluated; 1 when the run stopped early (its designer
        calls ran out, e.g. the LLM endpoint kept failing; run it again to continue) or no candidate could
        be evaluated, or (with --workers) a worker failed; 2 for a usage or input error.
        """
        options = dict(locals())  # flnas.search's keyword arguments, which are these options' names
        options["choices"], options["study"] = options.pop("choices_path"), options.pop("study_name")
        del options["ctx"], options["workers"]
        if designer is None:
            from flnas.api.defaults import default_designer

            options["designer"], reason = default_designer(llm_base_url, embedded=data is None)
            console.print(f"designer: {options['designer']} ({reason})", highlight=False, soft_wrap=True)
        if workers > 1:
            _launch(ctx, workers, options)
        else:
            _run(**options)

    @app.command("prompt")
    def prompt(
        study_name: str = typer.Option(..., "--study", help="Study name."),
        storage: opt.Storage = None,
        prompt_template: opt.PromptTemplate = None,
        candidates: opt.Candidates = defaults.CANDIDATES,
    ) -> None:
        """Print the prompt the next search iteration would send to the LLM.

        It is built from what the loop would give the study's designer: its own candidates and best so far.
        """
        from flnas.api.assembly import load_assembly, next_prompt

        text = next_prompt(load_assembly(study_name, storage), template=prompt_template, k=candidates)
        sys.stdout.write(text + "\n")
