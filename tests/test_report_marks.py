"""Table I's intervals and its paired-test marks, from a study whose models have real test predictions."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest

from flnas.evaluate.bootstrap import bootstrap, paired_difference
from flnas.evaluate.fairness import fairness_metrics
from flnas.evaluate.stored import pack_predictions
from flnas.report import build_table, run_notes, to_csv, to_latex, to_markdown, to_rich
from flnas.report.html import to_html
from flnas.report.table import DOWN, UP
from flnas.space import example_spec
from flnas.study.recording import add_trial as record_trial
from flnas.study.storage import DIRECTIONS, set_setup

N, K, SEED = 400, 4, 3
CLASSES = [f"c{i}" for i in range(K)]
SETUP = {"dataset": "synthetic (flnas)", "seed": 0, "image_size": 32, "classes": CLASSES, "train": {"seed": SEED}}

rng = np.random.default_rng(0)
Y_TRUE = rng.integers(0, K, N)
SEX = rng.choice(np.array(["male", "female", None], dtype=object), N, p=[0.45, 0.45, 0.1])
AGE = rng.choice(np.array(["young", "middle", "old", None], dtype=object), N, p=[0.25, 0.6, 0.08, 0.07])
NOISE = rng.integers(0, K, N)
ORDER = rng.permutation(N)


def predictions(correct: int, start: int = 0) -> np.ndarray:
    """Right on ``correct`` images (from ``start`` in a fixed random order), a fixed wrong class elsewhere."""
    y_pred = (Y_TRUE + 1 + NOISE % (K - 1)) % K
    right = ORDER[start : start + correct]
    y_pred[right] = Y_TRUE[right]
    return y_pred


def scored(y_pred: np.ndarray, *, params: int, stored: bool = True, images: range = range(N)) -> dict:
    """The metrics the evaluator records: test metrics, their intervals and the packed predictions."""
    split = fairness_metrics(Y_TRUE, y_pred, classes=CLASSES, sex=SEX, age_group=AGE)
    split.update(bootstrap(Y_TRUE, y_pred, classes=CLASSES, sex=SEX, age_group=AGE, seed=SEED).to_json())
    if stored:
        split["predictions"] = pack_predictions(
            Y_TRUE, y_pred, num_classes=K, sex=SEX, age_group=AGE, image_ids=[f"I{i}" for i in images]
        )
    return {"params": params, "peak_memory_mb": 10.0, "latency_s": 0.01, "val": split, "test": split}


def make_study(models: dict[str, dict], searched: dict[str, dict]):
    import optuna

    study = optuna.create_study(directions=DIRECTIONS)
    set_setup(study, SETUP)
    for name, m in models.items():
        record_trial(study, status="ok", metrics=m, kind="baseline", designer="baseline", baseline=name)
    for i, m in enumerate(searched.values(), start=1):
        spec = example_spec().model_dump(mode="json")
        spec["layers"][0]["channels"] = 8 * i
        record_trial(study, status="ok", metrics=m, kind="search", iteration=i, designer="heuristic", spec=spec)
    return study


def rows(table):
    return {row.label: row for row in table.rows}


def test_a_clearly_better_model_is_marked_and_a_tie_is_not():
    base = predictions(220)  # 55% accurate
    study = make_study(
        {"resnet18": scored(base, params=1000), "mobilenetv2": scored(predictions(200), params=900)},
        {
            "better": scored(predictions(300), params=100),  # 75%: 20 points better than the best baseline
            "tie": scored(base.copy(), params=200),  # the same predictions as ResNet-18
        },
    )
    table = build_table(study, top=2, rule="accuracy")
    by = rows(table)
    better, tie = by["Search-1"], by["Search-2"]
    assert better.values["accuracy"].mean == pytest.approx(0.75)
    assert better.marks["accuracy"] == UP  # the accuracy of record (plain: SETUP names none)
    assert "accuracy" not in tie.marks
    assert tie.marks["params"] == DOWN  # hardware columns keep the plain comparison


def test_a_small_better_difference_inside_the_noise_is_not_marked():
    """Two more correct images out of 400 is higher, but the paired interval includes 0."""
    study = make_study(
        {"resnet18": scored(predictions(240), params=1000)},
        {"slightly": scored(predictions(242), params=100)},
    )
    table = build_table(study, top=1)
    s1 = rows(table)["Search-1"]
    assert s1.values["accuracy"].mean > rows(table)["ResNet-18"].values["accuracy"].mean
    assert "accuracy" not in s1.marks
    notes = run_notes(table)
    assert any(
        n.startswith("Search-1 vs ResNet-18, Accuracy: difference +0.5 points") and "includes 0: not marked" in n
        for n in notes
    )


def test_mark_follows_the_paired_interval_against_every_baseline():
    """Better than one baseline for sure, but not than the other: no mark; the decision is the interval's."""
    # ResNet-34 is right on other images than the searched model: 2.5 points lower, but not clearly
    a, b, s = predictions(200), predictions(290, start=100), predictions(300)
    study = make_study({"resnet18": scored(a, params=1), "resnet34": scored(b, params=1)}, {"s": scored(s, params=1)})
    table = build_table(study, top=1)
    sb = bootstrap(Y_TRUE, s, classes=K, sex=SEX, age_group=AGE, seed=SEED)
    versus = {
        name: paired_difference(sb, bootstrap(Y_TRUE, p, classes=K, sex=SEX, age_group=AGE, seed=SEED), "accuracy")
        for name, p in (("resnet18", a), ("resnet34", b))
    }
    assert versus["resnet18"].excludes_zero() and versus["resnet34"].interval[0] <= 0
    assert "accuracy" not in rows(table)["Search-1"].marks


