"""Smoke test of the bench/ scripts: each runs on tiny synthetic inputs (``--quick``) and ends with one JSON
line holding the key figures its issue names. The figures themselves are not asserted (they are machine-
dependent and live in BENCHMARKS.md); this only keeps the scripts from rotting as the package changes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from llm_server import llm_server  # noqa: F401  (fixture)

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def _run(name: str, argv: list[str], capsys) -> dict:
    returned = _load(name).main(argv)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    last = json.loads(lines[-1])  # the final line must be the JSON object
    assert last["benchmark"] == name
    assert last["machine"]["cores"] >= 1 and "load" in last["machine"]
    for key, value in returned.items():  # what main returns is what it printed (JSON-rounded)
        assert key in last
        if isinstance(value, bool):
            assert last[key] is value
    return last


@pytest.mark.slow
def test_evaluator_throughput_quick(capsys):
    out = _run("evaluator_throughput", ["--quick", "--specs", "small,resnet_like"], capsys)
    assert set(out["ratio_vs_minimal_loop"]) == {"small", "resnet_like"}
    assert set(out["fraction_of_peak"]) == {"small", "resnet_like"}
    assert all(r > 0 for r in out["ratio_vs_minimal_loop"].values())
    assert all(0 < f for f in out["fraction_of_peak"].values())
    assert out["params"]["small"] < out["params"]["resnet_like"]
    assert set(out["speedup_vs_fp32"]["small"]) == {"fp32+cl", "bf16", "bf16+cl"}  # each setting against fp32
    assert set(out["settings_fraction_of_peak"]["resnet_like"]) == {"fp32", "fp32+cl", "bf16", "bf16+cl"}


def test_data_cache_quick(capsys):
    out = _run("data_cache", ["--quick"], capsys)
    assert set(out["speedup"]) == {"16", "32"}
    assert all(out["warm_s"][k] >= 0 and out["cold_s"][k] >= 0 for k in out["speedup"])
    assert out["records"]["16"] == 60


def test_data_cache_survives_a_warm_load_measured_as_zero(monkeypatch, capsys):
    """A warm read of 60 tiny images can take under a millisecond; a 0.0 s measurement (a coarse clock, or
    the old 3-decimal rounding) must give "n/a", not a ZeroDivisionError or a None formatted with :.1f."""
    module = _load("data_cache")
    real = module.one_load

    def instant_when_warm(root, size, subset, cache_dir):
        seconds, cache, records = real(root, size, subset, cache_dir)
        return (0.0, {**cache, "seconds": 0.0}, records) if cache.get("hit") else (seconds, cache, records)

    monkeypatch.setattr(module, "one_load", instant_when_warm)
    figures = module.main(["--quick"])
    printed = capsys.readouterr().out
    assert figures["speedup"] == {"16": None, "32": None}
    assert figures["images_speedup"] == {"16": None, "32": None}
    assert figures["target_met"] is False
    assert "n/a" in printed and json.loads(printed.splitlines()[-1])["speedup"] == {"16": None, "32": None}


def test_ratio_never_divides_by_a_zero_or_missing_duration():
    common = _load("_common")
    assert common.ratio(3.0, 1.5) == 2.0
    assert common.ratio(1.0, 0.0) is None and common.ratio(1.0, None) is None and common.ratio(None, 1.0) is None
    assert common.ratio(1.0, float("nan")) is None and common.ratio(1.0, -1e-9) is None
    assert common.fmt(None) == "n/a" and common.fmt(float("inf")) == "n/a" and common.fmt(1.26, 1) == "1.3"


@pytest.mark.slow
def test_search_quality_quick(capsys):
    out = _run("search_quality", ["--quick"], capsys)["N=2"]
    assert set(out["hypervolume_final"]) == {"random", "heuristic"}
    curve = out["hypervolume_curve"]["random"]
    assert len(curve) == 2 and curve[1] >= curve[0] >= 0  # the front only grows
    assert out["evals_to_random_final"]["random"][0] is not None
    assert out["hv_minus_random"]["random"] == [0.0]
    assert set(out["selected_test"]["random"]) >= {"test_accuracy", "test_balanced_accuracy", "params"}


def test_search_quality_summarizes_run_records_at_a_smaller_n(tmp_path, capsys):
    runs = tmp_path / "runs.jsonl"
    full = _run("search_quality", ["--quick", "--designers", "random", "--runs-out", str(runs)], capsys)
    again = _run("search_quality", ["--quick", "--summarize", str(runs), "--also-at", "1"], capsys)
    assert again["N=2"]["hypervolume_final"] == full["N=2"]["hypervolume_final"]
    assert again["N=1"]["hypervolume_curve"]["random"] == full["N=2"]["hypervolume_curve"]["random"][:1]


@pytest.mark.slow
def test_search_quality_has_an_llm_row_when_an_endpoint_is_configured(llm_server, monkeypatch, capsys):  # noqa: F811
    """The llm designer joins the comparison when an endpoint is set (here a local fake server)."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-bench")
    for c1, c2 in ((8, 16), (16, 32)):  # one distinct, valid architecture per iteration
        conv = {"type": "conv", "channels": c1, "kernel": 3, "stride": 2}
        llm_server.reply(json.dumps({"layers": [conv, {"type": "conv", "channels": c2, "stride": 2}]}))
    argv = ["--quick", "--designers", "llm", "--llm-base-url", llm_server.base_url, "--llm-model", "fake"]
    out = _run("search_quality", argv, capsys)["N=2"]
    assert set(out["hypervolume_final"]) == {"random", "llm"}  # random is always the reference
    assert out["evaluated"]["llm"] == [2]  # both replies trained; none re-asked
    assert len(out["hypervolume_curve"]["llm"]) == 2 and out["hypervolume_final"]["llm"] > 0
    assert len(llm_server.requests) == 2


