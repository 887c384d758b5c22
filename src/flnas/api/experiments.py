"""``flnas.baselines``, ``flnas.report`` and ``flnas.experiment``: the paper's section IV on one study.

`flnas baselines`, `flnas report` and `flnas experiment` call :func:`open_for_report`,
:func:`write_report` and :func:`plan_experiment` / :func:`run_experiment` too; they add only the printing.
A study that exists is always reused with its own setup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flnas.api import defaults
from flnas.api.assembly import Assembly, designer_options, make_designer, open_assembly, resume_designer, run
from flnas.api.options import as_path, epoch_logger, log_warnings, logger, pop_liveness, pop_train
from flnas.api.workers import search_by_workers
from flnas.errors import FlnasError

if TYPE_CHECKING:
    from flnas.records import Candidate
    from flnas.report.table import ReportTable
    from flnas.study.loop import SearchResult

Log = Callable[[str], None]
OnEpoch = Callable[[int, dict[str, Any]], None]


def _quiet(_message: str) -> None:
    """Nothing is printed unless asked."""


def open_for_report(
    study: str, storage: str | None, *, train: dict[str, Any], log: Log = _quiet, progress: bool = False, **flags: Any
) -> Assembly:
    """The study with its own setup if it has one, else a new one from these options (image size 64).

    ``flags`` are :func:`flnas.api.assembly.open_assembly`'s (data, subset, seed, image_size, cache_dir, env,
    choices_path, accuracy); options that differ from an existing study's setup are refused in one
    sentence, so every model of a study is trained on the same data under the same settings.
    """
    from flnas.study.setup import describe_training

    assembly = open_assembly(
        study, storage, train=train, defaults={"image_size": defaults.IMAGE_SIZE}, progress=progress, **flags
    )
    setup = assembly.setup
    what = f"{assembly.accuracy} accuracy, {describe_training(setup.get('train') or {})}"
    if assembly.resumed:
        log(f"study {study!r}: using its setup ({setup.get('dataset')}, image size {setup.get('image_size')}, {what})")
    else:
        log(f"study {study!r}: created ({assembly.data.name}, image size {setup['image_size']}, {what})")
    return assembly


def write_report(
    study: Any,
    out: Path,
    *,
    top: int = defaults.TOP,
    repeats: int = defaults.REPEATS,
    formats: list[str] | None = None,
    rule: str | None = None,
    tolerance: float | None = None,
    data: Any = None,
    log: Log = _quiet,
    console: Any = None,
) -> tuple[ReportTable, dict[str, Path]]:
    """Re-runs (when asked), Table I, its notes and every format; returns the table and format -> path.

    ``console`` (a rich Console) shows the ``terminal`` format; without one nothing is printed.
    """
    from flnas.report import build_table, run_notes, run_repeats
    from flnas.report import write_report as write_formats
    from flnas.study.setup import data_from_setup
    from flnas.study.storage import get_setup

    setup = get_setup(study) or {}
    if data is None and setup:
        try:
            data = data_from_setup(setup)
        except (FlnasError, OSError) as exc:
            if repeats:
                raise
            log(f"note: the study's data could not be loaded ({exc}); split sizes are left out")
    if repeats:
        run_repeats(study, repeats, top=top, data=data, out_dir=out, log=log)
    table = build_table(study, top=top, rule=rule, tolerance=tolerance)
    run_notes(table, data=data)
    written = write_formats(table, out, formats=formats or _formats(defaults.FORMATS), console=console)
    return table, written


def _formats(text: str | list[str]) -> list[str]:
    if not isinstance(text, str):
        return list(text)
    return [f.strip() for f in text.split(",") if f.strip()]


def report(
    study: str,
    *,
    out: str | Path,
    storage: str | None = None,
    repeats: int = defaults.REPEATS,
    top: int = defaults.TOP,
    formats: str | list[str] = defaults.FORMATS,
    selection: str | None = None,
    tolerance: float | None = None,
    progress: bool = False,
    callback: Log | None = None,
) -> ReportTable:
    """Write Table I (baselines vs Search-1..k on the test split) and the plots for a study; return the table.

    As `flnas report`: table.md/.csv/.tex, report.html and PNGs under ``out``; ``selection`` and ``tolerance``
    default to the study's own rule.
    """
    from flnas.study.storage import open_study

    table, _written = write_report(
        open_study(study, storage, create=False),
        Path(out),
        top=top,
        repeats=repeats,
        formats=_formats(formats),
        rule=selection,
        tolerance=tolerance,
        log=logger(progress, callback),
    )
    return table


def baselines(
    data: str | Path | None = None,
    *,
    subset: int | None = None,
    models: str | list[str] = defaults.MODELS,
    study: str = defaults.BASELINES_STUDY,
    storage: str | None = None,
    out: str | Path | None = None,
    epochs: int | None = None,
    patience: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    image_size: int | None = None,
    seed: int | None = None,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    max_train_seconds: float | None = None,
    no_hardware: bool = False,
    class_weighted: bool | None = None,
    precision: str | None = None,
    channels_last: bool | None = None,
    accuracy: str | None = None,
    heartbeat_interval: int = defaults.HEARTBEAT_INTERVAL,
    grace_period: int = defaults.GRACE_PERIOD,
    progress: bool = False,
    callback: Log | None = None,
) -> list[Candidate]:
    """Train ResNet-18/34 and MobileNetV1/V2 (timm, no pretrained weights) under the study's settings.

    The baselines train in the study's stored precision and memory format, as its searched models did;
    ``precision`` and ``channels_last`` set them for a new study and must match an existing one's
    (:class:`flnas.errors.StudyError` otherwise), so Table I never compares models trained differently.
    """
    options = {key: value for key, value in locals().items() if key not in ("progress", "callback")}
    from flnas.evaluate.baselines import parse_models
    from flnas.study.baselines import run_baselines

    names = parse_models(options.pop("models"))
    log = logger(progress, callback)
    train = pop_train(options)
    options["liveness"] = pop_liveness(options)
    out = as_path(options.pop("out"))
    assembly = open_for_report(
        options.pop("study"),
        options.pop("storage"),
        train=train,
        log=log,
        progress=progress,
        data=as_path(options.pop("data")),
        cache_dir=as_path(options.pop("cache_dir")),
        **options,  # subset, seed, image_size, accuracy, liveness
    )
    log_warnings(assembly.data, log)
    on_epoch = epoch_logger(log) if (progress or callback) else None
    return run_baselines(assembly.study, names, assembly.evaluator, out_dir=out, log=log, on_epoch=on_epoch)


@dataclass
class ExperimentPlan:
    """An experiment ready to run: its study, baselines, designer and budget."""

    assembly: Assembly
    models: list[str]
    designer: str
    designer_options: dict[str, Any]
    iters: int
    fahana: bool
    out: Path
    repeats: int
    top: int
    formats: list[str]
    selection: str
    tolerance: float
    workers: int = 1  # `flnas search` processes per search (flnas.api.workers)
    liveness: Any = None  # the workers' heartbeat settings
    device: str | None = None


@dataclass
class ExperimentResult:
    """What ``flnas.experiment`` did: the baselines, the search (and FaHaNa's), Table I and its files."""

    baselines: list[Candidate]
    search: SearchResult
    fahana: SearchResult | None
    table: ReportTable
    written: dict[str, Path] = field(default_factory=dict)


def plan_experiment(*, log: Log = _quiet, progress: bool = False, **options: Any) -> ExperimentPlan:
    """Check the options (:func:`experiment`'s), then open (or create) the study in ``out``.

    The study is in OUT/flnas.db unless ``storage`` is given; a study that exists keeps its own setup.
    """
    from flnas.evaluate.baselines import parse_models
    from flnas.records import check_rule

    selection = options.pop("selection", defaults.SELECTION)
    tolerance = float(options.pop("tolerance", defaults.TOLERANCE))
    check_rule(selection, tolerance, options.get("accuracy") or "balanced")
    names = parse_models(options.pop("models", defaults.MODELS))
    workers, device, liveness = int(options.pop("workers", 1)), options.get("device"), pop_liveness(options)
    train = pop_train(options)  # checked (fp16 off CUDA, ...) before OUT or the study is created
    out = Path(options.pop("out", None) or str(defaults.EXPERIMENT["out"]))
    out.mkdir(parents=True, exist_ok=True)
    storage = options.pop("storage", None) or f"sqlite:///{(out / 'flnas.db').resolve()}"
    wanted = {key: options.pop(f"llm_{key}", None) for key in ("model", "base_url", "structured")}
    designer = options.pop("designer", None) or defaults.default_designer(wanted["base_url"])[0]
    plan = {
        "iters": int(options.pop("iters", defaults.EXPERIMENT["iters"])),
        "fahana": bool(options.pop("fahana", True)),
        "repeats": int(options.pop("repeats", defaults.REPEATS)),
        "top": int(options.pop("top", defaults.TOP)),
        "formats": _formats(options.pop("formats", defaults.FORMATS)),
    }
    assembly = open_for_report(
        options.pop("study", None) or str(defaults.EXPERIMENT["study"]),
        storage,
        train=train,
        log=log,
        progress=progress,
        data=as_path(options.pop("data", None)),
        choices_path=as_path(options.pop("choices", None)),
        cache_dir=as_path(options.pop("cache_dir", None)),
        liveness=liveness,
        **options,  # subset, seed, image_size, env, accuracy
    )
    structured = wanted.pop("structured")
    return ExperimentPlan(
        assembly=assembly,
        models=names,
        designer=designer,
        designer_options={**wanted, "structured_output": structured, "seed": assembly.seed},
        out=out,
        selection=selection,
        tolerance=tolerance,
        workers=workers,
        liveness=liveness,
        device=device,
        **plan,
    )


def run_experiment(
    plan: ExperimentPlan, *, log: Log = _quiet, on_epoch: OnEpoch | None = None, console: Any = None
) -> ExperimentResult:
    """Baselines, the search, FaHaNa's RL search at the same budget, the report (each step resumable)."""
    from flnas.study.baselines import run_baselines

    assembly = plan.assembly
    log(f"[1/4] baselines: {', '.join(plan.models)}")
    done = run_baselines(assembly.study, plan.models, assembly.evaluator, out_dir=plan.out, log=log, on_epoch=on_epoch)
    accepted, _unused = designer_options(plan.designer, plan.designer_options)
    chosen = make_designer(plan.designer, **accepted)
    resume_designer(assembly, chosen, log=log)
    log(f"[2/4] search: designer {plan.designer}, {plan.iters} iterations, selection rule {plan.selection!r}")
    budget = {"iters": plan.iters, "selection": plan.selection, "tolerance": plan.tolerance}
    if plan.workers > 1:
        result = search_by_workers(plan, plan.designer, log=log)
    else:
        result = run(assembly, chosen, out_dir=plan.out / "search", log=log, on_epoch=on_epoch, **budget)
    fahana = None
    if plan.fahana and plan.designer != "fahana-rl":
        if result.stopped:
            log("[3/4] FaHaNa RL search skipped: the search did not finish; run the experiment again")
        else:
            log(f"[3/4] FaHaNa RL search: {plan.iters} iterations (the same budget)")
            if plan.workers > 1:
                fahana = search_by_workers(plan, "fahana-rl", log=log, record_settings=False)
            else:
                fahana = run(
                    assembly,
                    make_designer("fahana-rl"),
                    out_dir=plan.out / "search",
                    log=log,
                    on_epoch=on_epoch,
                    record_settings=False,
                    **budget,
                )
    log("[4/4] report")
    table, written = write_report(
        assembly.study,
        plan.out / "report",
        top=plan.top,
        repeats=plan.repeats,
        formats=plan.formats,
        rule=plan.selection,
        tolerance=plan.tolerance,
        data=assembly.data,
        log=log,
        console=console,
    )
    return ExperimentResult(baselines=done, search=result, fahana=fahana, table=table, written=written)


def experiment(
    data: str | Path | None = None,
    *,
    subset: int | None = None,
    designer: str | None = None,
    iters: int = int(defaults.EXPERIMENT["iters"]),
    fahana: bool = True,
    models: str | list[str] = defaults.MODELS,
    out: str | Path = str(defaults.EXPERIMENT["out"]),
    study: str = str(defaults.EXPERIMENT["study"]),
    storage: str | None = None,
    env: str | None = None,
    choices: str | Path | None = None,
    llm_model: str | None = None,
    llm_base_url: str | None = None,
    llm_structured: str | None = None,
    repeats: int = defaults.REPEATS,
    top: int = defaults.TOP,
    epochs: int | None = None,
    patience: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    image_size: int | None = None,
    seed: int | None = None,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    max_train_seconds: float | None = None,
    no_hardware: bool = False,
    class_weighted: bool | None = None,
    precision: str | None = None,
    channels_last: bool | None = None,
    accuracy: str | None = None,
    selection: str = defaults.SELECTION,
    tolerance: float = defaults.TOLERANCE,
    formats: str | list[str] = defaults.FORMATS,
    heartbeat_interval: int = defaults.HEARTBEAT_INTERVAL,
    grace_period: int = defaults.GRACE_PERIOD,
    workers: int = 1,
    progress: bool = False,
    callback: Log | None = None,
) -> ExperimentResult:
    """The paper's experiment unattended, as `flnas experiment`: subset, baselines, search, FaHaNa, report.

    Everything goes under ``out`` (the study in OUT/flnas.db unless ``storage`` is given; the report in
    OUT/report); run it again to resume. ``workers`` > 1 runs each search as that many `flnas search`
    processes on this machine (:func:`flnas.api.workers.search_by_workers`).
    """
    options = {key: value for key, value in locals().items() if key not in ("progress", "callback")}
    log = logger(progress, callback)
    plan = plan_experiment(log=log, progress=progress, **options)
    log_warnings(plan.assembly.data, log)
    return run_experiment(plan, log=log, on_epoch=epoch_logger(log) if (progress or callback) else None)
