"""GetBestMetrics rules, ranking and the Pareto front, on hand-made candidates."""

from __future__ import annotations

import pytest

from flnas import records as selection
from flnas.errors import FlnasError
from flnas.records import Candidate


# the rules below are checked on plain accuracy (the paper's preset); the balanced default has its own tests
def get_best(candidates, **kw):
    return selection.get_best(candidates, **{"accuracy": "plain", **kw})


def rank(candidates, **kw):
    return selection.rank(candidates, **{"accuracy": "plain", **kw})


def pareto_front(candidates, **kw):
    return selection.pareto_front(candidates, **{"accuracy": "plain", **kw})


def fitness(candidate, weights=None):
    return selection.fitness(candidate, weights, accuracy="plain")


def cand(number: int, acc: float, unf: float | None, params: int, status: str = "ok", test_acc: float = 0.0):
    metrics = {"params": params, "val": {"accuracy": acc, "unfairness": unf}, "test": {"accuracy": test_acc}}
    return Candidate(
        number=number, iteration=number + 1, designer="t", spec={}, status=status, metrics=metrics
    )


POOL = [
    cand(0, 0.70, 0.10, 50_000),
    cand(1, 0.69, 0.04, 80_000),  # within 0.02 of the best accuracy, fairest -> default choice
    cand(2, 0.60, 0.01, 10_000),  # fairest overall but far less accurate
    cand(3, 0.68, 0.04, 20_000),  # same unfairness as #1 and fewer params -> wins the tie
    cand(4, 0.95, 0.00, 1_000, status="failed"),  # failed: never selected
]


def test_fair_rule_prefers_lowest_unfairness_within_tolerance_then_fewer_params():
    assert get_best(POOL).number == 3
    assert get_best(POOL, tolerance=0.015).number == 1  # #3 (0.68) is now outside the tolerance
    assert get_best(POOL, tolerance=0.0).number == 0
    assert get_best(POOL, tolerance=0.2).number == 2


def test_other_rules():
    assert get_best(POOL, rule="accuracy").number == 0
    assert get_best(POOL, rule="unfairness").number == 2
    assert get_best(POOL, rule="params").number == 3  # fewest params within 0.02 of 0.70
    assert get_best(POOL, rule="params", tolerance=0.2).number == 2
    assert get_best(POOL, rule="weighted").number == max(POOL[:4], key=fitness).number


def test_balanced_rule_does_not_pick_the_majority_class_predictor():
    def with_balanced(c, balanced):
        c.metrics["val"]["balanced_accuracy"] = balanced
        return c

    pool = [
        with_balanced(cand(0, 0.72, 0.00, 50_000), 0.125),  # answers NV for everything: 72% accurate, "fair"
        with_balanced(cand(1, 0.65, 0.12, 60_000), 0.53),
        with_balanced(cand(2, 0.62, 0.08, 40_000), 0.52),  # within 0.02 of the best balanced acc, fairer
        with_balanced(cand(3, 0.66, 0.05, 30_000), 0.40),
    ]
    assert get_best(pool).number == 0  # the paper's accuracy-based rule falls for it
    assert get_best(pool, rule="balanced").number == 2
    assert get_best(pool, rule="balanced", tolerance=0.0).number == 1
    assert [c.number for c in rank(pool, rule="balanced")][:2] == [2, 1]
    assert get_best([cand(0, 0.7, 0.1, 10)], rule="balanced").number == 0  # no balanced accuracy: 0.0


def test_selection_uses_validation_metrics_only():
    a, b = cand(0, 0.70, 0.05, 1000, test_acc=0.10), cand(1, 0.60, 0.05, 1000, test_acc=0.99)
    assert get_best([a, b], rule="accuracy").number == 0


def test_undefined_unfairness_counts_as_worst_and_empty_pool_gives_none():
    assert get_best([cand(0, 0.7, None, 10), cand(1, 0.7, 0.5, 10)]).number == 1
    assert get_best([]) is None
    assert get_best([cand(0, 0.9, 0.0, 1, status="invalid")]) is None
    assert get_best([Candidate(0, 1, "t", None, "ok", metrics=None)]) is None


def test_ties_go_to_the_earlier_trial():
    assert get_best([cand(5, 0.7, 0.1, 10), cand(2, 0.7, 0.1, 10)]).number == 2


def test_rank_is_repeated_selection_and_skips_failed():
    ranked = rank(POOL)
    assert [c.number for c in ranked] == [3, 1, 0, 2]
    assert ranked[0] is get_best(POOL)
    assert [c.number for c in rank(POOL, rule="accuracy")] == [0, 1, 3, 2]


def test_pareto_front():
    front = {c.number for c in pareto_front(POOL)}
    # #1 beats #3 on accuracy, #3 beats #1 on params: neither dominates
    assert front == {0, 1, 2, 3}
    dominated = cand(9, 0.65, 0.2, 90_000)
    assert 9 not in {c.number for c in pareto_front([*POOL, dominated])}
    twin = cand(10, 0.70, 0.10, 50_000)  # equal to #0: neither dominates the other
    assert {0, 10} <= {c.number for c in pareto_front([*POOL, twin])}


def test_bad_rule_or_tolerance_is_one_sentence():
    with pytest.raises(FlnasError, match="not a selection rule"):
        get_best(POOL, rule="best")
    with pytest.raises(FlnasError, match="non-negative"):
        get_best(POOL, tolerance=-1)


def test_balanced_accuracy_of_record_is_the_default_and_drives_every_rule():
    def with_balanced(c, balanced):
        c.metrics["val"]["balanced_accuracy"] = balanced
        return c

    pool = [
        with_balanced(cand(0, 0.72, 0.00, 50_000), 0.125),  # the majority-class answer
        with_balanced(cand(1, 0.65, 0.12, 60_000), 0.53),
        with_balanced(cand(2, 0.62, 0.08, 40_000), 0.52),
    ]
    assert selection.get_best(pool).number == 2  # fair rule on balanced accuracy (the default)
    assert selection.get_best(pool, rule="accuracy").number == 1
    assert selection.get_best(pool, rule="accuracy", accuracy="plain").number == 0
    assert selection.objectives(pool[0]) == (0.125, 0.0, 50_000)
    assert selection.objectives(pool[0], "plain") == (0.72, 0.0, 50_000)
    assert {c.number for c in selection.pareto_front(pool)} == {0, 1, 2}  # 0 is the fairest
    with pytest.raises(FlnasError, match="--accuracy 'top1'"):
        selection.get_best(pool, accuracy="top1")


def test_degenerate_candidates_are_never_selected():
    c = cand(0, 0.9, 0.0, 10, status="degenerate")
    assert selection.get_best([c], accuracy="plain") is None
    assert selection.rank([c, cand(1, 0.5, 0.1, 10)], accuracy="plain")[0].number == 1
