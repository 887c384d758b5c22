"""Bootstrap intervals: the fast path against a direct per-resample computation, interval properties, the
paired test, undefined resamples, packed predictions, and fairlearn's own bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from flnas.evaluate.bootstrap import (
    CI_METRICS,
    bootstrap,
    bootstrap_tables,
    metrics_from_tables,
    paired_difference,
    percentile_interval,
    resample_indices,
)
from flnas.evaluate.fairness import confusion_table, fairness_metrics
from flnas.evaluate.stored import pack_predictions, unpack_predictions


def make_case(n: int, k: int = 3, seed: int = 0, correct: float = 0.6):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < correct, y_true, rng.integers(0, k, n))
    sex = rng.choice(np.array(["male", "female", None], dtype=object), n, p=[0.45, 0.45, 0.1])
    age = rng.choice(np.array(["young", "middle", "old", None], dtype=object), n, p=[0.25, 0.55, 0.1, 0.1])
    return y_true, y_pred, sex, age


def flat(result: dict) -> dict[str, float | None]:
    """A fairness_metrics result with the flat keys of metrics_from_tables."""
    out = {key: result[key] for key in CI_METRICS}
    for g in ("male", "female", "young", "middle", "old"):
        out[f"groups/{g}"] = (result["groups"].get(g) or {}).get("accuracy")
    for pair, values in result["pairs"].items():
        out.update({f"pairs/{pair}/{m}": v for m, v in values.items()})
    return out


def naive(y_true, y_pred, sex, age, *, k: int, resamples: int, seed: int) -> list[dict[str, float | None]]:
    """The slow reference: fairness_metrics on each resample, with the same indices."""
    idx = np.concatenate(list(resample_indices(len(y_true), resamples, seed)))
    return [flat(fairness_metrics(y_true[i], y_pred[i], classes=k, sex=sex[i], age_group=age[i])) for i in idx]


def test_resample_indices_are_seeded_and_chunk_independent():
    a = np.concatenate(list(resample_indices(50, 250, seed=3)))
    b = np.concatenate(list(resample_indices(50, 250, seed=3)))
    c = np.concatenate(list(resample_indices(50, 250, seed=4)))
    assert a.shape == (250, 50) and a.min() >= 0 and a.max() < 50
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # the first 100 resamples do not depend on how many follow
    assert np.array_equal(np.concatenate(list(resample_indices(50, 100, seed=3))), a[:100])


def test_tables_are_the_confusion_tables_of_each_resample():
    y_true, y_pred, sex, age = make_case(40, k=3, seed=1)
    tables = bootstrap_tables(y_true, y_pred, num_classes=3, sex=sex, age_group=age, resamples=30, seed=5)
    idx = np.concatenate(list(resample_indices(40, 30, seed=5)))
    for b, i in enumerate(idx):
        direct = confusion_table(y_true[i], y_pred[i], num_classes=3, sex=sex[i], age_group=age[i])
        assert np.array_equal(tables[b], np.stack([direct[name] for name in direct]))


def test_every_resampled_metric_equals_the_direct_computation():
    y_true, y_pred, sex, age = make_case(60, k=3, seed=2)
    fast = bootstrap(y_true, y_pred, classes=3, sex=sex, age_group=age, resamples=200, seed=9)
    reference = naive(y_true, y_pred, sex, age, k=3, resamples=200, seed=9)
    undefined_seen = 0
    for key, values in fast.values.items():
        for b, ref in enumerate(reference):
            if ref[key] is None:
                undefined_seen += 1
                assert np.isnan(values[b]), (key, b)
            else:
                assert values[b] == pytest.approx(ref[key], abs=1e-12), (key, b)
    assert undefined_seen > 0  # the case is small enough that some resampled values are undefined
    # and the intervals are the percentiles of exactly the defined reference values
    for key in ("accuracy", "eodd", "groups/old"):
        defined = [r[key] for r in reference if r[key] is not None]
        interval, undefined = fast.interval(key)
        assert undefined == 200 - len(defined)
        assert interval == pytest.approx(list(np.percentile(defined, [2.5, 97.5])))


def test_interval_properties():
    y_true, y_pred, sex, age = make_case(400, k=4, seed=3)
    boot = bootstrap(y_true, y_pred, classes=4, sex=sex, age_group=age, seed=1)
    out = boot.to_json()
    point = fairness_metrics(y_true, y_pred, classes=4, sex=sex, age_group=age)
    for key in CI_METRICS:
        lo, hi = out["ci"][key]
        assert lo < hi, key
    for key in ("accuracy", "balanced_accuracy"):  # means of per-image terms: the estimate is inside
        assert out["ci"][key][0] < point[key] < out["ci"][key][1]
    assert out["bootstrap"] == {
        "method": "percentile",
        "level": 0.95,
        "resamples": 1000,
        "seed": 1,
        "images": 400,
        "undefined": out["bootstrap"]["undefined"],
    }
    # the same seed gives the same intervals; another seed other ones
    again = bootstrap(y_true, y_pred, classes=4, sex=sex, age_group=age, seed=1).to_json()
    other = bootstrap(y_true, y_pred, classes=4, sex=sex, age_group=age, seed=2).to_json()
    assert again == out and other["ci"] != out["ci"]
    # a small group (old: about 40 images) has a wider interval than a large one (middle: about 220)
    width = {g: hi - lo for g, (lo, hi) in out["ci"]["groups"].items()}
    assert width["old"] > 1.5 * width["middle"]
    # a narrower level gives a nested interval
    narrow = bootstrap(y_true, y_pred, classes=4, sex=sex, age_group=age, seed=1, level=0.5).to_json()
    assert out["ci"]["accuracy"][0] < narrow["ci"]["accuracy"][0] < narrow["ci"]["accuracy"][1]
    assert narrow["ci"]["accuracy"][1] < out["ci"]["accuracy"][1]


def test_a_perfect_classifier_has_degenerate_intervals():
    y_true, _, sex, age = make_case(100, seed=4)
    out = bootstrap(y_true, y_true, classes=3, sex=sex, age_group=age, resamples=100).to_json()
    assert out["ci"]["accuracy"] == [1.0, 1.0] and out["ci"]["eopp1"] == [0.0, 0.0]


def test_undefined_resamples_are_skipped_and_counted():
    """One 'old' image: every resample without it leaves the old group's accuracy undefined, never 0."""
    n = 30
    y_true = np.zeros(n, dtype=int)
    y_pred = np.zeros(n, dtype=int)
    age = np.array(["middle"] * (n - 1) + ["old"], dtype=object)
    boot = bootstrap(y_true, y_pred, classes=2, age_group=age, resamples=300, seed=0)
    idx = np.concatenate(list(resample_indices(n, 300, seed=0)))
    absent = int((~(idx == n - 1).any(axis=1)).sum())
    assert 0 < absent < 300
    interval, undefined = boot.interval("groups/old")
    assert undefined == absent and interval == [1.0, 1.0]  # never pulled towards 0 by the absent resamples
    assert boot.to_json()["bootstrap"]["undefined"]["groups"] == {"middle": 0, "old": absent}


