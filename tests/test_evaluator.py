"""Evaluator: metrics of a trained candidate, failures as results (never raised), artifacts, repeatability."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from flnas.data.dataset import PreparedData, Split
from flnas.data.groups import ATTRIBUTES, age_group
from flnas.designers.optmetrics import format_opt_metrics
from flnas.errors import FlnasError
from flnas.evaluate import EvalResult, Evaluator, EvaluatorConfig

FAST = {"epochs": 2, "patience": 2, "batch_size": 16, "measure_hardware": False}
SPLIT_KEYS = {
    "loss",
    "accuracy",
    "balanced_accuracy",
    "unfairness",
    "eodd",
    "eopp1",
    "eopp2",
    "groups",
    "pairs",
}


def hand_split(n: int, seed: int, size: int = 16) -> Split:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    images[:, 0] = (labels * 120).to(torch.uint8)[:, None, None]
    ages = np.array([[20.0, 45.0, 70.0, np.nan][i % 4] for i in range(n)])
    return Split(
        images=images,
        labels=labels,
        groups={"sex": (sex := np.array([["male", "female", None][i % 3] for i in range(n)], dtype=object)),
                "age": np.array([age_group(a) for a in ages], dtype=object)},
        image_ids=[f"IMG_{seed}_{i:04d}" for i in range(n)],
        sensitive={"sex": sex, "age_approx": ages},
    )


@pytest.fixture
def hand_data() -> PreparedData:
    splits = {"train": hand_split(64, 1), "val": hand_split(32, 2), "test": hand_split(24, 3)}
    return PreparedData(name="hand", root=Path("."), classes=["a", "b", "c"], image_size=16, splits=splits,
                        attributes=dict(ATTRIBUTES))


def small_module(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, classes),
    )


def test_module_evaluation_reports_every_split_and_restores_best_weights(hand_data):
    epochs_seen = []
    result = Evaluator(hand_data, EvaluatorConfig(**FAST)).evaluate(
        small_module(), name="tiny", on_epoch=lambda e, logs: epochs_seen.append((e, logs["val_loss"]))
    )
    assert isinstance(result, EvalResult) and result.ok and result.reason is None
    m = result.metrics
    assert m["status"] == "ok" and m["name"] == "tiny" and m["device"].startswith("cpu")
    assert [e for e, _ in epochs_seen] == [1, 2] == [h["epoch"] for h in m["history"]]
    assert set(m["train"]) == {"loss", "accuracy"}
    assert SPLIT_KEYS <= set(m["val"]) and SPLIT_KEYS <= set(m["test"])
    assert m["params"] == sum(p.numel() for p in result.model.parameters())
    # the restored weights are the best epoch's: the final val loss is the best one in the history
    assert m["val"]["loss"] == pytest.approx(min(loss for _, loss in epochs_seen), rel=1e-6)
    assert m["val"]["loss"] == pytest.approx(m["history"][m["best_epoch"] - 1]["val_loss"], rel=1e-6)
    assert m["flops"] is None and m["latency_s"] is None  # measure_hardware=False
    json.dumps(m)  # the --json object is plain JSON
    pred = result.predictions
    assert list(pred.columns) == ["image", "y_true", "y_pred", "sex", "age_approx"]
    assert len(pred) == 24 and set(pred["y_true"]) <= {"a", "b", "c"}
    assert pred["image"].iloc[0] == "IMG_3_0000" and pred["sex"].iloc[2] == ""
    assert (pred["y_true"] == pred["y_pred"]).mean() == pytest.approx(m["test"]["accuracy"])
    assert format_opt_metrics(m).startswith("Train Loss: ")


class Broken(nn.Module):
    """Fails in forward the way the test asks: NaN output, OOM, or a wrong output shape."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.inner = small_module()
        self.how = how

    def forward(self, x):
        if self.how == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if self.how == "cpu-oom":
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")
        out = self.inner(x)
        if self.how == "nan":
            return out * float("nan")
        return out[:, :2]  # "shape": wrong number of classes


@pytest.mark.parametrize(
    ("how", "failure", "reason"),
    [
        ("nan", "nan", "loss became nan at epoch 1, batch 1"),
        ("oom", "oom", "out of memory on cpu during training (batch size 16): OutOfMemoryError: CUDA out of"),
        ("cpu-oom", "oom", "out of memory on cpu during training"),
        ("shape", "error", "error during training: "),
    ],
)
def test_candidate_failures_are_results_not_exceptions(hand_data, how, failure, reason):
    result = Evaluator(hand_data, EvaluatorConfig(**FAST)).evaluate(Broken(how))
    assert result.status == "failed" and result.failure == failure
    assert result.reason.startswith(reason)
    assert result.metrics["status"] == "failed" and result.metrics["reason"] == result.reason
    assert result.metrics["params"] is not None
    json.dumps(result.metrics)


