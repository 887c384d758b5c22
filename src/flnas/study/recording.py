"""The one writer of trials: a finished candidate into the study and its files into the run folder, so
that neither is lost or torn (:func:`record_trial`); a finished evaluation made outside the loop, a
baseline or a re-run, as a new trial (:func:`add_trial`).

A candidate's files are written into a hidden temporary folder ``candidates/.<n>.partial/``; when they are
complete, the study record that is about to be written goes next to them (``.pending.json``), then the
study is written, then the folder is renamed to ``candidates/<n>/`` (one atomic rename). The pending record
is the commit point: a process killed at any moment leaves either

- no pending record: the candidate had not finished (training, or writing its files); the temporary folder
  is removed and the trial is marked interrupted and designed again, as for a kill during training;
- a pending record: the next run writes it into the study if the study does not have it yet (so the
  candidate is not trained again) and finishes the rename.

So ``candidates/<n>/`` is always complete, and a candidate whose files exist is never trained again.
A run folder that cannot be written (full disk, read-only) does not lose a measured candidate either: its
metrics are recorded (status kept, with ``record["artifacts_error"]``) and its files can be rebuilt later
(``flnas export``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from flnas.errors import FlnasError
from flnas.jsonsafe import json_safe
from flnas.records import accuracy_key, unfairness_value

PENDING = ".pending.json"


def candidate_dir(out_dir: str | Path, number: int) -> Path:
    """Where trial ``number``'s files live once complete."""
    return Path(out_dir) / "candidates" / str(number)


def staging_dir(out_dir: str | Path, number: int) -> Path:
    """The hidden folder trial ``number``'s files are written into before the rename."""
    return Path(out_dir) / "candidates" / f".{number}.partial"


def check_out_dir(out_dir: str | Path) -> None:
    """Fail before any training when the run folder cannot take candidates' files (read-only, a file)."""
    root = Path(out_dir) / "candidates"
    probe = root / f".write-test-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise FlnasError(
            f"--out {out_dir}: cannot write candidates' files there ({exc.strerror or exc}); pass a writable folder"
        ) from exc


def record_trial(
    study: optuna.Study,
    trial: optuna.trial.Trial,
    status: str,
    reason: str | None,
    metrics: dict[str, Any] | None,
    record: dict[str, Any],
    values: list[float] | None = None,
) -> None:
    """Write a finished trial: its attributes, then its status, then its state (COMPLETE with values, or FAIL).

    The status goes last so that a storage failure part-way (a full disk) does not leave a RUNNING trial
    that claims to be ok; if the final step fails, the status is put back to "running" when the storage
    still allows it, and the error propagates (the next run marks the trial interrupted or replays its
    pending record).
    """
    trial.set_user_attr("reason", reason)
    trial.set_user_attr("metrics", metrics)
    trial.set_user_attr("record", record)
    trial.set_user_attr("status", status)
    try:
        if values is not None:
            study.tell(trial, values)
        else:
            study.tell(trial, state=TrialState.FAIL)
    except Exception:
        try:
            trial.set_user_attr("status", "running")
        except Exception:  # the storage refuses every write now; the original error says why
            pass
        raise


def write_pending(staged: Path, payload: dict[str, Any]) -> None:
    """Commit a staged folder: the study record about to be written (status, reason, metrics, record, values).

    Written to a temporary name, flushed to disk and renamed, so the pending record is whole or absent.
    """
    tmp = staged / (PENDING + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, staged / PENDING)


