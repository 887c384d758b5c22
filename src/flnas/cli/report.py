"""`flnas baselines`, `flnas report` and `flnas experiment` (the paper's section IV in one command).

All three work on one study: ``baselines`` trains the timm baselines under the study's evaluator settings,
``report`` writes Table I and the plots, and ``experiment`` runs subset + baselines + search (+ FaHaNa's RL
search at the same budget) + report unattended. A study that exists is always reused with its own setup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flnas.api import defaults
from flnas.api.options import epoch_logger
from flnas.cli import _options as opt
from flnas.cli._common import console, err_console, print_data_warnings, wide_console

# options that `report` and `experiment` (and `baselines`) share
Models = Annotated[str, typer.Option("--models", help="Baselines.")]
Repeats = Annotated[
    int, typer.Option("--repeats", min=0, help="Re-train Table I's rows with R more seeds (mean ± std).")
]
Top = Annotated[int, typer.Option("--top", min=1, help="How many searched models in Table I (Search-1..k).")]
Formats = Annotated[str, typer.Option("--formats", help="Comma-separated report outputs.")]


def _log(message: str) -> None:
    err_console.print(message, highlight=False, markup=False, soft_wrap=True)


_on_epoch = epoch_logger(_log)  # one line per epoch on stderr


def _open(study_name: str, storage: str | None, *, train: dict[str, Any], **flags: Any) -> Any:
    """The study (its own setup, or a new one from these options), its data's warnings printed."""
    from flnas.api.experiments import open_for_report

    assembly = open_for_report(study_name, storage, train=train, log=_log, progress=True, **flags)
    print_data_warnings(assembly.data.summary)
    return assembly