def test_time_budget_fails_the_candidate(hand_data, monkeypatch):
    from flnas.evaluate import train

    ticks = iter(range(10**6))  # a clock that moves 1 s per read: over the 5 s budget within the first epoch
    monkeypatch.setattr(train, "clock", lambda: float(next(ticks)))
    config = EvaluatorConfig(**{**FAST, "epochs": 100, "patience": 100}, max_train_seconds=5)
    result = Evaluator(hand_data, config).evaluate(small_module())
    assert result.status == "failed" and result.failure == "timeout"
    assert result.reason.startswith("training exceeded its time budget of 5 s (stopped at epoch 1, batch ")


def test_hardware_failure_is_recorded_and_the_candidate_stays_ok(hand_data, monkeypatch):
    import flnas.evaluate.hardware as hardware

    def boom(*args, **kwargs):
        raise ValueError("profiler unavailable")

    monkeypatch.setattr(hardware, "measure_hardware", boom)
    result = Evaluator(hand_data, EvaluatorConfig(**{**FAST, "measure_hardware": True})).evaluate(small_module())
    assert result.ok
    assert (
        result.metrics["hardware"]["error"] == "hardware measurement failed: ValueError: profiler unavailable"
    )
    assert result.metrics["latency_s"] is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be at least 1"),
        ("optimizer", "rmsprop", "optimizer must be one of"),
        ("lr", 0.0, "lr must be positive"),
        ("device", "tpu", "device 'tpu'"),
    ],
)
def test_bad_config_is_a_user_error(hand_data, field, value, message):
    with pytest.raises(FlnasError, match=message):
        Evaluator(hand_data, EvaluatorConfig(**{field: value}))


# --- from specs (space module) -------------------------------------------------------------------------


def test_invalid_spec_fails_with_the_validators_issues(synth_data):
    from flnas.space import example_spec

    spec = example_spec().model_dump(mode="json")
    spec["layers"][0]["kernel"] = 4
    spec["layers"][1]["norm"] = "sparkle"
    result = Evaluator(synth_data, EvaluatorConfig(**FAST)).evaluate(spec)
    assert result.status == "failed" and result.failure == "invalid"
    assert result.reason.startswith("invalid spec: ")
    assert "layers[0].kernel" in result.reason and "layers[1].norm" in result.reason
    garbage = Evaluator(synth_data, EvaluatorConfig(**FAST)).evaluate("{not json")
    assert garbage.failure == "invalid"


def test_fixed_seed_spec_runs_are_reproducible(synth_data):
    from flnas.space import build_model, example_spec

    config = EvaluatorConfig(**FAST, seed=3)
    first = Evaluator(synth_data, config).evaluate(example_spec())
    second = Evaluator(synth_data, config).evaluate(example_spec().model_dump(mode="json"))
    assert first.ok and second.ok
    assert first.metrics["val"] == second.metrics["val"]
    assert first.metrics["history"][-1]["val_loss"] == second.metrics["history"][-1]["val_loss"]
    assert first.metrics["params"] == sum(p.numel() for p in build_model(example_spec(), 8).parameters())


@pytest.mark.slow
def test_artifacts_reproduce_the_model_and_the_test_metrics(synth_data, tmp_path):
    from flnas.evaluate.predictions import fairness_from_predictions, read_predictions
    from flnas.space import build_model, example_spec

    config = EvaluatorConfig(**{**FAST, "measure_hardware": True}, latency_repeats=2)
    out = tmp_path / "out"
    result = Evaluator(synth_data, config).evaluate(example_spec(), out_dir=out)
    assert result.ok, result.reason
    names = {"spec.json", "model.pt", "model.onnx", "model.py", "metrics.json", "predictions.csv"}
    assert names <= {p.name for p in out.iterdir()}
    for key in ("params", "flops", "peak_memory_mb", "latency_s", "throughput", "onnx_latency_s"):
        assert result.metrics[key] is not None and result.metrics[key] > 0, key

    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test"] == json.loads(json.dumps(result.metrics["test"]))
    assert saved["artifacts"]["errors"] == {}
    assert json.loads((out / "spec.json").read_text()) == example_spec().model_dump(mode="json")

    recomputed = fairness_from_predictions(
        read_predictions(out / "predictions.csv"), classes=synth_data.classes
    )
    for key in ("accuracy", "balanced_accuracy", "unfairness", "eodd", "eopp1", "eopp2", "groups", "pairs"):
        assert recomputed[key] == result.metrics["test"][key], key

    model = build_model(example_spec(), 8)
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), result.model.cpu()(x), atol=1e-5)
    assert "class FLNASNet(nn.Module)" in (out / "model.py").read_text()
