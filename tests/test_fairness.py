"""Fairness metrics: hand-computed cases, undefined rates, missing demographics, fairlearn agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flnas.errors import FlnasError
from flnas.evaluate.fairness import (
    confusion_table,
    fairness_metrics,
    one_vs_rest_rates,
    pair_metrics,
)
from flnas.evaluate.predictions import fairness_from_predictions

# The worked example of docs/metrics.md: classes A, B, C; record 7 has no age, record 8 no sex.
WORKED = pd.DataFrame(
    {
        "y_true": ["A", "A", "B", "C", "A", "B", "B", "C"],
        "y_pred": ["A", "B", "B", "C", "A", "A", "B", "A"],
        "sex": ["male", "male", "male", "male", "female", "female", "female", ""],
        "age_approx": ["25", "40", "70", "50", "20", "45", "", "68"],
    }
)


def test_worked_example_of_the_docs():
    m = fairness_from_predictions(WORKED, classes=["A", "B", "C"])
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    assert m["groups"] == {
        "male": {"accuracy": pytest.approx(3 / 4), "count": 4},
        "female": {"accuracy": pytest.approx(2 / 3), "count": 3},
        "young": {"accuracy": pytest.approx(1.0), "count": 2},
        "middle": {"accuracy": pytest.approx(1 / 3), "count": 3},
        "old": {"accuracy": pytest.approx(1 / 2), "count": 2},
    }
    assert list(m["groups"]) == ["male", "female", "young", "middle", "old"]
    assert m["unfairness"] == pytest.approx((1 / 8 + 1 / 24 + 3 / 8 + 7 / 24 + 1 / 8) / 5)  # 0.191667
    pairs = m["pairs"]
    assert pairs["male|female"] == {
        "eodd": pytest.approx(0.5),
        "eopp1": pytest.approx(0.5),  # class C has no positive among the women: skipped
        "eopp2": pytest.approx((1 / 2 + 1 / 3 + 0) / 3),
    }
    # young has only class-A positives: TPR defined for A only, FPR/TNR only for B and C, so EODD nowhere
    assert pairs["young|middle"] == {"eodd": None, "eopp1": pytest.approx(1.0), "eopp2": pytest.approx(0.25)}
    assert pairs["young|old"] == {"eodd": None, "eopp1": None, "eopp2": pytest.approx(0.0)}
    assert pairs["middle|old"] == {
        "eodd": pytest.approx(1.0),
        "eopp1": pytest.approx(1.0),
        "eopp2": pytest.approx(1 / 6),
    }
    # pairs that define nothing are left out of the mean, not counted as 0
    assert m["eodd"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["eopp1"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)
    assert m["eopp2"] == pytest.approx((5 / 18 + 0.25 + 0.0 + 1 / 6) / 4)
    assert m["classes"] == ["A", "B", "C"] and m["classes_from"] == "given"


def test_rates_skip_zero_denominators():
    cm = np.array([[2, 0, 0], [0, 0, 0], [0, 0, 0]])  # only class-0 records, all right
    rates = one_vs_rest_rates(cm)
    assert rates.tpr[0] == 1.0 and np.isnan(rates.tpr[1]) and np.isnan(rates.tpr[2])
    assert np.isnan(rates.fpr[0]) and np.isnan(rates.tnr[0])  # no negatives for class 0
    assert rates.fpr[1] == 0.0 and rates.tnr[1] == 1.0


def test_perfect_classifier_is_fair_and_equal_groups_give_zero():
    y = [0, 1, 2, 0, 1, 2, 0, 1]
    sex = ["male", "female"] * 4
    age = ["young", "middle", "old", "old", "middle", "young", "middle", "old"]
    m = fairness_metrics(y, y, classes=3, sex=sex, age_group=age)
    assert m["accuracy"] == 1.0 and m["unfairness"] == 0.0
    assert m["eodd"] == 0.0 and m["eopp1"] == 0.0 and m["eopp2"] == 0.0


def test_missing_demographics_count_only_overall():
    y_true = [0, 1, 0, 1]
    y_pred = [0, 0, 0, 1]
    m = fairness_metrics(
        y_true, y_pred, classes=["a", "b"], sex=["male", None, float("nan"), ""], age_group=None
    )
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["count"] == 4
    assert m["groups"] == {"male": {"accuracy": 1.0, "count": 1}}
    assert m["unfairness"] == pytest.approx(0.25)
    # female is empty: its pair defines nothing, and with no pair defined the metric is None (never 0)
    assert m["pairs"]["male|female"] == {"eodd": None, "eopp1": None, "eopp2": None}
    assert set(m["pairs"]) == {"male|female", "young|middle", "young|old", "middle|old"}
    assert m["eodd"] is None and m["eopp1"] is None and m["eopp2"] is None


def test_no_groups_at_all_leaves_unfairness_undefined():
    m = fairness_metrics([0, 1], [0, 1], classes=2, sex=[None, None], age_group=[None, None])
    assert m["accuracy"] == 1.0 and m["groups"] == {} and m["unfairness"] is None


def test_pair_left_out_when_no_class_defines_the_metric():
    # male: only class-0 records; female: only class-1 records -> each class's TPR is undefined in one group;
    # class 2 has negatives in both groups, so its TNR (EOPP2) is still defined
    sex = ["male", "male", "female", "female"]
    table = confusion_table([0, 0, 1, 1], [0, 1, 1, 2], num_classes=3, sex=sex)
    pm = pair_metrics(table["male"], table["female"])
    assert pm["eopp1"] is None and pm["eodd"] is None
    assert pm["eopp2"] == pytest.approx(0.5)  # class 2: TNR 1 (male) vs 1/2 (female)
    m = fairness_metrics(
        [0, 0, 1, 1, 0, 1, 0, 1],
        [0, 1, 1, 1, 0, 0, 0, 1],
        classes=2,
        sex=["male", "male", "female", "female", None, None, None, None],
        age_group=[None, None, None, None, "young", "young", "old", "old"],
    )
    assert m["pairs"]["male|female"]["eopp1"] is None
    young_old = m["pairs"]["young|old"]["eopp1"]
    assert young_old == pytest.approx(0.5)  # class 1: TPR 0 vs 1; class 0: TPR 1 vs 1
    assert m["eopp1"] == pytest.approx(young_old)  # male|female left out, not averaged in as 0


def test_classes_are_explicit_not_inferred():
    # a class absent from this split still counts in the one-vs-rest means (its TNR is defined)
    kwargs = dict(sex=["male", "male", "female", "female"], age_group=None)
    two = fairness_metrics([0, 1, 0, 1], [0, 1, 1, 1], classes=2, **kwargs)
    three = fairness_metrics([0, 1, 0, 1], [0, 1, 1, 1], classes=3, **kwargs)
    # class 1's TNR: 1 for the men, 0 for the women (a woman's class-0 lesion called class 1)
    assert two["eopp2"] == pytest.approx((0 + 1) / 2)
    assert three["eopp2"] == pytest.approx((0 + 1 + 0) / 3)
    assert two["balanced_accuracy"] == three["balanced_accuracy"] == pytest.approx(0.75)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="sex"):
        fairness_metrics([0], [0], classes=1, sex=["man"], age_group=None)
    with pytest.raises(ValueError, match="y_pred"):
        fairness_metrics([0], [3], classes=2, sex=None, age_group=None)


def test_agrees_with_fairlearn_on_binary_case():
    from fairlearn.metrics import (
        MetricFrame,
        equalized_odds_difference,
        true_negative_rate,
        true_positive_rate,
    )

    rng = np.random.default_rng(3)
    n = 200
    y_true = rng.integers(0, 2, n)
    sex = np.where(rng.random(n) < 0.5, "male", "female")
    flip = rng.random(n) < np.where(sex == "male", 0.1, 0.35)  # women's predictions are worse
    y_pred = np.where(flip, 1 - y_true, y_true)
    m = fairness_metrics(y_true, y_pred, classes=["benign", "malignant"], sex=sex, age_group=None)
    pair = m["pairs"]["male|female"]

    eodd_fl = equalized_odds_difference(y_true, y_pred, sensitive_features=sex)
    tpr = MetricFrame(
        metrics=true_positive_rate, y_true=y_true, y_pred=y_pred, sensitive_features=sex
    ).difference()
    tnr = MetricFrame(
        metrics=true_negative_rate, y_true=y_true, y_pred=y_pred, sensitive_features=sex
    ).difference()
    assert eodd_fl > 0.05
    # binary one-vs-rest: class 0's TPR gap is class 1's FPR gap, so the max over both is fairlearn's EODD
    assert pair["eodd"] == pytest.approx(eodd_fl)
    # EOPP1 averages the TPR gaps of both classes = (TPR gap + TNR gap) / 2 of the positive class
    assert pair["eopp1"] == pytest.approx((tpr + tnr) / 2)
    assert pair["eopp2"] == pytest.approx((tnr + tpr) / 2)
    assert m["eodd"] == pytest.approx(eodd_fl)  # one pair only


def test_multiclass_is_mean_of_one_vs_rest_binary_cases():
    rng = np.random.default_rng(7)
    n, k = 300, 4
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
    age = rng.choice(np.array(["young", "middle", "old", None], dtype=object), n)
    m = fairness_metrics(y_true, y_pred, classes=k, sex=None, age_group=age)
    for a, b in [("young", "middle"), ("young", "old"), ("middle", "old")]:
        eopp1, eopp2, eodd = [], [], []
        for c in range(k):
            bt, bp = (y_true == c).astype(int), (y_pred == c).astype(int)
            binary = fairness_metrics(bt, bp, classes=2, sex=None, age_group=age)["pairs"][f"{a}|{b}"]
            mask_a, mask_b = age == a, age == b
            tpr = [bp[mk & (bt == 1)].mean() for mk in (mask_a, mask_b)]
            tnr = [1 - bp[mk & (bt == 0)].mean() for mk in (mask_a, mask_b)]
            eopp1.append(abs(tpr[0] - tpr[1]))
            eopp2.append(abs(tnr[0] - tnr[1]))
            eodd.append(max(abs(tpr[0] - tpr[1]), abs(tnr[0] - tnr[1])))
            # in the binary problem both classes' gaps are this class's TPR and TNR gaps
            assert binary["eodd"] == pytest.approx(eodd[-1])
        pair = m["pairs"][f"{a}|{b}"]
        assert pair["eopp1"] == pytest.approx(np.mean(eopp1))
        assert pair["eopp2"] == pytest.approx(np.mean(eopp2))
        assert pair["eodd"] == pytest.approx(np.mean(eodd))


def test_predictions_with_indices_and_names():
    df = pd.DataFrame(
        {
            "y_true": ["0", "2", "1"],
            "y_pred": ["0", "1", "1"],
            "sex": ["M", "f", ""],
            "age_approx": ["30", "", "80"],
        }
    )
    m = fairness_from_predictions(df)
    assert m["classes"] == ["0", "1", "2"] and m["classes_from"] == "indices"
    assert m["groups"]["male"]["count"] == 1 and m["groups"]["female"]["count"] == 1
    named = fairness_from_predictions(WORKED)
    assert named["classes"] == ["A", "B", "C"] and named["classes_from"] == "names seen"
    with pytest.raises(FlnasError, match=r"line 3: column y_pred has class 'B'"):
        fairness_from_predictions(WORKED.iloc[:2], classes=["A", "C"], source="p.csv")
    with pytest.raises(FlnasError, match=r"line 3: column y_true has class index 2"):
        fairness_from_predictions(df, classes=["a", "b"], source="p.csv")
