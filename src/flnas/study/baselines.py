"""Train the paper's baselines under exactly the study's evaluator and record them in the study.

The models are :mod:`flnas.evaluate.baselines`; each finished training is one ``kind="baseline"`` trial,
written by :func:`flnas.study.recording.add_trial` like every other finished evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flnas.errors import FlnasError
from flnas.evaluate.baselines import BASELINE_DESIGNER, BASELINES, baseline_label, create_baseline, parse_models
from flnas.records import Candidate
from flnas.study.history import load_candidates
from flnas.study.recording import add_trial

if TYPE_CHECKING:
    import optuna


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
    done = {c.baseline for c in load_candidates(study, "baseline") if c.status in trained}
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
        number = add_trial(
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
        stored = study.get_trials(deepcopy=False)[number].user_attrs  # add_trial may call it degenerate
        status, reason = stored.get("status", status), stored.get("reason", reason)
        message = "ok" if status == "ok" else f"{status}: {reason}"
        log(f"baseline {baseline_label(name)}: {message} (trial {number})")
    latest: dict[str, Candidate] = {}
    for candidate in load_candidates(study, "baseline"):
        if candidate.baseline in models and (candidate.status in trained or candidate.baseline not in latest):
            latest[candidate.baseline] = candidate
    return [latest[name] for name in models if name in latest]