def test_latency_quick(capsys):
    out = _run("latency", ["--quick"], capsys)
    assert set(out["latency_ms"]) == {"searched", "resnet18"}
    assert set(out["latency_ms"]["resnet18"]) == {"eager_1t", "onnx_1t"}  # --quick: 1 thread only
    assert out["latency_ms"]["searched"]["onnx_1t"] > 0 and out["throughput"]["searched"]["eager_1t"] > 0
    assert "max_cv" in out and "cv_target_met" in out and "max_jitter" in out
    # two interleaved rounds: the spread of the per-round medians exists for every cell
    assert all(cv is not None and cv >= 0 for cvs in out["latency_cv"].values() for cv in cvs.values())
    assert set(out["steal"]["resnet18"]) == {"eager_1t", "onnx_1t"}


def test_hypervolume_matches_grid():
    """Optuna's WFG hypervolume and the script's exact grid fallback agree (reference point (1, 1, 1))."""
    import numpy as np

    sq = _load("search_quality")
    points = np.array([[0.5, 0.2, 0.1], [0.3, 0.4, 0.2], [0.6, 0.1, 0.5], [0.7, 0.7, 0.7]])
    assert sq.hypervolume(points) == pytest.approx(sq.hypervolume_grid(points))
    assert sq.hypervolume(points[:1]) == pytest.approx(0.5 * 0.8 * 0.9)
    assert sq.evals_to_reach([0.1, 0.2, 0.3], 0.2) == 2 and sq.evals_to_reach([0.1], 0.2) is None
    assert sq.median_reach([3, None, 5]) == 5  # never counts as more than N
    assert sq.median_reach([3, None, None]) is None and sq.median_reach([2, 4]) == 3


def test_bootstrap_quick(capsys):
    out = _run("bootstrap", ["--quick"], capsys)
    assert out["images"] == 200 and out["resamples"] == 100
    assert out["max_abs_difference"] < 1e-9  # the fast path and the direct loop agree
    assert set(out["group_interval_width"]) == {"male", "female", "young", "middle", "old"}


@pytest.mark.slow
def test_precision_quick(capsys):
    out = _run("precision", ["--quick", "--specs", "small,example", "--settings", "fp32,bf16+cl", "--accuracy"], capsys)
    assert set(out["images_per_s"]["small"]) == {"fp32", "bf16+cl"}
    assert out["speedup_vs_fp32"]["small"]["bf16+cl"] > 0 and isinstance(out["native_bf16"], bool)
    assert set(out["fraction_of_peak"]["example"]) == {"fp32", "bf16+cl"} and set(out["peak_flops"]) == {"fp32", "bf16"}
    small = out["accuracy"]["small"]["seeds"]["0"]
    assert set(out["val_balanced_accuracy"]) == {"small", "example"} and small["fp32"]["epochs"] == 1
    assert small["fp32"]["val"]["ci"][0] <= small["fp32"]["val"]["balanced_accuracy"] <= small["fp32"]["val"]["ci"][1]
    assert small["val_difference"]["estimate"] == pytest.approx(
        small["bf16"]["val"]["balanced_accuracy"] - small["fp32"]["val"]["balanced_accuracy"], abs=1e-5
    )
    assert out["accuracy"]["small"]["summary"]["fp32_mean"] == small["fp32"]["val"]["balanced_accuracy"]
    assert out["channels_last"]["small"] == {"speedup": {}}  # no pair of layouts in one precision was asked for


def test_precision_layout_check_quick(capsys):
    out = _run("precision", ["--quick", "--specs", "small", "--layout-check"], capsys)["channels_last"]["small"]
    assert set(out["speedup"]) == {"fp32", "bf16"} and all(v > 0 for v in out["speedup"].values())
    for precision in ("fp32", "bf16"):
        check = out[precision]
        assert check["bit_identical"] == (check["max_abs_weight_difference"] == 0.0)


@pytest.mark.slow
def test_scale_out_quick(capsys):
    out = _run("scale_out", ["--quick"], capsys)
    (run,) = out["runs"]
    assert run["workers"] == 2 and run["storage"] == "sqlite" and run["exit_codes"] == [0, 0]
    assert (run["evaluated"], run["duplicates"], run["lost"], run["invalid"]) == (2, 0, 0, 0)
    assert out["all_complete"] and out["workers_ok"]
