"""`flnas baselines`, `flnas report` and `flnas experiment` (the paper's section IV in one command).

All three work on one study: ``baselines`` trains the timm baselines under the study's evaluator settings,
``report`` writes Table I and the plots, and ``experiment`` runs subset + baselines + search (+ FaHaNa's RL
search at the same budget) + report unattended. A study that exists is always reused with its own setup.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from flnas.cli._common import console, err_console, wide_console
from flnas.errors import FlnasError

DEFAULT_IMAGE_SIZE = 64


def _log(message: str) -> None:
    err_console.print(message, highlight=False, markup=False, soft_wrap=True)


def _on_epoch(epoch: int, logs: dict[str, Any]) -> None:
    acc = logs.get("val_accuracy")
    shown = "n/a" if acc is None else f"{100 * acc:.2f}%"
    _log(f"  epoch {epoch}/{logs.get('epochs')}: val acc {shown}")


def prepare_study(
    study_name: str,
    storage: str | None,
    *,
    data: Path | None,
    subset: int | None,
    seed: int | None,
    image_size: int | None,
    cache_dir: Path | None,
    env: str | None,
    choices_path: Path | None,
    train: dict[str, Any],
) -> tuple[Any, dict[str, Any], Any]:
    """(study, setup, PreparedData): the study's own setup if it has one, else a new one from these options.

    Options given explicitly that differ from an existing study's setup are refused in one sentence, so
    every model of a study is trained on the same data under the same settings.
    """
    from flnas.study.setup import data_from_setup, make_setup, setup_conflicts
    from flnas.study.storage import get_setup, open_study, set_setup

    study = open_study(study_name, storage, create=True)
    setup = get_setup(study)
    train = {k: v for k, v in train.items() if v is not None}
    if setup:
        requested: dict[str, Any] = {"train": dict(train)}
        if seed is not None:
            requested["train"]["seed"] = seed
        given = {
            "data": str(data.resolve()) if data else None,
            "subset": subset,
            "seed": seed,
            "image_size": image_size,
            "env": env,
        }
        requested.update({k: v for k, v in given.items() if v is not None})
        conflicts = setup_conflicts(setup, requested)
        if conflicts:
            raise FlnasError(
                f"study {study_name!r} was made with other settings: {'; '.join(conflicts)}; "
                "drop these options or use another --study"
            )
        _log(
            f"study {study_name!r}: using its setup ({setup.get('dataset')}, "
            f"image size {setup.get('image_size')})"
        )
        return study, setup, data_from_setup(setup, progress=True)

    from flnas.data import default_synthetic_dir, prepare_data
    from flnas.evaluate import TrainConfig
    from flnas.space import load_choices
    from flnas.study.setup import DEFAULT_ENV

    seed = 0 if seed is None else seed
    image_size = image_size or DEFAULT_IMAGE_SIZE
    root = data if data is not None else default_synthetic_dir()
    prepared = prepare_data(root, subset=subset, seed=seed, image_size=image_size, cache_dir=cache_dir)
    setup = make_setup(
        data=prepared,
        data_arg=data,
        subset=subset,
        seed=seed,
        image_size=image_size,
        cache_dir=cache_dir,
        train=TrainConfig(**{"seed": seed, **train}),
        env=env or DEFAULT_ENV,
        choices=load_choices(choices_path),
    )
    set_setup(study, setup)
    _log(f"study {study_name!r}: created ({prepared.name}, image size {image_size})")
    return study, setup, prepared


def _evaluator(setup: dict[str, Any], data: Any) -> Any:
    from flnas.evaluate import Evaluator
    from flnas.study.setup import choices_from_setup, train_config_from_setup

    return Evaluator(data, train_config_from_setup(setup), choices=choices_from_setup(setup))


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
        storage: str | None = typer.Option(
            None, "--storage", help="SQLAlchemy URL or SQLite file (default ./flnas.db)."
        ),
        out: Path = typer.Option(
            ..., "--out", help="Directory for table.md/.csv/.tex, report.html and PNGs."
        ),
        repeats: int = typer.Option(
            0, "--repeats", min=0, help="Re-train every row with R more seeds (mean ± std)."
        ),
        top: int = typer.Option(3, "--top", min=1, help="How many searched models (Search-1..k)."),
        formats: str = typer.Option(
            "terminal,md,csv,tex,html,png", "--formats", help="Comma-separated outputs."
        ),
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
        data: Path | None = typer.Option(
            None, "--data", help="ISIC 2019 directory; omitted: embedded synthetic set."
        ),
        subset: int | None = typer.Option(None, "--subset", help="Use N records (balanced over groups)."),
        models: str = typer.Option(
            "resnet18,resnet34,mobilenetv1,mobilenetv2", "--models", help="Baselines."
        ),
        study_name: str = typer.Option(
            "flnas", "--study", help="Study to record them in (its setup is reused)."
        ),
        storage: str | None = typer.Option(
            None, "--storage", help="SQLAlchemy URL or SQLite file (default ./flnas.db)."
        ),
        out: Path | None = typer.Option(None, "--out", help="Keep each baseline's artifacts here."),
        epochs: int | None = typer.Option(None, "--epochs", help="Maximum epochs (default 30)."),
        patience: int | None = typer.Option(None, "--patience", help="Early-stopping patience (default 3)."),
        batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size (default 64)."),
        lr: float | None = typer.Option(None, "--lr", help="Learning rate (default 1e-3)."),
        image_size: int | None = typer.Option(
            None, "--image-size", help="Input size in pixels (default 64)."
        ),
        seed: int | None = typer.Option(None, "--seed", help="Seed for the split and training (default 0)."),
        device: str | None = typer.Option(None, "--device", help="auto (default), cpu, cuda, cuda:N."),
        cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Decoded-image cache directory."),
        no_hardware: bool = typer.Option(False, "--no-hardware", help="Skip FLOPs/memory/latency/ONNX."),
    ) -> None:
        """Train ResNet-18/34 and MobileNetV1/V2 (timm, no pretrained weights) under the study's settings."""
        from flnas.report import parse_models, run_baselines

        names = parse_models(models)
        train = {
            "epochs": epochs,
            "patience": patience,
            "batch_size": batch_size,
            "lr": lr,
            "device": device,
            "measure_hardware": False if no_hardware else None,
        }
        study, setup, prepared = prepare_study(
            study_name,
            storage,
            data=data,
            subset=subset,
            seed=seed,
            image_size=image_size,
            cache_dir=cache_dir,
            env=None,
            choices_path=None,
            train=train,
        )
        done = run_baselines(
            study, names, _evaluator(setup, prepared), out_dir=out, log=_log, on_epoch=_on_epoch
        )
        ok = sum(1 for c in done if c.status == "ok")
        console.print(f"{ok}/{len(names)} baselines ok in study {study_name!r}")

    @app.command("experiment")
    def experiment(
        data: Path | None = typer.Option(
            None, "--data", help="ISIC 2019 directory; omitted: embedded synthetic set."
        ),
        subset: int | None = typer.Option(None, "--subset", help="Use N records (the paper: 5000)."),
        designer: str | None = typer.Option(None, "--designer", help="llm | heuristic | random | evolution."),
        iters: int = typer.Option(10, "--iters", min=1, help="IterMax (the paper: 10)."),
        fahana: bool = typer.Option(
            True, "--fahana/--no-fahana", help="Also run FaHaNa's RL search, same budget."
        ),
        models: str = typer.Option(
            "resnet18,resnet34,mobilenetv1,mobilenetv2", "--models", help="Baselines."
        ),
        out: Path = typer.Option(Path("flnas-experiment"), "--out", help="Artifacts and the report go here."),
        study_name: str = typer.Option("experiment", "--study", help="Study name."),
        storage: str | None = typer.Option(None, "--storage", help="Default: OUT/flnas.db."),
        env: str | None = typer.Option(None, "--env", help="Target device shown to the designer."),
        choices_path: Path | None = typer.Option(None, "--choices", help="Choices file (JSON/YAML)."),
        llm_model: str | None = typer.Option(None, "--llm-model", help="Chat model name (llm designer)."),
        llm_base_url: str | None = typer.Option(
            None, "--llm-base-url", help="OpenAI-compatible endpoint URL."
        ),
        repeats: int = typer.Option(0, "--repeats", min=0, help="Re-train Table I's rows with R more seeds."),
        top: int = typer.Option(3, "--top", min=1, help="How many searched models in Table I."),
        epochs: int | None = typer.Option(None, "--epochs", help="Maximum epochs (default 30)."),
        patience: int | None = typer.Option(None, "--patience", help="Early-stopping patience (default 3)."),
        batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size (default 64)."),
        lr: float | None = typer.Option(None, "--lr", help="Learning rate (default 1e-3)."),
        image_size: int | None = typer.Option(
            None, "--image-size", help="Input size in pixels (default 64)."
        ),
        seed: int | None = typer.Option(None, "--seed", help="Seed for the split and training (default 0)."),
        device: str | None = typer.Option(None, "--device", help="auto (default), cpu, cuda, cuda:N."),
        cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Decoded-image cache directory."),
        no_hardware: bool = typer.Option(False, "--no-hardware", help="Skip FLOPs/memory/latency/ONNX."),
        formats: str = typer.Option("terminal,md,csv,tex,html,png", "--formats", help="Report outputs."),
    ) -> None:
        """The paper's experiment unattended: subset, baselines, search, FaHaNa, report (resumable)."""
        from flnas.designers.registry import create_designer, designer_options
        from flnas.report import parse_models, run_baselines
        from flnas.study.loop import run_search
        from flnas.study.setup import choices_from_setup, task_from_setup

        names = parse_models(models)
        out.mkdir(parents=True, exist_ok=True)
        storage = storage or f"sqlite:///{(out / 'flnas.db').resolve()}"
        endpoint = llm_base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY")
        designer = designer or ("llm" if endpoint else "heuristic")
        train = {
            "epochs": epochs,
            "patience": patience,
            "batch_size": batch_size,
            "lr": lr,
            "device": device,
            "measure_hardware": False if no_hardware else None,
        }
        study, setup, prepared = prepare_study(
            study_name,
            storage,
            data=data,
            subset=subset,
            seed=seed,
            image_size=image_size,
            cache_dir=cache_dir,
            env=env,
            choices_path=choices_path,
            train=train,
        )
        evaluator = _evaluator(setup, prepared)
        _log(f"[1/4] baselines: {', '.join(names)}")
        run_baselines(study, names, evaluator, out_dir=out, log=_log, on_epoch=_on_epoch)
        task, choices = task_from_setup(setup), choices_from_setup(setup)
        run_seed = int(setup.get("seed", 0))
        wanted = {"model": llm_model, "base_url": llm_base_url, "seed": run_seed}
        accepted = designer_options(designer)
        chosen = create_designer(designer, **{k: v for k, v in wanted.items() if k in accepted})
        _log(f"[2/4] search: designer {designer}, {iters} iterations")
        result = run_search(
            study,
            designer=chosen,
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
            rule=None,
            tolerance=None,
            data=prepared,
        )
        for name, path in written.items():
            _log(f"wrote {name}: {path}")