def register(app: typer.Typer) -> None:
    """Add `flnas baselines`, `flnas report` and `flnas experiment` to the root app."""

    @app.command("report")
    def report(
        study_name: str = typer.Option(..., "--study", help="Study to report."),
        storage: opt.Storage = None,
        out: Path = typer.Option(
            ..., "--out", help="Directory for table.md/.csv/.tex, report.html and PNGs."
        ),
        repeats: Repeats = defaults.REPEATS,
        top: Top = defaults.TOP,
        formats: Formats = defaults.FORMATS,
        selection: str | None = typer.Option(
            None, "--selection", help="Selection rule (default: the study's)."
        ),
        tolerance: float | None = typer.Option(None, "--tolerance", help="Accuracy tolerance of the rule."),
    ) -> None:
        """Write Table I (baselines vs Search-1..k on the test split) and the plots for a study."""
        from flnas.api.experiments import write_report
        from flnas.study.storage import open_study

        study = open_study(study_name, storage, create=False)
        _table, written = write_report(
            study,
            out,
            top=top,
            repeats=repeats,
            formats=_formats(formats),
            rule=selection,
            tolerance=tolerance,
            log=_log,
            console=wide_console(),
        )
        for name, path in written.items():
            _log(f"wrote {name}: {path}")

    @app.command("baselines")
    def baselines(
        data: opt.Data = None,
        subset: opt.Subset = None,
        models: Models = defaults.MODELS,
        study_name: str = typer.Option(
            defaults.BASELINES_STUDY, "--study", help="Study to record them in (its setup is reused)."
        ),
        storage: opt.Storage = None,
        out: Path | None = typer.Option(None, "--out", help="Keep each baseline's artifacts here."),
        epochs: opt.Epochs = None,
        patience: opt.Patience = None,
        batch_size: opt.BatchSize = None,
        lr: opt.Lr = None,
        image_size: opt.ImageSize = None,
        seed: opt.Seed = None,
        device: opt.Device = None,
        cache_dir: opt.CacheDir = None,
        max_train_seconds: opt.MaxTrainSeconds = None,
        no_hardware: opt.NoHardware = False,
        class_weighted: opt.ClassWeighted = None,
        precision: opt.Precision = None,
        channels_last: opt.ChannelsLast = None,
        accuracy: opt.Accuracy = None,
        heartbeat_interval: opt.HeartbeatInterval = defaults.HEARTBEAT_INTERVAL,
        grace_period: opt.GracePeriod = defaults.GRACE_PERIOD,
    ) -> None:
        """Train ResNet-18/34 and MobileNetV1/V2 (timm, no pretrained weights) under the study's settings.

        They train in the study's precision and memory format (those of the searched models they are compared
        with); --precision/--channels-last set them for a new study, and on an existing one must match it.
        """
        from flnas.api.options import pop_liveness
        from flnas.evaluate.baselines import parse_models
        from flnas.study.baselines import run_baselines

        names = parse_models(models)
        train = opt.train_overrides(
            epochs=epochs, patience=patience, batch_size=batch_size, lr=lr, device=device, no_hardware=no_hardware,
            class_weighted=class_weighted, max_train_seconds=max_train_seconds, precision=precision,
            channels_last=channels_last,
        )
        liveness = pop_liveness({"heartbeat_interval": heartbeat_interval, "grace_period": grace_period})
        assembly = _open(
            study_name, storage, train=train, data=data, subset=subset, seed=seed, image_size=image_size,
            cache_dir=cache_dir, accuracy=accuracy, liveness=liveness,
        )
        done = run_baselines(assembly.study, names, assembly.evaluator, out_dir=out, log=_log, on_epoch=_on_epoch)
        ok = sum(1 for c in done if c.status == "ok")
        console.print(f"{ok}/{len(names)} baselines ok in study {study_name!r}")

    @app.command("experiment")
    def experiment(
        data: opt.Data = None,
        subset: opt.Subset = None,
        designer: str | None = typer.Option(
            None, "--designer", help="llm | heuristic | random | evolution | tpe | nsga2 | gp."
        ),
        iters: int = typer.Option(defaults.EXPERIMENT["iters"], "--iters", min=1, help="IterMax (the paper: 10)."),
        fahana: bool = typer.Option(
            True, "--fahana/--no-fahana", help="Also run FaHaNa's RL search, same budget."
        ),
        models: Models = defaults.MODELS,
        out: Path = typer.Option(
            Path(defaults.EXPERIMENT["out"]), "--out", help="Artifacts and the report go here."
        ),
        study_name: str = typer.Option(defaults.EXPERIMENT["study"], "--study", help="Study name."),
        storage: str | None = typer.Option(None, "--storage", help="Default: OUT/flnas.db."),
        env: opt.Env = None,
        choices_path: opt.ChoicesPath = None,
        llm_model: opt.LlmModel = None,
        llm_base_url: opt.LlmBaseUrl = None,
        llm_structured: opt.LlmStructured = None,
        repeats: Repeats = defaults.REPEATS,
        top: Top = defaults.TOP,
        epochs: opt.Epochs = None,
        patience: opt.Patience = None,
        batch_size: opt.BatchSize = None,
        lr: opt.Lr = None,
        image_size: opt.ImageSize = None,
        seed: opt.Seed = None,
        device: opt.Device = None,
        cache_dir: opt.CacheDir = None,
        max_train_seconds: opt.MaxTrainSeconds = None,
        no_hardware: opt.NoHardware = False,
        class_weighted: opt.ClassWeighted = None,
        precision: opt.Precision = None,
        channels_last: opt.ChannelsLast = None,
        accuracy: opt.Accuracy = None,
        selection: opt.Selection = defaults.SELECTION,
        tolerance: opt.Tolerance = defaults.TOLERANCE,
        formats: Formats = defaults.FORMATS,
        heartbeat_interval: opt.HeartbeatInterval = defaults.HEARTBEAT_INTERVAL,
        grace_period: opt.GracePeriod = defaults.GRACE_PERIOD,
        workers: opt.Workers = 1,
    ) -> None:
        """The paper's experiment unattended: subset, baselines, search, FaHaNa, report (resumable).

        With --workers N, each search (the designer's, then FaHaNa's) runs as N `flnas search` workers.
        """
        options = dict(locals())  # flnas.experiment's keyword arguments, which are these options' names
        options["choices"], options["study"] = options.pop("choices_path"), options.pop("study_name")
        from flnas.api.experiments import plan_experiment, run_experiment

        plan = plan_experiment(log=_log, progress=True, **options)
        print_data_warnings(plan.assembly.data.summary)
        result = run_experiment(plan, log=_log, on_epoch=_on_epoch, console=wide_console())
        for name, path in result.written.items():
            _log(f"wrote {name}: {path}")


def _formats(text: str) -> list[str]:
    return [f.strip() for f in text.split(",") if f.strip()]
