"""``flnas.search(...)``: run (or resume) the FL-NAS search, as `flnas search` does, and return its result.

`flnas search` calls :func:`plan_search` and :func:`run_plan` too; it adds only the printing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flnas.api import defaults
from flnas.api.assembly import (
    Assembly,
    designer_options,
    export_best,
    make_designer,
    open_assembly,
    resume_designer,
    run,
    stored_iters,
)
from flnas.api.options import as_path, epoch_logger, log_warnings, logger, pop_liveness, pop_train
from flnas.errors import FlnasError, StudyError

if TYPE_CHECKING:
    from flnas.designers.base import Designer
    from flnas.records import Candidate
    from flnas.study.export import Exported
    from flnas.study.loop import SearchResult as LoopResult

Log = Callable[[str], None]


@dataclass
class SearchPlan:
    """A search ready to run: the assembled study, the designer and the loop's settings."""

    assembly: Assembly
    designer: Designer
    iters: int
    k: int
    selection: str
    tolerance: float
    out: Path

    @property
    def embedded(self) -> bool:
        return not self.assembly.setup.get("data")


# options under the command line's names -> the designer constructors' names
DESIGNER_OPTIONS = {
    "init_spec": "init_spec",
    "llm_model": "model",
    "llm_base_url": "base_url",
    "llm_temperature": "temperature",
    "llm_timeout": "timeout",
    "llm_max_retries": "max_retries",
    "llm_structured": "structured_output",
    "prompt_template": "prompt_template",
}
def plan_search(
    *,
    designer: str | None = None,
    progress: bool = False,
    log: Log | None = None,
    note: Log | None = None,
    **options: Any,
) -> SearchPlan:
    """Check the options, create the designer (fails fast, e.g. no LLM endpoint), open the study and
    resolve its setup. ``options`` are :func:`search`'s keyword arguments (the command line's names);
    ``note`` hears of designer options that do not apply to the designer, ``log`` the designer's own."""
    from flnas.records import check_rule

    data = as_path(options.pop("data", None))
    name = designer or defaults.default_designer(options.get("llm_base_url"), embedded=data is None)[0]
    given = {DESIGNER_OPTIONS[key]: _path_or(options.pop(key, None), key) for key in DESIGNER_OPTIONS}
    accepted, unused = designer_options(name, {**given, "seed": options.get("seed")})
    for flag in unused:
        (note or (lambda _m: None))(f"{flag} does not apply to the {name} designer")
    train = pop_train(options)
    iters, k = options.pop("iters", None), int(options.pop("candidates", defaults.CANDIDATES))
    selection = options.pop("selection", defaults.SELECTION)
    tolerance = float(options.pop("tolerance", defaults.TOLERANCE))
    check_rule(selection, tolerance, options.get("accuracy") or "balanced")
    if k < 1 or (iters is not None and iters < 1):
        raise FlnasError("--iters and --candidates must be at least 1")
    embedded = data is None
    preset = defaults.EMBEDDED if embedded else defaults.REAL
    chosen = make_designer(name, **accepted)
    study = options.pop("study", None) or (defaults.STUDY_EMBEDDED if embedded else defaults.STUDY)
    liveness = pop_liveness(options)
    out = as_path(options.pop("out", None))
    assembly = open_assembly(
        study,
        options.pop("storage", None),
        data=data,
        choices_path=as_path(options.pop("choices", None)),
        cache_dir=as_path(options.pop("cache_dir", None)),
        train=train,
        defaults={key: v for key, v in preset.items() if key != "iters"},
        liveness=liveness,
        progress=progress,
        **options,  # subset, seed, image_size, env, accuracy
    )
    resume_designer(assembly, chosen, log=log or (lambda _m: None))
    return SearchPlan(
        assembly=assembly,
        designer=chosen,
        iters=iters or stored_iters(assembly, int(preset["iters"])),
        k=k,
        selection=selection,
        tolerance=tolerance,
        out=out or Path("runs") / study,
    )


def run_plan(
    plan: SearchPlan,
    *,
    log: Log | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    on_candidate: Callable[[Candidate, Any], None] | None = None,
) -> LoopResult:
    """Algorithm 1 until iters x k candidates are evaluated; candidates' files go to ``plan.out``."""
    return run(
        plan.assembly,
        plan.designer,
        iters=plan.iters,
        k=plan.k,
        selection=plan.selection,
        tolerance=plan.tolerance,
        out_dir=plan.out,
        log=log or (lambda _m: None),
        on_epoch=on_epoch,
        on_candidate=on_candidate,
    )


