"""The one assembly of a search: data -> setup -> evaluator -> designer -> loop -> export.

`flnas search`, `flnas prompt`, `flnas baselines`, `flnas experiment`, `flnas report`, the Python API
(:func:`flnas.search` and friends) and bench/ build their searches here, so they cannot drift apart: one
way to open a study and resolve its setup (:func:`open_assembly`), one way to build its evaluator
(:func:`flnas.study.setup.evaluator_from_setup`), one way to create a designer from options, one call of
the loop, one export of the chosen model. Nothing here prints: messages go to a ``log`` callback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flnas.api import defaults
from flnas.errors import StudyError

if TYPE_CHECKING:
    import optuna

    from flnas.data.dataset import PreparedData
    from flnas.designers.base import Designer
    from flnas.evaluate import Evaluator
    from flnas.records import Candidate, TaskInfo
    from flnas.study.export import Exported
    from flnas.study.loop import SearchResult

Log = Callable[[str], None]


def _quiet(_message: str) -> None:
    """The default ``log``: a library call prints nothing unless asked."""


@dataclass
class Assembly:
    """A study with its setup, and what a search on it needs: data, evaluator, Choices, task.

    The data and the evaluator are built on first use (``flnas prompt`` and ``flnas report`` need neither).
    ``device`` says where this run trains (``--device``); it is not part of the study's setup.
    """

    study: optuna.Study
    setup: dict[str, Any]
    resumed: bool = False
    device: str | None = None
    _data: PreparedData | None = field(default=None, repr=False)
    _evaluator: Evaluator | None = field(default=None, repr=False)
    _choices: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.study.study_name

    @property
    def data(self) -> PreparedData:
        if self._data is None:
            from flnas.study.setup import data_from_setup

            self._data = data_from_setup(self.setup)
        return self._data

    @property
    def evaluator(self) -> Evaluator:
        if self._evaluator is None:
            from flnas.study.setup import evaluator_from_setup

            run_on = {"device": self.device} if self.device is not None else {}
            self._evaluator = evaluator_from_setup(self.setup, self.data, **run_on)
        return self._evaluator

    @property
    def choices(self) -> Any:
        if self._choices is None:
            from flnas.study.setup import choices_from_setup

            self._choices = choices_from_setup(self.setup)
        return self._choices

    @property
    def task(self) -> TaskInfo:
        from flnas.study.setup import task_from_setup

        return task_from_setup(self.setup)

    @property
    def accuracy(self) -> str:
        from flnas.study.setup import accuracy_from_setup

        return accuracy_from_setup(self.setup)

    @property
    def seed(self) -> int:
        return int(self.setup.get("seed", 0))


def open_assembly(
    study_name: str,
    storage: str | None,
    *,
    data: Path | None = None,
    subset: int | None = None,
    seed: int | None = None,
    image_size: int | None = None,
    cache_dir: Path | None = None,
    env: str | None = None,
    choices_path: Path | None = None,
    train: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
    accuracy: str | None = None,
    liveness: Any = None,
    progress: bool = False,
) -> Assembly:
    """Open or create the study and resolve its setup (:func:`flnas.study.setup.resolve_setup`).

    ``train`` holds the evaluator settings the user gave (see ``flnas.cli._options.train_overrides``);
    a resumed study keeps its own setup and refuses options that differ from it in one sentence.
    ``defaults`` fill in a new study's image size and evaluator settings. Workers started together on a
    new study: the first writes the setup under the claim lock, the others then read it.
    """
    from flnas.study.setup import resolve_setup
    from flnas.study.storage import get_setup, open_study
    from flnas.study.workers import claim_lock

    train = dict(train or {})
    study = open_study(study_name, storage, liveness=liveness)
    with claim_lock(study) if get_setup(study) is None else contextlib.nullcontext():
        setup, prepared, resumed = resolve_setup(
            study,
            data=data,
            subset=subset,
            seed=seed,
            image_size=image_size,
            cache_dir=cache_dir,
            env=env,
            choices_path=choices_path,
            train=train,
            defaults=dict(defaults or {}),
            accuracy=accuracy,
            progress=progress,
        )
    return Assembly(study, setup, resumed=resumed, device=train.get("device"), _data=prepared)


def load_assembly(study_name: str, storage: str | None) -> Assembly:
    """An existing study and its stored setup (a StudyError when something needs a setup it does not have)."""
    from flnas.study.storage import get_setup, open_study

    study = open_study(study_name, storage, create=False)
    return Assembly(study, get_setup(study) or {}, resumed=True)


def attach(
    study: optuna.Study,
    *,
    data: PreparedData,
    config: Any,
    choices: Any,
    env: str | None = None,
    accuracy: str | None = None,
    data_arg: str | Path | None = None,
) -> Assembly:
    """A fresh study on data prepared once (bench/ runs many searches on one split): writes its setup."""
    from flnas.study.setup import DEFAULT_ENV, NEW_STUDY, make_setup
    from flnas.study.storage import set_setup

    setup = make_setup(
        data=data,
        data_arg=data_arg,
        subset=None,
        seed=0,
        image_size=data.image_size,
        cache_dir=None,
        train=config,
        env=env or DEFAULT_ENV,
        choices=choices,
        accuracy=accuracy or NEW_STUDY["accuracy"],
    )
    set_setup(study, setup)
    return Assembly(study, setup, _data=data, _choices=choices)


def designer_options(name: str, given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(options the designer accepts, flags given that do not apply to it); None values are not given."""
    from flnas.designers.registry import designer_options as accepted_by

    accepted = accepted_by(name)
    unused = [
        key.replace("_", "-")
        for key, value in given.items()
        if value is not None and key not in accepted and key != "seed"
    ]
    return {k: v for k, v in given.items() if k in accepted and v is not None}, unused