def publish(out_dir: str | Path, number: int) -> Path:
    """Rename the staged folder of trial ``number`` to ``candidates/<n>`` (replacing a stale one)."""
    staged, final = staging_dir(out_dir, number), candidate_dir(out_dir, number)
    (staged / PENDING).unlink(missing_ok=True)
    if final.exists():  # left by an earlier study that used the same run folder
        old = final.with_name(f".{number}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(staged, final)
    return final


def stage(
    out_dir: str | Path, number: int, evaluation: Any, *, spec: Any, task: Any, payload: dict[str, Any]
) -> str | None:
    """Write a measured candidate's files and its pending study record into its staging folder.

    Returns None when staged (``record["artifacts"]`` names the final folder), else why not; then the note
    goes into the record (``artifacts_error``), so the study says why the files are missing.
    """
    from flnas.evaluate.artifacts import ArtifactsError, save_artifacts

    staged, final = staging_dir(out_dir, number), candidate_dir(out_dir, number)
    record = payload["record"]
    discard(out_dir, number)
    try:
        save_artifacts(
            staged,
            spec=getattr(evaluation, "spec", None) or spec,
            model=getattr(evaluation, "model", None),
            metrics=dict(getattr(evaluation, "metrics", None) or {}),
            predictions=getattr(evaluation, "predictions", None),
            num_classes=len(task.classes),
            image_size=task.image_size,
            final_dir=final,
        )
        record["artifacts"] = str(final.absolute())  # `flnas export` may run from another folder
        write_pending(staged, payload)
    except (ArtifactsError, OSError) as exc:
        discard(out_dir, number)
        record.pop("artifacts", None)
        why = str(exc) if isinstance(exc, ArtifactsError) else f"{final}: cannot write ({exc.strerror or exc})"
        record["artifacts_error"] = why
        return why
    return None


def stop_message(study_name: str, number: int, why: str) -> str:
    """The one sentence that ends a search whose run folder stopped taking a measured candidate's files."""
    return (
        f"trial #{number} was measured and its metrics are kept in the study, but its files could not be "
        f"written: {why}; the search stops here -- free space (or pass another --out) and run it again, and "
        f"rebuild this trial's files with `flnas export --study {study_name} --trial {number} --retrain --out DIR`"
    )


def discard(out_dir: str | Path, number: int) -> None:
    """Remove trial ``number``'s staged folder (its files were not committed)."""
    shutil.rmtree(staging_dir(out_dir, number), ignore_errors=True)


def recover(
    study: optuna.Study,
    out_dir: str | Path,
    *,
    alive: Callable[[dict[str, Any]], bool],
    log: Callable[[str], None],
) -> list[int]:
    """Finish what a killed run left in ``out_dir/candidates``; return the trials recorded from a pending record.

    ``alive(owner)`` tells whether a trial's evaluating process still runs (then its folder is left alone).
    """
    root = Path(out_dir) / "candidates"
    if not root.is_dir():
        return []
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    recorded: list[int] = []
    for staged in sorted(root.glob(".*.partial")):
        try:
            number = int(staged.name[1 : -len(".partial")])
        except ValueError:
            continue
        trial = trials.get(number)
        owner = ((trial.user_attrs.get("record") or {}).get("owner") or {}) if trial is not None else {}
        if trial is not None and trial.state == TrialState.RUNNING and alive(owner):
            continue
        payload = _read_pending(staged)
        if trial is None or payload is None or not _same_trial(trial, payload):
            discard(out_dir, number)
            continue
        if trial.state == TrialState.RUNNING:
            live = optuna.trial.Trial(study, trial._trial_id)
            record_trial(study, live, **payload)
            recorded.append(number)
            log(f"trial #{number} had finished before the last run stopped; its result is recorded now")
        elif trial.state != TrialState.COMPLETE and payload.get("values") is not None:
            discard(out_dir, number)  # the study gave up on it (interrupted); the folder is not its result
            continue
        publish(out_dir, number)
    return recorded


def _read_pending(staged: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads((staged / PENDING).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    keys = {"status", "reason", "metrics", "record", "values"}
    return payload if isinstance(payload, dict) and set(payload) == keys else None


def _same_trial(trial: optuna.trial.FrozenTrial, payload: dict[str, Any]) -> bool:
    """The pending record was written for this trial (not for a trial of another study in the same folder)."""
    stored = trial.user_attrs.get("record") or {}
    pending = payload.get("record") or {}
    return (
        bool(stored.get("started"))
        and stored.get("started") == pending.get("started")
        and stored.get("owner") == pending.get("owner")
    )


def trial_values(metrics: dict[str, Any] | None, accuracy: str = "plain") -> list[float] | None:
    """The study's objective values ``[val accuracy of record, val unfairness, params]``; None when missing.

    ``accuracy`` is the study's accuracy setting ("balanced" or "plain"); plain val accuracy must be
    there either way (it is what the evaluator always reports).
    """
    if not metrics:
        return None
    val = metrics.get("val") or {}
    record, params = val.get(accuracy_key(accuracy)), metrics.get("params")
    if val.get("accuracy") is None or record is None or params is None:
        return None
    return [float(record), unfairness_value(val.get("unfairness")), float(params)]


def add_trial(study: optuna.Study, *, status: str, metrics: dict[str, Any] | None, **attrs: Any) -> int:
    """Store one finished evaluation made outside the loop (a baseline, a re-run) as a new trial; its number.

    COMPLETE with values if ok, else FAIL. The values follow the study's accuracy setting; an ok
    evaluation whose validation predictions are degenerate (:mod:`flnas.study.degenerate`) is stored with
    status "degenerate" and the reason, as FAIL (except a re-run of a Table I row, kind "repeat").
    """
    from flnas.study.degenerate import DEGENERATE, degenerate_reason
    from flnas.study.setup import accuracy_from_setup
    from flnas.study.storage import get_setup

    values = trial_values(metrics, accuracy_from_setup(get_setup(study))) if status == "ok" else None
    if status == "ok" and values is None:
        status, attrs["reason"] = "failed", "the evaluator returned no validation accuracy or params"
    # a re-run (kind "repeat") is one seed of a row already in Table I: it keeps "ok" so the row's mean
    # includes it (and is redone never), whatever its predictions
    if status == "ok" and attrs.get("kind") != "repeat" and (why := degenerate_reason(metrics)) is not None:
        status, attrs["reason"], values = DEGENERATE, why, None
    user_attrs = {"status": status, "metrics": metrics, **attrs}
    user_attrs.setdefault("reason", None)
    state = TrialState.COMPLETE if values is not None else TrialState.FAIL
    study.add_trial(optuna.trial.create_trial(state=state, values=values, user_attrs=json_safe(user_attrs)))
    return study.get_trials(deepcopy=False)[-1].number
