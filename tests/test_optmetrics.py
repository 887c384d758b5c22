"""The paper's optMetrics line, rendered exactly as in the paper's example."""

from __future__ import annotations

import copy

from flnas.designers.optmetrics import format_opt_metrics

PAPER_LINE = (
    "Train Loss: 0.8746, Train Acc: 58.06%, Valid Loss: 0.6438, Valid Acc: 62.80%, Unfairness Score: 1.2983, "
    "EODD: 0.1229, EOPP1: 0.1224, EOPP2: 0.0105, Fairness Detail: [male: (63.23%, 95), female: (62.37%, 93), "
    "young: (25.99%, 23), middle_age: (59.30%, 104), old: (81.82%, 62)] Latency: 0.002153 seconds per image, "
    "Throughput: 464.38 images per second, Peak GPU Memory Usage: 232.88 MB."
)


def paper_metrics() -> dict:
    """An evaluator metrics object holding the numbers of the paper's example."""
    return {
        "device": "cuda:0 (NVIDIA A10)",
        "train": {"loss": 0.87461, "accuracy": 0.58061},
        "val": {
            "loss": 0.64382,
            "accuracy": 0.62801,
            "unfairness": 1.29834,
            "eodd": 0.12291,
            "eopp1": 0.12238,
            "eopp2": 0.01049,
            "groups": {
                "male": {"accuracy": 0.63234, "count": 95},
                "female": {"accuracy": 0.62371, "count": 93},
                "young": {"accuracy": 0.25989, "count": 23},
                "middle": {"accuracy": 0.59302, "count": 104},
                "old": {"accuracy": 0.81818, "count": 62},
            },
        },
        "test": {
            "loss": 1.5,
            "accuracy": 0.5,
            "unfairness": 0.1,
            "eodd": 0.2,
            "eopp1": 0.3,
            "eopp2": 0.4,
            "groups": {},
        },
        "latency_s": 0.004306,
        "latency_per_image_s": 0.0021531,
        "throughput": 464.381,
        "peak_memory_mb": 232.881,
    }


def test_paper_example_is_reproduced_exactly():
    assert format_opt_metrics(paper_metrics()) == PAPER_LINE


def test_cpu_says_peak_memory_usage_without_gpu():
    metrics = paper_metrics()
    metrics["device"] = "cpu (2 threads)"
    line = format_opt_metrics(metrics)
    assert line.endswith("Peak Memory Usage: 232.88 MB.")
    assert "GPU" not in line


def test_undefined_and_unmeasured_values_are_na_never_zero():
    metrics = paper_metrics()
    metrics["val"]["eodd"] = None
    metrics["val"]["unfairness"] = float("nan")
    for key in ("latency_s", "latency_per_image_s", "throughput", "peak_memory_mb"):
        metrics[key] = None
    del metrics["val"]["groups"]["young"]
    line = format_opt_metrics(metrics)
    assert "Unfairness Score: n/a, EODD: n/a, EOPP1: 0.1224" in line
    assert "young: (n/a, 0), middle_age: (59.30%, 104)" in line
    assert line.endswith("Latency: n/a, Throughput: n/a, Peak GPU Memory Usage: n/a.")


def test_latency_per_image_falls_back_to_batch_latency_over_batch_size():
    metrics = paper_metrics()
    del metrics["latency_per_image_s"]
    assert "Latency: 0.002153 seconds per image" in format_opt_metrics(metrics)


def test_split_selects_which_metrics_are_shown_as_valid():
    metrics = copy.deepcopy(paper_metrics())
    line = format_opt_metrics(metrics, split="test")
    assert "Valid Loss: 1.5000, Valid Acc: 50.00%, Unfairness Score: 0.1000, EODD: 0.2000" in line
    assert "Fairness Detail: [male: (n/a, 0), female: (n/a, 0)" in line