@dataclass
class SearchResult:
    """What ``flnas.search`` returns: the chosen model (``best``, the OptDNN), every candidate, the study.

    ``best.spec`` is the architecture JSON and ``best.metrics`` every measurement (``["test"]
    ["balanced_accuracy"]``, ``["val"]["unfairness"]``, ``["params"]``, ...). ``stopped`` says why a run
    ended before ``target`` evaluated candidates (run it again to continue), as `flnas search` exits 1.
    """

    best: Candidate | None
    candidates: list[Candidate]
    evaluated: int
    target: int
    stopped: str | None
    out: Path
    assembly: Assembly = field(repr=False)
    new: list[int] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def study(self) -> Any:
        """The Optuna study (every trial, as `optuna-dashboard` shows it)."""
        return self.assembly.study

    def export(self, target: str | Path) -> Exported:
        """Write the chosen model's model.onnx, model.py, model.pt, spec.json, metrics.json and predictions.csv
        to ``target`` (copied from its run folder; trained again with the study's seed when that is gone)."""
        if self.best is None:
            raise StudyError(f"study {self.assembly.name!r} has no evaluated candidate to export")
        return export_best(self.assembly, self.best, target)


def search(
    data: str | Path | None = None,
    *,
    designer: str | None = None,
    iters: int | None = None,
    candidates: int = defaults.CANDIDATES,
    study: str | None = None,
    storage: str | None = None,
    out: str | Path | None = None,
    selection: str = defaults.SELECTION,
    tolerance: float = defaults.TOLERANCE,
    accuracy: str | None = None,
    init_spec: str | Path | None = None,
    subset: int | None = None,
    env: str | None = None,
    choices: str | Path | None = None,
    image_size: int | None = None,
    seed: int | None = None,
    cache_dir: str | Path | None = None,
    epochs: int | None = None,
    patience: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    device: str | None = None,
    max_train_seconds: float | None = None,
    no_hardware: bool = False,
    class_weighted: bool | None = None,
    precision: str | None = None,
    channels_last: bool | None = None,
    llm_model: str | None = None,
    llm_base_url: str | None = None,
    llm_temperature: float | None = None,
    llm_timeout: float | None = None,
    llm_max_retries: int | None = None,
    llm_structured: str | None = None,
    prompt_template: str | Path | None = None,
    heartbeat_interval: int = defaults.HEARTBEAT_INTERVAL,
    grace_period: int = defaults.GRACE_PERIOD,
    progress: bool = False,
    callback: Log | None = None,
) -> SearchResult:
    """Run (or resume) the FL-NAS search; the keyword arguments are `flnas search`'s options.

    ``data=None`` is the embedded default (the synthetic set at 32x32, 5 iterations of 4 epochs, study
    "flnas-default"). A study that exists is resumed with its stored setup (options that differ from it
    raise :class:`flnas.errors.StudyError`). Each candidate's files go to ``out`` (default
    ``runs/<study>``), from where :meth:`SearchResult.export` copies the chosen one. Nothing is printed
    unless ``progress`` (progress lines on stderr) or ``callback`` (called with each line) is given.
    """
    options = {key: value for key, value in locals().items() if key not in ("progress", "callback")}
    from flnas.study.storage import storage_errors, storage_url

    log = logger(progress, callback)
    with storage_errors(storage_url(storage)):
        plan = plan_search(progress=progress, log=log, note=log, **options)
        log_warnings(plan.assembly.data, log)
        done = run_plan(plan, log=log, on_epoch=epoch_logger(log) if (progress or callback) else None)
    if done.files_error:
        raise StudyError(done.files_error)
    return SearchResult(
        best=done.best,
        candidates=done.candidates,
        evaluated=done.evaluated,
        target=done.target,
        stopped=done.stopped,
        out=plan.out,
        assembly=plan.assembly,
        new=done.new,
        usage=done.usage,
    )


def _path_or(value: Any, key: str) -> Any:
    """File options (``init_spec``, ``prompt_template``) as paths; the rest as given."""
    return as_path(value) if key in ("init_spec", "prompt_template") else value