def test_no_group_and_a_never_defined_metric_give_null():
    y_true = np.array([0, 1, 0, 1])
    out = bootstrap(y_true, y_true, classes=2, resamples=20).to_json()
    assert out["ci"]["unfairness"] is None and out["ci"]["eodd"] is None and out["ci"]["groups"] == {}
    assert out["bootstrap"]["undefined"]["eodd"] == 20


def test_percentile_interval_of_nothing_defined():
    assert percentile_interval(np.array([np.nan, np.nan])) == (None, 2)


def test_paired_difference_needs_the_same_images():
    y_true, y_pred, sex, age = make_case(50, seed=5)
    a = bootstrap(y_true, y_pred, classes=3, sex=sex, age_group=age, resamples=50)
    b = bootstrap(y_true, y_true, classes=3, sex=sex, age_group=age, resamples=50, seed=1)
    with pytest.raises(ValueError, match="same test images"):
        paired_difference(a, b, "accuracy")
    shuffled = np.roll(y_true, 1)
    c = bootstrap(shuffled, y_pred, classes=3, sex=sex, age_group=age, resamples=50)
    with pytest.raises(ValueError, match="same test images"):
        paired_difference(a, c, "accuracy")


def test_paired_difference_is_per_resample():
    y_true, y_pred, sex, age = make_case(200, seed=6)
    better = np.where(np.random.default_rng(0).random(200) < 0.9, y_true, y_pred)
    a = bootstrap(y_true, better, classes=3, sex=sex, age_group=age, resamples=300)
    b = bootstrap(y_true, y_pred, classes=3, sex=sex, age_group=age, resamples=300)
    diff = paired_difference(a, b, "accuracy")
    assert diff.interval == pytest.approx(list(np.percentile(a.values["accuracy"] - b.values["accuracy"], [2.5, 97.5])))
    assert diff.estimate == pytest.approx(a.point["accuracy"] - b.point["accuracy"])
    assert diff.interval[0] > 0 and diff.excludes_zero()
    # a model against itself: every resampled difference is 0, so the interval does not exclude 0
    same = paired_difference(b, b, "balanced_accuracy")
    assert same.interval == [0.0, 0.0] and not same.excludes_zero()
    # pairing matters: the paired interval is narrower than one from two independent bootstraps
    independent = (
        a.values["accuracy"]
        - bootstrap(y_true[::-1], y_pred[::-1], classes=3, sex=sex[::-1], age_group=age[::-1], resamples=300).values[
            "accuracy"
        ]
    )
    lo, hi = np.percentile(independent, [2.5, 97.5])
    assert diff.interval[1] - diff.interval[0] < hi - lo


