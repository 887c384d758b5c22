"""The paper's baselines (ResNet-18/34, MobileNetV1/V2) trained under exactly the evaluator's settings.

Each baseline is a timm model built with ``pretrained=False`` (nothing is downloaded) and recorded in the same
study as the search, as ``kind="baseline"``, so that Table I compares numbers from one run on one dataset.
This module also holds the two study helpers the report needs: reading candidates of any kind, and recording
a finished evaluation as a trial in the layout of :mod:`flnas.study.storage`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flnas.errors import FlnasError
from flnas.jsonsafe import json_safe
from flnas.records import Candidate, accuracy_key, unfairness_value

if TYPE_CHECKING:
    import optuna
    from torch import nn

# registry name -> timm model name; the order is Table I's.
BASELINES: dict[str, str] = {
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "mobilenetv1": "mobilenetv1_100",
    "mobilenetv2": "mobilenetv2_100",
}
BASELINE_LABELS: dict[str, str] = {
    "resnet18": "ResNet-18",
    "resnet34": "ResNet-34",
    "mobilenetv1": "MobileNetV1",
    "mobilenetv2": "MobileNetV2",
}
BASELINE_DESIGNER = "baseline"


def baseline_names() -> list[str]:
    return list(BASELINES)


def parse_models(text: str | list[str] | None) -> list[str]:
    """Turn ``"resnet18,mobilenetv2"`` into a checked list of registry names (all of them when empty)."""
    if not text:
        return baseline_names()
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [item.strip().lower() for item in items if item.strip()]
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise FlnasError(f"--models: unknown baseline {unknown[0]!r}; choose from {', '.join(BASELINES)}")
    return list(dict.fromkeys(names))


def create_baseline(name: str, num_classes: int, *, seed: int | None = None) -> nn.Module:
    """Build a baseline from timm with random weights (drawn with ``seed``) and ``num_classes`` outputs."""
    import timm
    import torch

    if name not in BASELINES:
        raise FlnasError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    if seed is not None:  # the evaluator seeds spec-built models itself; a module arrives already initialised
        torch.manual_seed(seed)
    return timm.create_model(BASELINES[name], pretrained=False, num_classes=num_classes)


def baseline_label(name: str) -> str:
    return BASELINE_LABELS.get(name, name)


# --- study records -------------------------------------------------------------------------------------


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


def record_trial(study: optuna.Study, *, status: str, metrics: dict[str, Any] | None, **attrs: Any) -> int:
    """Store one finished evaluation as a trial (COMPLETE with values if ok, else FAIL); return its number.

    The values follow the study's accuracy setting; an ok evaluation whose validation predictions are
    degenerate (:mod:`flnas.study.degenerate`) is stored with status "degenerate" and the reason, as FAIL
    (except a re-run of a Table I row, kind "repeat").
    """
    import optuna

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
    state = optuna.trial.TrialState.COMPLETE if values is not None else optuna.trial.TrialState.FAIL
    trial = optuna.trial.create_trial(state=state, values=values, user_attrs=json_safe(user_attrs))
    study.add_trial(trial)
    return study.get_trials(deepcopy=False)[-1].number


def load_records(study: optuna.Study, kind: str) -> list[tuple[Candidate, dict[str, Any]]]:
    """Candidates of one kind, oldest first, with each trial's user attributes (for repeat_of, seed, ...)."""
    from flnas.study.history import candidate_from_trial

    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    return [(candidate_from_trial(t), dict(t.user_attrs)) for t in trials if t.user_attrs.get("kind") == kind]


def load_kind(study: optuna.Study, kind: str) -> list[Candidate]:
    """Candidates of one kind ("search", "baseline", "repeat"), oldest first."""
    from flnas.study.history import load_candidates

    return load_candidates(study, kind=kind)


# --- running ---------------------------------------------------------------------------------------------


def run_baselines(
    study: optuna.Study,
    models: list[str],
    evaluator: Any,
    *,
    out_dir: Path | None = None,
    log: Callable[[str], None] = print,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[Candidate]:
    """Train each baseline with ``evaluator`` and record it in ``study``; ok baselines already there are kept.

    A failure (the evaluator's, or timm's) is recorded with its reason and the loop goes on.
    Returns the study's baseline candidates for ``models`` after the run (one per model, the latest ok one).
    """
    models = parse_models(models)
    trained = ("ok", "degenerate")  # a degenerate baseline was trained to the end: not retrained
    done = {c.baseline for c in load_kind(study, "baseline") if c.status in trained}
    num_classes = evaluator.data.num_classes
    seed = getattr(evaluator.config, "seed", None)
    for name in models:
        if name in done:
            log(f"baseline {baseline_label(name)}: already in the study, not retrained")
            continue
        log(f"baseline {baseline_label(name)}: training")
        target_dir = Path(out_dir) / "baselines" / name if out_dir else None
        try:
            model = create_baseline(name, num_classes, seed=seed)
            result = evaluator.evaluate(model, name=name, out_dir=target_dir, on_epoch=on_epoch)
            status, reason, metrics = result.status, result.reason, result.metrics
        except FlnasError:
            raise
        except Exception as exc:  # a model that cannot be built or trained is a recorded failure, not a crash
            status, reason, metrics = "failed", f"{type(exc).__name__}: {exc}", None
        number = record_trial(
            study,
            status=status,
            metrics=metrics,
            reason=reason,
            kind="baseline",
            designer=BASELINE_DESIGNER,
            baseline=name,
            spec=None,
            spec_key=None,
            seed=seed,
            record={"timm_model": BASELINES[name]},
        )
        stored = study.get_trials(deepcopy=False)[number].user_attrs  # record_trial may call it degenerate
        status, reason = stored.get("status", status), stored.get("reason", reason)
        message = "ok" if status == "ok" else f"{status}: {reason}"
        log(f"baseline {baseline_label(name)}: {message} (trial {number})")
    latest: dict[str, Candidate] = {}
    for candidate in load_kind(study, "baseline"):
        if candidate.baseline in models and (candidate.status in trained or candidate.baseline not in latest):
            latest[candidate.baseline] = candidate
    return [latest[name] for name in models if name in latest]
