"""Re-train chosen candidates with other seeds, so that Table I's cells can show mean +/- std.

Each re-run uses the study's own setup (same data, split and evaluator settings) with only the training seed
changed to ``seed + r`` for r = 1..R, and is recorded in the study as ``kind="repeat"`` with ``repeat_of``
(the original trial number) and ``repeat`` (r). A re-run already recorded as ok is never trained again, so an
interrupted ``flnas report --repeats R`` resumes where it stopped. Which candidates are re-run (Table I's
rows) is the report's choice: :func:`flnas.report.repeats.run_repeats`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flnas.errors import FlnasError
from flnas.evaluate.baselines import create_baseline
from flnas.records import Candidate
from flnas.study.history import load_trials
from flnas.study.recording import add_trial

if TYPE_CHECKING:
    import optuna


def done_repeats(study: optuna.Study) -> set[tuple[int, int]]:
    """(repeat_of, repeat) pairs that already have an ok re-run."""
    return {
        (int(attrs["repeat_of"]), int(attrs["repeat"]))
        for candidate, attrs in load_trials(study, "repeat")
        if candidate.status == "ok" and attrs.get("repeat_of") is not None and attrs.get("repeat") is not None
    }


def _evaluator_factory(setup: dict[str, Any], data: Any) -> Callable[[int], Any]:
    """seed -> Evaluator on the study's data with the study's settings, Choices and that training seed
    (the split seed, so the test set, stays)."""
    from flnas.study.setup import data_from_setup, evaluator_from_setup

    if data is None:
        data = data_from_setup(setup)

    def make(seed: int) -> Any:
        return evaluator_from_setup(setup, data, seed=seed)

    return make


def rerun(
    study: optuna.Study,
    rows: Sequence[tuple[str, Candidate]],
    repeats: int,
    *,
    data: Any = None,
    evaluator_for_seed: Callable[[int], Any] | None = None,
    out_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Re-train each (label, candidate) ``repeats`` times with seeds +1..+repeats; return how many ran.

    ``evaluator_for_seed`` (seed -> evaluator) replaces the study's evaluator, for tests; by default the
    study's setup is used (``data`` skips rebuilding its dataset when the caller already has it).
    """
    setup = study.user_attrs.get("setup")
    base_seed = int(((setup or {}).get("train") or {}).get("seed", 0))
    done = done_repeats(study)
    todo = [(row, r) for row in rows for r in range(1, repeats + 1) if (row[1].number, r) not in done]
    if not todo:
        log(f"repeats: all {repeats} re-runs of {len(rows)} rows are already in the study")
        return 0
    make = evaluator_for_seed or _evaluator_factory(setup or {}, data)
    evaluators: dict[int, Any] = {}
    for (label, candidate), r in todo:
        seed = base_seed + r
        if seed not in evaluators:
            evaluators[seed] = make(seed)
        log(f"repeat {r}/{repeats} of {label} (trial {candidate.number}, seed {seed})")
        status, reason, metrics = _evaluate(evaluators[seed], label, candidate, out_dir, r)
        add_trial(
            study,
            status=status,
            metrics=metrics,
            reason=reason,
            kind="repeat",
            designer=candidate.designer,
            baseline=candidate.baseline,
            spec=candidate.spec,
            spec_key=None,
            seed=seed,
            repeat_of=candidate.number,
            repeat=r,
            iteration=candidate.iteration,
            record={"label": label},
        )
        if status != "ok":
            log(f"repeat {r} of {label}: {status}: {reason}")
    return len(todo)


def _evaluate(
    evaluator: Any, label: str, candidate: Candidate, out_dir: Path | None, r: int
) -> tuple[str, str | None, dict | None]:
    target: Any = candidate.spec
    try:
        if candidate.baseline:
            target = create_baseline(candidate.baseline, evaluator.data.num_classes, seed=evaluator.config.seed)
        if target is None:
            return "failed", "the original candidate has no spec to re-train", None
        run_dir = Path(out_dir) / "repeats" / f"{label}-{r}" if out_dir else None
        result = evaluator.evaluate(target, name=f"{label} repeat {r}", out_dir=run_dir)
    except FlnasError:
        raise
    except Exception as exc:  # a re-run that cannot train is recorded, the others go on
        return "failed", f"{type(exc).__name__}: {exc}", None
    return result.status, result.reason, result.metrics
