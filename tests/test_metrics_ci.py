"""Intervals end to end: `flnas metrics --ci` (table, --json shape, options) and the evaluator's metrics.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from torch import nn

from flnas.cli.main import main
from flnas.evaluate import Evaluator, EvaluatorConfig
from flnas.evaluate.bootstrap import bootstrap
from flnas.evaluate.stored import unpack_predictions


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture
def predictions_csv(tmp_path):
    """300 records, 3 classes; the 'old' group is small (about 30 records)."""
    rng = np.random.default_rng(0)
    n = 300
    y_true = rng.integers(0, 3, n)
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, 3, n))
    sex = rng.choice(["male", "female", ""], n, p=[0.45, 0.45, 0.1])
    age = rng.choice([20, 45, 70], n, p=[0.3, 0.6, 0.1]).astype(str)
    lines = ["image,y_true,y_pred,sex,age_approx"]
    names = np.array(["A", "B", "C"])
    rows = zip(y_true, y_pred, sex, age, strict=True)
    lines += [f"I{i},{names[t]},{names[p]},{s},{a}" for i, (t, p, s, a) in enumerate(rows)]
    path = tmp_path / "predictions.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_json_shape(predictions_csv, capsys):
    code, out, _ = run(["metrics", "-p", str(predictions_csv), "--ci", "--json", "--resamples", "200"], capsys)
    assert code == 0
    data = json.loads(out)
    assert set(data["ci"]) == {"accuracy", "balanced_accuracy", "unfairness", "eodd", "eopp1", "eopp2", "groups"}
    assert set(data["ci"]["groups"]) == set(data["groups"]) == {"male", "female", "young", "middle", "old"}
    for key in ("accuracy", "balanced_accuracy", "unfairness", "eodd", "eopp1", "eopp2"):
        lo, hi = data["ci"][key]
        assert 0 <= lo < hi <= 1, key
    assert data["ci"]["accuracy"][0] < data["accuracy"] < data["ci"]["accuracy"][1]
    info = data["bootstrap"]
    assert (info["method"], info["level"], info["resamples"], info["seed"], info["images"]) == (
        "percentile",
        0.95,
        200,
        0,
        300,
    )
    assert set(info["undefined"]["groups"]) == set(data["groups"])
    widths = {g: hi - lo for g, (lo, hi) in data["ci"]["groups"].items()}
    assert widths["old"] > widths["middle"]  # about 30 records against about 180
    # without --ci the output has no intervals
    code, out, _ = run(["metrics", "-p", str(predictions_csv), "--json"], capsys)
    assert code == 0 and "ci" not in json.loads(out)


def test_seed_and_resamples_change_the_intervals_reproducibly(predictions_csv, capsys):
    def ci(*extra: str) -> dict:
        code, out, _ = run(["metrics", "-p", str(predictions_csv), "--ci", "--json", *extra], capsys)
        assert code == 0
        return json.loads(out)["ci"]

    assert ci("--seed", "3") == ci("--seed", "3") != ci("--seed", "4")
    assert ci("--resamples", "100") != ci()


def test_table_shows_intervals(predictions_csv, capsys):
    code, out, _ = run(["metrics", "-p", str(predictions_csv), "--ci", "--resamples", "100"], capsys)
    assert code == 0
    assert "95% CI" in out and "percentile bootstrap over the 300 images (100 resamples, seed 0)" in out


def test_bootstrap_options_need_ci(predictions_csv, capsys):
    code, _, err = run(["metrics", "-p", str(predictions_csv), "--seed", "2"], capsys)
    assert code == 2 and "add --ci" in err and "Traceback" not in err


def tiny_module(classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes))


def test_evaluator_writes_intervals_and_predictions(synth_data, tmp_path, capsys):
    config = EvaluatorConfig(epochs=1, patience=1, batch_size=32, measure_hardware=False, seed=5)
    evaluator = Evaluator(synth_data, config)
    evaluator.resamples = 200
    result = evaluator.evaluate(tiny_module(synth_data.num_classes), out_dir=tmp_path / "out")
    assert result.ok, result.reason
    test = result.metrics["test"]
    assert test["bootstrap"]["resamples"] == 200 and test["bootstrap"]["seed"] == 5
    assert "ci" not in result.metrics["val"]  # intervals are for the reported split only
    # the packed predictions are the test predictions, in order
    packed = unpack_predictions(test["predictions"])
    classes = list(synth_data.classes)
    frame = result.predictions
    assert [classes[i] for i in packed.y_pred] == list(frame["y_pred"])
    assert [classes[i] for i in packed.y_true] == list(frame["y_true"])
    # and they reproduce the intervals, which `flnas metrics --ci` computes from predictions.csv alike
    again = bootstrap(
        packed.y_true, packed.y_pred, classes=classes, sex=packed.sex, age_group=packed.age_group, resamples=200, seed=5
    ).to_json()
    assert again["ci"] == test["ci"]
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["test"]["ci"] == json.loads(json.dumps(test["ci"]))
    code, out, _ = run(
        ["metrics", "-p", str(tmp_path / "out" / "predictions.csv"), "--ci", "--json", "--resamples", "200"]
        + ["--seed", "5"],
        capsys,
    )
    assert code == 0 and json.loads(out)["ci"] == saved["test"]["ci"]
