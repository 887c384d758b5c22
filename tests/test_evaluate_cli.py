"""`flnas evaluate`: the --json object, the human output, artifacts, and exit codes."""

from __future__ import annotations

import json

import pytest

from flnas.cli.main import main
from test_evaluator import SPLIT_KEYS

TOP_KEYS = {
    "params",
    "flops",
    "peak_memory_mb",
    "latency_s",
    "throughput",
    "onnx_latency_s",
    "epochs",
    "device",
    "train_seconds",
    "train",
    "val",
    "test",
}


def run_cli(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def evaluate_argv(spec_file, synth_dir, tmp_path, *flags) -> list:
    """`flnas evaluate SPEC` on the synthetic set at 32x32 with a per-test image cache, plus ``flags``."""
    return ["evaluate", spec_file, "--data", synth_dir, "--image-size", "32", "--cache-dir", tmp_path / "cache", *flags]


@pytest.fixture
def spec_file(tmp_path):
    from flnas.space import example_spec

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(example_spec().model_dump(mode="json")))
    return path


def test_json_has_every_required_key_and_out_keeps_artifacts(spec_file, synth_dir, tmp_path, capsys):
    out_dir = tmp_path / "out"
    argv = evaluate_argv(
        spec_file, synth_dir, tmp_path, "--epochs", "1", "--batch-size", "32", "--out", out_dir, "--json"
    )
    code, out, _ = run_cli(argv, capsys)
    assert code == 0
    metrics = json.loads(out)
    assert TOP_KEYS <= set(metrics)
    for key in ("params", "flops", "peak_memory_mb", "latency_s", "throughput", "onnx_latency_s"):
        assert metrics[key] is not None and metrics[key] > 0, key
    assert metrics["epochs"] == 1 and metrics["config"]["batch_size"] == 32
    assert set(metrics["train"]) == {"loss", "accuracy"}
    assert SPLIT_KEYS <= set(metrics["val"]) and SPLIT_KEYS <= set(metrics["test"])
    assert metrics["dataset"]["synthetic"] is True
    files = {p.name for p in out_dir.iterdir()}
    assert {"spec.json", "model.pt", "model.onnx", "model.py", "metrics.json", "predictions.csv"} <= files
    assert json.loads((out_dir / "metrics.json").read_text())["test"] == metrics["test"]


def test_metrics_cli_recomputes_the_test_metrics_from_predictions(spec_file, synth_dir, tmp_path, capsys):
    out_dir = tmp_path / "out"
    argv = evaluate_argv(spec_file, synth_dir, tmp_path, "--epochs", "1", "--no-hardware", "--out", out_dir, "--json")
    code, out, _ = run_cli(argv, capsys)
    assert code == 0
    test = json.loads(out)["test"]
    code, out, _ = run_cli(["metrics", "--predictions", out_dir / "predictions.csv", "--json"], capsys)
    assert code == 0
    recomputed = json.loads(out)
    # the class list comes from metrics.json beside the predictions (a test split may lack a class)
    assert recomputed["classes_from"] == "metrics.json"
    assert recomputed["classes"] == json.loads((out_dir / "metrics.json").read_text())["dataset"]["classes"]
    for key in ("accuracy", "balanced_accuracy", "unfairness", "eodd", "eopp1", "eopp2", "groups", "pairs"):
        assert recomputed[key] == test[key], key


def test_class_weighted_flag_reaches_the_training_config(spec_file, synth_dir, tmp_path, capsys):
    runs = {}
    for flags in ([], ["--class-weighted"]):
        argv = evaluate_argv(spec_file, synth_dir, tmp_path, "--epochs", "1", "--no-hardware", "--json", *flags)
        code, out, _ = run_cli(argv, capsys)
        assert code == 0
        runs[bool(flags)] = json.loads(out)
    assert runs[False]["config"]["class_weighted_loss"] is False
    assert runs[True]["config"]["class_weighted_loss"] is True
    # same seed, same data: only the loss weighting differs, so the training loss must differ
    assert runs[True]["train"]["loss"] != runs[False]["train"]["loss"]


def test_human_output_has_the_metric_line_and_tables(spec_file, synth_dir, tmp_path, capsys):
    code, out, err = run_cli(evaluate_argv(spec_file, synth_dir, tmp_path, "--epochs", "1", "--no-hardware"), capsys)
    assert code == 0
    assert "(synthetic data)" in out
    assert "Train Loss: " in out and "Fairness Detail: [male: (" in out and "Latency: n/a" in out
    assert "accuracy and fairness" in out and "per-group accuracy" in out
    assert "epoch 1/1" in err


def test_invalid_spec_prints_the_reason_and_exits_1(spec_file, synth_dir, tmp_path, capsys):
    spec = json.loads(spec_file.read_text())
    spec["layers"][0]["channels"] = -5
    spec_file.write_text(json.dumps(spec))
    code, out, err = run_cli(evaluate_argv(spec_file, synth_dir, tmp_path, "--no-hardware", "--json"), capsys)
    assert code == 1
    assert json.loads(out)["status"] == "failed"
    assert "invalid spec" in err and "layers[0].channels" in err


@pytest.mark.parametrize(
    ("content", "message"), [(None, "spec file not found"), ("{oops", "spec file is not valid JSON (Expecting")]
)
def test_unreadable_spec_is_a_one_line_user_error(tmp_path, capsys, content, message):
    path = tmp_path / "spec.json"
    if content is not None:
        path.write_text(content)
    code, _, err = run_cli(["evaluate", path, "--no-hardware"], capsys)
    assert code == 2
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_without_data_uses_the_embedded_synthetic_set(spec_file, capsys):
    code, out, _ = run_cli(
        [
            "evaluate",
            spec_file,
            "--subset",
            "120",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--no-hardware",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    metrics = json.loads(out)
    assert metrics["dataset"]["synthetic"] is True and "synthetic" in metrics["dataset"]["name"]


def test_max_train_seconds_fails_the_candidate_with_the_reason(spec_file, synth_dir, tmp_path, capsys, monkeypatch):
    import flnas
    from flnas.errors import EvaluationError
    from flnas.evaluate import train

    ticks = iter(range(10**6))  # a clock that moves 1 s per read: over a 5 s budget within the first epoch
    monkeypatch.setattr(train, "clock", lambda: float(next(ticks)))
    argv = evaluate_argv(spec_file, synth_dir, tmp_path, "--epochs", "50", "--max-train-seconds", "5", "--no-hardware")
    code, _, err = run_cli(argv, capsys)
    assert code == 1
    assert "failed: training exceeded its time budget of 5 s (stopped at epoch 1, batch" in " ".join(err.split())
    with pytest.raises(EvaluationError, match="time budget of 5 s"):  # the API takes the same budget
        flnas.evaluate(spec_file, synth_dir, epochs=50, image_size=32, cache_dir=tmp_path / "cache",
                       max_train_seconds=5, no_hardware=True)