def make_designer(name: str, **options: Any) -> Designer:
    """The designer registered as ``name`` (fails fast, e.g. the LLM designer without an endpoint)."""
    from flnas.designers.registry import create_designer

    return create_designer(name, **options)


def resume_designer(assembly: Assembly, designer: Designer, log: Log = _quiet) -> None:
    """The LLM designer starts from the structured-output mode that worked in this study before."""
    if hasattr(designer, "resume_study"):
        designer.resume_study(assembly.study, log=log)


def stored_iters(assembly: Assembly, default: int) -> int:
    """IterMax of the study's last search run (a resumed search keeps it), else ``default``."""
    from flnas.study.storage import get_search_settings

    return int(get_search_settings(assembly.study).get("iters") or default)


def run(
    assembly: Assembly,
    designer: Designer,
    *,
    iters: int,
    k: int = 1,
    selection: str | None = None,
    tolerance: float | None = None,
    out_dir: Path | None = None,
    log: Log = _quiet,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    on_candidate: Callable[[Candidate, Any], None] | None = None,
    seed: int | None = None,
    record_settings: bool = True,
) -> SearchResult:
    """Algorithm 1 on the assembled study (:func:`flnas.study.loop.run_search`).

    ``record_settings`` stores iters, k, the rule and the designer in the study, for `flnas prompt`,
    `flnas export --best` and `flnas report` (a second designer at the same budget, such as FaHaNa's RL
    search in the experiment, leaves them as they are). ``seed`` defaults to the study's.
    """
    from flnas.study.loop import run_search
    from flnas.study.storage import set_search_settings

    selection = defaults.SELECTION if selection is None else selection
    tolerance = defaults.TOLERANCE if tolerance is None else tolerance
    if record_settings:
        set_search_settings(
            assembly.study, iters=iters, candidates=k, selection=selection, tolerance=tolerance, designer=designer.name
        )
    return run_search(
        assembly.study,
        designer=designer,
        evaluator=assembly.evaluator,
        task=assembly.task,
        choices=assembly.choices,
        iters=iters,
        k=k,
        rule=selection,
        tolerance=tolerance,
        accuracy=assembly.accuracy,
        seed=assembly.seed if seed is None else seed,
        out_dir=out_dir,
        log=log,
        on_epoch=on_epoch,
        on_candidate=on_candidate,
    )


def study_designer(assembly: Assembly) -> str:
    """The designer of the study's search: the one its settings name, else the newest search trial's."""
    from flnas.study.history import load_candidates
    from flnas.study.storage import get_search_settings

    named = get_search_settings(assembly.study).get("designer")
    if named:
        return str(named)
    history = load_candidates(assembly.study)
    return max(history, key=lambda c: c.number).designer if history else "llm"


def next_prompt(
    assembly: Assembly, *, designer: str | None = None, template: Path | None = None, k: int = 1
) -> str:
    """The prompt the next iteration of ``designer``'s search (default: the study's) would send to the LLM.

    Built from the context the loop would give that designer (:func:`flnas.study.loop.design_context`):
    its own history and best so far, never another designer's.
    """
    from flnas.designers.prompt import PromptGenerator
    from flnas.records import Selection
    from flnas.study.assign import own_candidates
    from flnas.study.history import open_slot
    from flnas.study.loop import design_context
    from flnas.study.storage import get_search_settings

    settings = get_search_settings(assembly.study)
    history = own_candidates(assembly.study, designer or study_designer(assembly))
    slot = open_slot(history, iters=max(int(settings.get("iters") or 10**6), 1), k=k)
    iteration = slot[0] if slot else max((c.iteration for c in history), default=0) + 1
    chosen = Selection(
        rule=str(settings.get("selection") or defaults.SELECTION),
        tolerance=float(settings.get("tolerance", defaults.TOLERANCE)),
        accuracy=assembly.accuracy,
    )
    context = design_context(
        history,
        iteration=iteration,
        attempt=sum(1 for c in history if c.iteration == iteration),
        seed=assembly.seed,
        choices=assembly.choices,
        task=assembly.task,
        selection=chosen,
        log=_quiet,
    )
    return PromptGenerator(template).build(context)


def export_best(assembly: Assembly, best: Candidate | None, target: str | Path) -> Exported:
    """Write the chosen candidate's files (model.onnx, model.py, model.pt, spec.json, metrics.json,
    predictions.csv) to ``target``: copied from its run folder, else retrained with the study's seed."""
    from flnas.study.export import export_candidate

    if best is None:
        raise StudyError(f"study {assembly.name!r} has no evaluated candidate to export")
    # the run's evaluator when there is one (its device); else export_candidate builds the study's if it retrains
    evaluator = assembly.evaluator if assembly._data is not None else None
    return export_candidate(assembly.study, best, Path(target), retrain=None, evaluator=evaluator)


def usage_totals(study: Any) -> dict[str, int]:
    """Token usage summed over every search trial of the study (all runs, not just this one)."""
    totals: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("kind") != "search":
            continue
        for key, value in ((t.user_attrs.get("record") or {}).get("usage") or {}).items():
            if isinstance(value, (int, float)):
                totals[key] = totals.get(key, 0) + int(value)
    return totals


def prompt_sizes(study: Any) -> dict[int, int]:
    """Iteration -> the largest first-prompt size in tokens (from ``usage``) of its LLM proposals."""
    sizes: dict[int, int] = {}
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("kind") != "search":
            continue
        tokens = ((t.user_attrs.get("record") or {}).get("prompt_size") or {}).get("tokens")
        iteration = t.user_attrs.get("iteration")
        if isinstance(tokens, int) and isinstance(iteration, int):
            sizes[iteration] = max(sizes.get(iteration, 0), tokens)
    return dict(sorted(sizes.items()))
