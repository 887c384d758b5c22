"""Degenerate candidates: the definition, and what the loop, baselines and the prompt do with them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from optuna.trial import TrialState

from flnas.designers.base import DesignContext
from flnas.designers.prompt import PromptGenerator
from flnas.records import Selection, is_evaluated
from flnas.space import load_choices
from flnas.study.degenerate import CHANCE_MARGIN, DOMINANT_SHARE, degenerate_reason
from flnas.study.history import load_candidates
from flnas.study.loop import run_search
from flnas.study.storage import open_study
from test_designers import TASK
from test_study_loop import Scripted, spec_with

CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]


def metrics(predicted, true=None, balanced=0.4, accuracy=0.6):
    true = true or [10, 50, 10, 5, 10, 5, 5, 5]
    return {
        "dataset": {"classes": CLASSES},
        "params": 1000,
        "val": {
            "accuracy": accuracy,
            "balanced_accuracy": balanced,
            "unfairness": 0.0,
            "class_counts": {"true": true, "predicted": predicted},
        },
    }


def test_one_predicted_class_over_the_share_is_degenerate():
    assert DOMINANT_SHARE == 0.95
    reason = degenerate_reason(metrics([0, 95, 0, 0, 5, 0, 0, 0]))  # 95 of 100 are NV
    assert reason is not None and "95.0% of the 100 validation images are predicted as NV" in reason
    assert degenerate_reason(metrics([0, 94, 0, 0, 6, 0, 0, 0])) is None  # 94%: not (balanced acc 0.4)


def test_balanced_accuracy_at_chance_is_degenerate_even_when_spread():
    spread = [12, 13, 12, 13, 12, 13, 12, 13]
    limit = (1 + CHANCE_MARGIN) / 8
    assert "no better than chance (1/8 = 12.50%" in degenerate_reason(metrics(spread, balanced=limit))
    assert degenerate_reason(metrics(spread, balanced=limit + 0.001)) is None
    # only the classes present in the split count: 2 present -> chance is 1/2
    two = [50, 50, 0, 0, 0, 0, 0, 0]
    assert "1/2" in degenerate_reason(metrics(two, true=[50, 50, 0, 0, 0, 0, 0, 0], balanced=0.52))
    assert degenerate_reason(metrics(two, true=[50, 50, 0, 0, 0, 0, 0, 0], balanced=0.6)) is None


def test_metrics_without_counts_use_the_chance_rule_and_nothing_is_not_degenerate():
    old = {"dataset": {"classes": CLASSES}, "val": {"accuracy": 0.7, "balanced_accuracy": 0.125}}
    assert "chance" in degenerate_reason(old)
    assert degenerate_reason({"val": {"accuracy": 0.7}}) is None
    assert degenerate_reason(None) is None and degenerate_reason({}) is None


class OneClassEvaluator:
    """Channels 16: a one-class predictor; otherwise a useful model."""

    def evaluate(self, spec, *, name=None, out_dir=None, on_epoch=None):
        ch = spec["layers"][0]["channels"]
        one = ch == 16
        m = metrics(
            [0, 100, 0, 0, 0, 0, 0, 0] if one else [10, 50, 10, 5, 10, 5, 5, 5],
            balanced=0.125 if one else 0.3 + ch / 1000,
            accuracy=0.9 if one else 0.5,  # the one-class model wins on plain accuracy
        )
        m["val"]["groups"] = {"male": {"accuracy": m["val"]["accuracy"], "count": 5}}
        return SimpleNamespace(status="ok", reason=None, metrics=m)


@pytest.mark.parametrize("accuracy", ["balanced", "plain"])
def test_loop_records_degenerate_never_best_and_counts_it(tmp_path, accuracy):
    study = open_study("d", str(tmp_path / "s.db"))
    designer = Scripted([spec_with(16), spec_with(32), spec_with(64)])
    result = run_search(
        study,
        designer=designer,
        evaluator=OneClassEvaluator(),
        task=TASK,
        choices=load_choices(None),
        iters=3,
        accuracy=accuracy,
        log=lambda _m: None,
    )
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["status"] == "degenerate"
    assert "predicted as NV" in trials[0].user_attrs["reason"]
    assert trials[0].user_attrs["metrics"]["val"]["accuracy"] == 0.9  # the metrics are kept
    cands = load_candidates(study)
    assert cands[0].status == "degenerate" and is_evaluated(cands[0])
    assert result.evaluated == 3 and len(trials) == 3  # it counts towards IterMax
    assert result.best is not None and result.best.number != 0
    assert all(c.best is None or c.best.number != 0 for c in designer.contexts)
    assert all(c.selection == Selection("fair", 0.02, accuracy) for c in designer.contexts)
    first = "balanced_accuracy" if accuracy == "balanced" else "accuracy"
    assert trials[1].values[0] == trials[1].user_attrs["metrics"]["val"][first]
    # the prompt lists it among the failures, with the reason
    context = DesignContext(
        history=cands, best=result.best, choices=load_choices(None), task=TASK, iteration=4, rng=None
    )
    text = PromptGenerator().build(context)
    assert "degenerate: 100.0% of the 100 validation images are predicted as NV" in text
    assert "invalid, failed in training, or degenerate" in text


def test_baseline_records_degenerate(tmp_path):
    from flnas.study.history import load_candidates as load_kind
    from flnas.study.recording import add_trial as record_trial

    study = open_study("b", str(tmp_path / "s.db"))
    number = record_trial(
        study, status="ok", metrics=metrics([0, 100, 0, 0, 0, 0, 0, 0], balanced=0.125), kind="baseline",
        baseline="resnet18", reason=None,
    )
    [c] = load_kind(study, "baseline")
    assert c.number == number and c.status == "degenerate" and "predicted as NV" in c.reason
    assert study.get_trials()[0].state == TrialState.FAIL
    ok = record_trial(study, status="ok", metrics=metrics([10, 50, 10, 5, 10, 5, 5, 5]), kind="baseline")
    assert study.get_trials()[ok].values == [0.6, 0.0, 1000.0]  # no setup: a plain (old) study
