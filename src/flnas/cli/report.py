"""`flnas baselines`, `flnas report` and `flnas experiment` (the paper's section IV in one command).

All three work on one study: ``baselines`` trains the timm baselines under the study's evaluator settings,
``report`` writes Table I and the plots, and ``experiment`` runs subset + baselines + search (+ FaHaNa's RL
search at the same budget) + report unattended. A study that exists is always reused with its own setup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flnas.cli import _options as opt
from flnas.cli._common import console, err_console, print_data_warnings, wide_console
from flnas.errors import FlnasError

DEFAULT_IMAGE_SIZE = 64
ALL_MODELS = "resnet18,resnet34,mobilenetv1,mobilenetv2"
ALL_FORMATS = "terminal,md,csv,tex,html,png"

# options that `report` and `experiment` (and `baselines`) share
Models = Annotated[str, typer.Option("--models", help="Baselines.")]
Repeats = Annotated[
    int, typer.Option("--repeats", min=0, help="Re-train Table I's rows with R more seeds (mean ± std).")
]
Top = Annotated[int, typer.Option("--top", min=1, help="How many searched models in Table I (Search-1..k).")]
Formats = Annotated[str, typer.Option("--formats", help="Comma-separated report outputs.")]


def _log(message: str) -> None:
    err_console.print(message, highlight=False, markup=False, soft_wrap=True)


def _on_epoch(epoch: int, logs: dict[str, Any]) -> None:
    acc = logs.get("val_accuracy")
    shown = "n/a" if acc is None else f"{100 * acc:.2f}%"
    _log(f"  epoch {epoch}/{logs.get('epochs')}: val acc {shown}")


def prepare_study(
    study_name: str, storage: str | None, *, train: dict[str, Any], **flags: Any
) -> tuple[Any, dict[str, Any], Any]:
    """(study, setup, PreparedData): the study's own setup if it has one, else a new one from these options.

    ``flags`` are :func:`flnas.study.setup.resolve_setup`'s (data, subset, seed, image_size, cache_dir,
    env, choices_path, accuracy); options that differ from an existing study's setup are refused in one sentence, so
    every model of a study is trained on the same data under the same settings.
    """
    from flnas.study.setup import resolve_setup
    from flnas.study.storage import open_study

    study = open_study(study_name, storage, create=True)
    defaults = {"image_size": DEFAULT_IMAGE_SIZE}
    setup, prepared, resumed = resolve_setup(study, train=train, defaults=defaults, **flags)
    from flnas.study.setup import accuracy_from_setup

    weighted = "class-weighted" if (setup.get("train") or {}).get("class_weighted_loss") else "unweighted"
    what = f"{accuracy_from_setup(setup)} accuracy, {weighted} loss"
    if resumed:
        _log(
            f"study {study_name!r}: using its setup ({setup.get('dataset')}, image size "
            f"{setup.get('image_size')}, {what})"
        )
    else:
        _log(f"study {study_name!r}: created ({prepared.name}, image size {setup['image_size']}, {what})")
    print_data_warnings(prepared.summary)
    return study, setup, prepared


def _evaluator(setup: dict[str, Any], data: Any, train: dict[str, Any]) -> Any:
    """The study's evaluator; ``--device`` (in ``train``) says where this run trains, as in `flnas search`."""
    from flnas.evaluate import Evaluator
    from flnas.study.setup import choices_from_setup, evaluator_config_from_setup

    run_on = {"device": train["device"]} if "device" in train else {}
    return Evaluator(data, evaluator_config_from_setup(setup, **run_on), choices=choices_from_setup(setup))


def make_report(
    study: Any,
    out: Path,
    *,
    top: int,
    repeats: int,
    formats: list[str],
    rule: str | None,
    tolerance: float | None,
    data: Any = None,
) -> dict[str, Path]:
    """Re-runs (when asked), Table I, notes and every format; returns format -> path."""
    from flnas.report import build_table, run_notes, run_repeats, write_report
    from flnas.study.setup import data_from_setup
    from flnas.study.storage import get_setup

    setup = get_setup(study) or {}
    if data is None and setup:
        try:
            data = data_from_setup(setup)
        except (FlnasError, OSError) as exc:
            if repeats:
                raise
            _log(f"note: the study's data could not be loaded ({exc}); split sizes are left out")
    if repeats:
        run_repeats(study, repeats, top=top, data=data, out_dir=out, log=_log)
    table = build_table(study, top=top, rule=rule, tolerance=tolerance)
    run_notes(table, data=data)
    return write_report(table, out, formats=formats, console=wide_console())