def test_intervals_in_every_format():
    study = make_study(
        {"resnet18": scored(predictions(220), params=1000)}, {"better": scored(predictions(300), params=100)}
    )
    table = build_table(study, top=1)
    run_notes(table)
    s1 = rows(table)["Search-1"]
    lo, hi = s1.values["accuracy"].interval
    assert [lo, hi] == s1.candidate.metrics["test"]["ci"]["accuracy"] and lo < 0.75 < hi
    shown = f"[{100 * lo:.2f}, {100 * hi:.2f}]"
    assert f"{UP}75.00% {shown}" in to_markdown(table)
    assert f"$\\uparrow$75.00\\% {shown}" in to_latex(table)
    assert f'{UP}75.00%<span class="ci">{shown}</span>' in to_html(table, {})
    record = list(csv.DictReader(io.StringIO(to_csv(table))))[-1]
    assert float(record["accuracy_lo"]) == lo and float(record["accuracy_hi"]) == hi
    assert "params_lo" not in record  # no interval for hardware columns
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=300).print(to_rich(table))
    assert shown in buf.getvalue()
    assert any(n.startswith("[lo, hi]: the 95% percentile-bootstrap interval") for n in table.notes)


def test_no_paired_test_without_predictions_or_on_other_images():
    good = predictions(330)
    missing = make_study(
        {"resnet18": scored(predictions(200), params=1000, stored=False)}, {"s": scored(good, params=1)}
    )
    table = build_table(missing, top=1)
    assert "accuracy" not in rows(table)["Search-1"].marks
    assert any("ResNet-18 has no stored test predictions" in n for n in run_notes(table))

    other = make_study(
        {"resnet18": scored(predictions(200), params=1000, images=range(1, N + 1))}, {"s": scored(good, params=1)}
    )
    table = build_table(other, top=1)
    assert "accuracy" not in rows(table)["Search-1"].marks
    assert any(re.search(r"not scored on the same test images", n) for n in run_notes(table))


def test_lower_is_better_metrics_are_marked_down_when_the_interval_is_below_zero():
    """A perfect model: Unfairness and EOPP 0 on every resample, against a poor baseline with gaps."""
    study = make_study({"resnet18": scored(predictions(160), params=1000)}, {"s": scored(Y_TRUE.copy(), params=1)})
    s1 = rows(build_table(study, top=1))["Search-1"]
    assert s1.marks["unfairness"] == DOWN and s1.marks["eopp1"] == DOWN and s1.marks["accuracy"] == UP


def test_group_plot_error_bars_come_from_the_intervals():
    from flnas.report.plots import group_accuracy_png, group_errors

    assert group_errors([0.5, None, 0.8], [[0.4, 0.7], [0.1, 0.2], None]) == [
        pytest.approx([0.1, 0.0, 0.0]),
        pytest.approx([0.2, 0.0, 0.0]),
    ]
    assert group_errors([0.5], [None]) is None
    study = make_study({"resnet18": scored(predictions(220), params=1)}, {"s": scored(predictions(300), params=1)})
    assert group_accuracy_png(build_table(study, top=1)).startswith(b"\x89PNG")