def test_speed_path_handles_a_thousand_images():
    y_true, y_pred, sex, age = make_case(1000, k=8, seed=7)
    out = bootstrap(y_true, y_pred, classes=8, sex=sex, age_group=age).to_json()
    assert out["bootstrap"]["resamples"] == 1000 and out["bootstrap"]["images"] == 1000


@pytest.mark.parametrize("classes", [8, 40])
def test_packed_predictions_round_trip(classes):
    y_true, y_pred, sex, age = make_case(25, k=classes, seed=8)
    packed = pack_predictions(y_true, y_pred, num_classes=classes, sex=sex, age_group=age, image_ids=range(25))
    assert isinstance(packed["y_true"], str if classes <= 36 else list)
    back = unpack_predictions(packed)
    assert back is not None
    assert np.array_equal(back.y_true, y_true) and np.array_equal(back.y_pred, y_pred)
    assert list(back.sex) == list(sex) and list(back.age_group) == list(age)
    assert back.same_images(
        unpack_predictions(
            pack_predictions(y_true, y_true, num_classes=classes, sex=sex, age_group=age, image_ids=range(25))
        )
    )
    other_images = unpack_predictions(
        pack_predictions(y_true, y_pred, num_classes=classes, sex=sex, age_group=age, image_ids=range(1, 26))
    )
    assert not back.same_images(other_images)
    assert unpack_predictions(None) is None and unpack_predictions({"format": "other"}) is None
    assert unpack_predictions({**packed, "sex": packed["sex"][:-1]}) is None


def test_agrees_with_fairlearn_bootstrap():
    """fairlearn's MetricFrame bootstrap, given the same resampled rows, gives the same intervals."""
    pytest.importorskip("fairlearn")
    import pandas as pd
    from fairlearn.metrics import MetricFrame, equalized_odds_difference
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(11)
    n, n_boot, seed = 300, 60, 7
    y_true = rng.integers(0, 2, n)
    sex = np.where(rng.random(n) < 0.5, "male", "female").astype(object)
    y_pred = np.where(rng.random(n) < np.where(sex == "male", 0.15, 0.3), 1 - y_true, y_true)
    mf = MetricFrame(
        metrics=accuracy_score,
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=pd.Series(sex, name="sex"),
        n_boot=n_boot,
        ci_quantiles=[0.025, 0.975],
        random_state=seed,
    )
    # the rows fairlearn drew (DataFrame.sample(frac=1, replace=True) with one RandomState per resample)
    seeds = np.random.default_rng(seed).integers(0, np.iinfo(np.uint32).max, size=n_boot, dtype=np.uint32)
    idx = np.stack([np.random.RandomState(s).choice(n, size=n, replace=True) for s in seeds])
    values = metrics_from_tables(bootstrap_tables(y_true, y_pred, num_classes=2, sex=sex, indices=[idx]))
    lo, hi = mf.overall_ci
    assert percentile_interval(values["accuracy"])[0] == pytest.approx([lo, hi])
    for g in ("male", "female"):
        assert percentile_interval(values[f"groups/{g}"])[0] == pytest.approx(
            [mf.by_group_ci[0][g], mf.by_group_ci[1][g]]
        )
    # and on a binary problem our per-resample EODD is fairlearn's equalized_odds_difference
    for b in range(0, n_boot, 6):
        i = idx[b]
        assert values["eodd"][b] == pytest.approx(
            equalized_odds_difference(y_true[i], y_pred[i], sensitive_features=sex[i])
        )