def _formats(text: str) -> list[str]:
    return [f.strip() for f in text.split(",") if f.strip()]


def register(app: typer.Typer) -> None:
    """Add `flnas baselines`, `flnas report` and `flnas experiment` to the root app."""

    @app.command("report")
    def report(
        study_name: str = typer.Option(..., "--study", help="Study to report."),
        storage: opt.Storage = None,
        out: Path = typer.Option(
            ..., "--out", help="Directory for table.md/.csv/.tex, report.html and PNGs."
        ),
        repeats: Repeats = 0,
        top: Top = 3,
        formats: Formats = ALL_FORMATS,
        selection: str | None = typer.Option(
            None, "--selection", help="Selection rule (default: the study's)."
        ),
        tolerance: float | None = typer.Option(None, "--tolerance", help="Accuracy tolerance of the rule."),
    ) -> None:
        """Write Table I (baselines vs Search-1..k on the test split) and the plots for a study."""
        from flnas.study.storage import open_study

        study = open_study(study_name, storage, create=False)
        written = make_report(
            study,
            out,
            top=top,
            repeats=repeats,
            formats=_formats(formats),
            rule=selection,
            tolerance=tolerance,
        )
        for name, path in written.items():
            _log(f"wrote {name}: {path}")

    @app.command("baselines")
    def baselines(
        data: opt.Data = None,
        subset: opt.Subset = None,
        models: Models = ALL_MODELS,
        study_name: str = typer.Option(
            "flnas", "--study", help="Study to record them in (its setup is reused)."
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
        no_hardware: opt.NoHardware = False,
        class_weighted: opt.ClassWeighted = None,
        accuracy: opt.Accuracy = None,
    ) -> None:
        """Train ResNet-18/34 and MobileNetV1/V2 (timm, no pretrained weights) under the study's settings."""
        from flnas.evaluate.baselines import parse_models
        from flnas.study.baselines import run_baselines

        names = parse_models(models)
        train = opt.train_overrides(
            epochs=epochs, patience=patience, batch_size=batch_size, lr=lr, device=device, no_hardware=no_hardware,
            class_weighted=class_weighted,
        )
        study, setup, prepared = prepare_study(
            study_name,
            storage,
            train=train,
            data=data,
            subset=subset,
            seed=seed,
            image_size=image_size,
            cache_dir=cache_dir,
            env=None,
            choices_path=None,
            accuracy=accuracy,
        )
        done = run_baselines(
            study, names, _evaluator(setup, prepared, train), out_dir=out, log=_log, on_epoch=_on_epoch
        )
        ok = sum(1 for c in done if c.status == "ok")
        console.print(f"{ok}/{len(names)} baselines ok in study {study_name!r}")

    @app.command("experiment")
    def experiment(
        data: opt.Data = None,
        subset: opt.Subset = None,
        designer: str | None = typer.Option(
            None, "--designer", help="llm | heuristic | random | evolution | tpe | nsga2 | gp."
        ),
        iters: int = typer.Option(10, "--iters", min=1, help="IterMax (the paper: 10)."),
        fahana: bool = typer.Option(
            True, "--fahana/--no-fahana", help="Also run FaHaNa's RL search, same budget."
        ),
        models: Models = ALL_MODELS,
        out: Path = typer.Option(Path("flnas-experiment"), "--out", help="Artifacts and the report go here."),
        study_name: str = typer.Option("experiment", "--study", help="Study name."),
        storage: str | None = typer.Option(None, "--storage", help="Default: OUT/flnas.db."),
        env: opt.Env = None,
        choices_path: opt.ChoicesPath = None,
        llm_model: opt.LlmModel = None,
        llm_base_url: opt.LlmBaseUrl = None,
        llm_structured: opt.LlmStructured = None,
        repeats: Repeats = 0,
        top: Top = 3,
        epochs: opt.Epochs = None,
        patience: opt.Patience = None,
        batch_size: opt.BatchSize = None,
        lr: opt.Lr = None,
        image_size: opt.ImageSize = None,
        seed: opt.Seed = None,
        device: opt.Device = None,
        cache_dir: opt.CacheDir = None,
        no_hardware: opt.NoHardware = False,
        class_weighted: opt.ClassWeighted = None,
        accuracy: opt.Accuracy = None,
        selection: str = typer.Option(
            "fair",
            "--selection",
            help="GetBestMetrics rule: fair | accuracy | unfairness | params | weighted | balanced.",
        ),
        tolerance: float = typer.Option(0.02, "--tolerance", help="Accuracy tolerance (fair/params/balanced rules)."),
        formats: Formats = ALL_FORMATS,
    ) -> None:
        """The paper's experiment unattended: subset, baselines, search, FaHaNa, report (resumable)."""
        from flnas.designers.registry import create_designer, designer_options
        from flnas.evaluate.baselines import parse_models
        from flnas.records import check_rule
        from flnas.study.baselines import run_baselines
        from flnas.study.loop import run_search
        from flnas.study.setup import accuracy_from_setup, choices_from_setup, task_from_setup
        from flnas.study.storage import set_search_settings

        check_rule(selection, tolerance, accuracy or "balanced")
        names = parse_models(models)
        out.mkdir(parents=True, exist_ok=True)
        storage = storage or f"sqlite:///{(out / 'flnas.db').resolve()}"
        from flnas.designers.llm import is_configured

        designer = designer or ("llm" if is_configured(llm_base_url) else "heuristic")
        train = opt.train_overrides(
            epochs=epochs, patience=patience, batch_size=batch_size, lr=lr, device=device, no_hardware=no_hardware,
            class_weighted=class_weighted,
        )
        study, setup, prepared = prepare_study(
            study_name,
            storage,
            train=train,
            data=data,
            subset=subset,
            seed=seed,
            image_size=image_size,
            cache_dir=cache_dir,
            env=env,
            choices_path=choices_path,
            accuracy=accuracy,
        )
        accuracy = accuracy_from_setup(setup)
        evaluator = _evaluator(setup, prepared, train)
        _log(f"[1/4] baselines: {', '.join(names)}")
        run_baselines(study, names, evaluator, out_dir=out, log=_log, on_epoch=_on_epoch)
        task, choices = task_from_setup(setup), choices_from_setup(setup)
        run_seed = int(setup.get("seed", 0))
        wanted = {"model": llm_model, "base_url": llm_base_url, "structured_output": llm_structured, "seed": run_seed}
        accepted = designer_options(designer)
        chosen = create_designer(designer, **{k: v for k, v in wanted.items() if k in accepted})
        if hasattr(chosen, "resume_study"):  # start from the structured-output mode that worked before
            chosen.resume_study(study, log=_log)
        _log(f"[2/4] search: designer {designer}, {iters} iterations, selection rule {selection!r}")
        set_search_settings(
            study, iters=iters, candidates=1, selection=selection, tolerance=tolerance, designer=designer
        )
        result = run_search(
            study,
            designer=chosen,
            rule=selection,
            tolerance=tolerance,
            accuracy=accuracy,
            evaluator=evaluator,
            task=task,
            choices=choices,
            iters=iters,
            seed=run_seed,
            out_dir=out / "search",
            log=_log,
            on_epoch=_on_epoch,
        )
        if fahana and designer != "fahana-rl":
            if result.stopped:
                _log("[3/4] FaHaNa RL search skipped: the search did not finish; run the experiment again")
            else:
                _log(f"[3/4] FaHaNa RL search: {iters} iterations (the same budget)")
                run_search(
                    study,
                    designer=create_designer("fahana-rl"),
                    rule=selection,
                    tolerance=tolerance,
                    accuracy=accuracy,
                    evaluator=evaluator,
                    task=task,
                    choices=choices,
                    iters=iters,
                    seed=run_seed,
                    out_dir=out / "search",
                    log=_log,
                    on_epoch=_on_epoch,
                )
        _log("[4/4] report")
        written = make_report(
            study,
            out / "report",
            top=top,
            repeats=repeats,
            formats=_formats(formats),
            rule=selection,
            tolerance=tolerance,
            data=prepared,
        )
        for name, path in written.items():
            _log(f"wrote {name}: {path}")
