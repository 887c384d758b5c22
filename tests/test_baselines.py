"""Baselines: the timm registry, and run_baselines' recording, resume and failure handling."""

from __future__ import annotations

import optuna
import pytest
import torch

from flnas.errors import FlnasError
from flnas.evaluate.baselines import BASELINES, create_baseline, parse_models
from flnas.study.baselines import run_baselines
from flnas.study.storage import DIRECTIONS


def test_parse_models():
    assert parse_models("") == list(BASELINES)
    assert parse_models("MobileNetV2, resnet18,resnet18") == ["mobilenetv2", "resnet18"]
    with pytest.raises(FlnasError, match="unknown baseline 'vgg16'"):
        parse_models("resnet18,vgg16")


@pytest.mark.parametrize("name", list(BASELINES))
def test_every_baseline_builds_without_weights_and_classifies(name):
    model = create_baseline(name, 8, seed=0).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, 8)


def test_seed_fixes_the_initial_weights():
    a, b = create_baseline("resnet18", 8, seed=3), create_baseline("resnet18", 8, seed=3)
    c = create_baseline("resnet18", 8, seed=4)
    first = next(a.parameters())
    assert torch.equal(first, next(b.parameters())) and not torch.equal(first, next(c.parameters()))


class FakeEvaluator:
    """Counts calls; fails the models named in ``fail``."""

    def __init__(self, fail=()):
        self.config = type("C", (), {"seed": 0})()
        self.data = type("D", (), {"num_classes": 8})()
        self.fail, self.calls = set(fail), []

    def evaluate(self, model, *, name=None, out_dir=None, on_epoch=None):
        self.calls.append(name)
        assert isinstance(model, torch.nn.Module)
        result = type("R", (), {})()
        if name in self.fail:
            result.status, result.reason, result.metrics = "failed", "loss became NaN", {"params": 1}
        else:
            params = sum(p.numel() for p in model.parameters())
            result.status, result.reason = "ok", None
            result.metrics = {
                "params": params,
                "val": {"accuracy": 0.5, "unfairness": None},
                "test": {"accuracy": 0.4},
            }
        return result


def test_run_baselines_records_resumes_and_survives_failures():
    study = optuna.create_study(directions=DIRECTIONS)
    evaluator = FakeEvaluator(fail={"mobilenetv2"})
    out = run_baselines(study, ["mobilenetv1", "mobilenetv2"], evaluator, log=lambda m: None)
    assert [c.baseline for c in out] == ["mobilenetv1", "mobilenetv2"]
    assert [c.status for c in out] == ["ok", "failed"]
    trials = study.get_trials()
    ok, failed = trials
    assert ok.state == optuna.trial.TrialState.COMPLETE
    assert ok.user_attrs["kind"] == "baseline" and ok.user_attrs["designer"] == "baseline"
    assert ok.user_attrs["baseline"] == "mobilenetv1" and ok.user_attrs["status"] == "ok"
    assert ok.values[0] == 0.5 and ok.values[1] == 1.0  # undefined unfairness stored as the worst value
    assert ok.values[2] == ok.user_attrs["metrics"]["params"] > 1_000_000
    assert failed.state == optuna.trial.TrialState.FAIL
    assert failed.user_attrs["reason"] == "loss became NaN"

    evaluator.fail.clear()
    evaluator.calls.clear()
    out = run_baselines(study, ["mobilenetv1", "mobilenetv2"], evaluator, log=lambda m: None)
    assert evaluator.calls == ["mobilenetv2"]  # the ok one is not retrained
    assert [c.status for c in out] == ["ok", "ok"]


def test_an_exception_in_training_is_recorded_and_the_loop_goes_on():
    class Exploding(FakeEvaluator):
        def evaluate(self, model, **kwargs):
            if kwargs.get("name") == "mobilenetv1":
                raise RuntimeError("out of memory")
            return super().evaluate(model, **kwargs)

    study = optuna.create_study(directions=DIRECTIONS)
    out = run_baselines(study, ["mobilenetv1", "mobilenetv2"], Exploding(), log=lambda m: None)
    assert [c.status for c in out] == ["failed", "ok"]
    assert "out of memory" in out[0].reason
