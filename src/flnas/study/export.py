"""Export a candidate's files (the `flnas evaluate --out` set) again, from its run folder or from the study.

Three sources, in this order of preference:

- the candidate's run folder (``candidates/<n>/``, named in its record) when it is complete: copied as is;
- ``retrain``: the candidate is trained again with the study's setup and seed (data, training settings,
  Choices) and every file is written from that run; its ``metrics.json`` holds the new measurements;
- the study alone: ``spec.json``, ``model.py`` (the architecture) and ``metrics.json`` (the metrics
  recorded when it was measured). The study does not keep trained weights, so ``model.pt``, ``model.onnx``
  and ``predictions.csv`` need ``retrain``.

The files are written into a temporary folder next to the target and renamed into place, so the target is
either the previous export or the complete new one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from flnas.errors import FlnasError, StudyError
from flnas.records import Candidate

WEIGHT_FILES = ("model.pt", "model.onnx", "predictions.csv")


@dataclass
class Exported:
    """What an export wrote: ``source`` is "run folder", "retrained" or "study"."""

    target: Path
    source: str
    files: list[str]
    missing: list[str] = field(default_factory=list)  # files that need the trained weights (``retrain``)
    metrics: dict[str, Any] | None = None


def select_candidate(study: optuna.Study, *, number: int | None = None, best: bool = False) -> Candidate:
    """Trial ``number`` (any kind), or the search's OptDNN by the study's selection rule (``best``)."""
    from flnas.records import DEFAULT_RULE, DEFAULT_TOLERANCE, get_best
    from flnas.study.history import load_candidates
    from flnas.study.storage import get_search_settings

    if best == (number is not None):
        raise FlnasError("give exactly one of --trial N and --best")
    if number is not None:
        found = [c for c in load_candidates(study, kind=None) if c.number == number]
        if not found:
            raise StudyError(f"study {study.study_name!r} has no trial #{number}")
        candidate = found[0]
        if candidate.spec is None or candidate.status in ("failed", "invalid", "running") or not candidate.metrics:
            raise StudyError(
                f"trial #{number} of study {study.study_name!r} has no measured architecture to export "
                f"(status {candidate.status}{': ' + candidate.reason if candidate.reason else ''})"
            )
        return candidate
    settings = get_search_settings(study)
    designer = settings.get("designer")
    own = [c for c in load_candidates(study) if not designer or c.designer == designer]
    chosen = get_best(
        own,
        rule=str(settings.get("selection") or DEFAULT_RULE),
        tolerance=float(settings.get("tolerance", DEFAULT_TOLERANCE)),
    )
    if chosen is None:
        raise StudyError(f"study {study.study_name!r} has no evaluated search candidate to export")
    return chosen


def export_candidate(
    study: optuna.Study,
    candidate: Candidate,
    target: str | Path,
    *,
    retrain: bool | None = False,
    evaluator: Any = None,
) -> Exported:
    """Write ``candidate``'s files into ``target`` (see the module docstring); ``retrain`` None: only when
    the run folder is gone. ``evaluator`` (for retraining) defaults to one built from the study's setup."""
    from flnas.study.history import trial_record

    target = Path(target)
    _check_target(target)
    source = _run_folder(trial_record(study, candidate.number).get("artifacts"))
    staged = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staged, ignore_errors=True)
    try:
        if source is not None and not retrain:
            exported = _copy(source, staged, target)
        elif retrain or retrain is None:
            exported = _retrain(study, candidate, staged, target, evaluator)
        else:
            exported = _from_study(study, candidate, staged, target)
        _swap(staged, target)
    except OSError as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise FlnasError(f"{target}: cannot write the exported files ({exc.strerror or exc})") from exc
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return exported


def _run_folder(path: Any) -> Path | None:
    """The candidate's complete run folder, or None (never written, removed, or not complete)."""
    if not path:
        return None
    folder = Path(path)
    return folder if (folder / "metrics.json").is_file() else None


def _check_target(target: Path) -> None:
    """Replace an earlier export, never a folder of something else."""
    if target.exists() and not target.is_dir():
        raise FlnasError(f"--out {target} is a file; pass a folder")
    if target.is_dir() and any(target.iterdir()):
        if not ((target / "metrics.json").is_file() or (target / "spec.json").is_file()):
            raise FlnasError(f"--out {target} is a folder with other files in it; pass a new or empty folder")


def _copy(source: Path, staged: Path, target: Path) -> Exported:
    staged.mkdir(parents=True)
    names = []
    for path in sorted(source.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            shutil.copyfile(path, staged / path.name)
            names.append(path.name)
    return Exported(target, "run folder", names)


def _retrain(study: optuna.Study, candidate: Candidate, staged: Path, target: Path, evaluator: Any) -> Exported:
    from flnas.evaluate.artifacts import ArtifactsError

    if evaluator is None:
        from flnas.study.setup import evaluator_from_setup
        from flnas.study.storage import get_setup

        evaluator = evaluator_from_setup(get_setup(study))
    try:
        result = evaluator.evaluate(candidate.spec, name=f"trial-{candidate.number}", out_dir=staged)
    except ArtifactsError as exc:
        raise FlnasError(f"{target}: cannot write the exported files ({exc})") from exc
    if not result.ok:
        raise StudyError(f"could not export trial #{candidate.number}: retraining failed ({result.reason})")
    return Exported(target, "retrained", sorted(p.name for p in staged.iterdir()), metrics=result.metrics)


def _from_study(study: optuna.Study, candidate: Candidate, staged: Path, target: Path) -> Exported:
    from flnas.evaluate.artifacts import save_artifacts
    from flnas.study.storage import get_setup

    dataset = (candidate.metrics or {}).get("dataset") or {}
    setup = get_setup(study) or {}
    classes = list(setup.get("classes") or dataset.get("classes") or [])
    if not classes:
        raise StudyError(
            f"study {study.study_name!r} records no classes; cannot write trial #{candidate.number}'s code"
        )
    written = save_artifacts(
        staged,
        spec=candidate.spec,
        model=None,
        metrics=dict(candidate.metrics or {}),
        predictions=None,
        num_classes=len(classes),
        image_size=int(setup.get("image_size") or dataset.get("image_size") or 0),  # only ONNX needs it
        final_dir=target,
    )
    return Exported(target, "study", sorted(written), missing=list(WEIGHT_FILES), metrics=candidate.metrics)


def _swap(staged: Path, target: Path) -> None:
    """Put the complete staged folder at ``target``; an earlier export there is removed afterwards."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staged, target)
    shutil.rmtree(old, ignore_errors=True)
