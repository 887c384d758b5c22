"""The balanced subset (as even as the data allows, seeded) and the class-stratified, lesion-aware split."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from flnas.data.isic import Record
from flnas.data.subset import balanced_subset, group_counts, split_records
from flnas.errors import DataError

AGE = {"young": 20.0, "middle": 45.0, "old": 75.0, None: math.nan}


def make(
    cells: dict[tuple[str | None, str | None], int], labels: tuple[str, ...] = ("NV", "MEL")
) -> list[Record]:
    records = []
    for (sex, age), count in cells.items():
        for _ in range(count):
            i = len(records)
            records.append(
                Record(
                    image=f"I{i:05d}",
                    path=Path(f"I{i:05d}.jpg"),
                    label=labels[i % len(labels)],
                    row=i + 2,
                    sex=sex,
                    age_approx=AGE[age],
                    lesion_id=f"L{i}",
                )
            )
    return records


def test_equal_cells_when_every_cell_is_big_enough():
    records = make({(s, a): 100 for s in ("male", "female") for a in ("young", "middle", "old")})
    result = balanced_subset(records, 120, seed=0)
    assert result.report["achieved"] == 120 and len(result.records) == 120
    assert set(result.report["cell_counts"].values()) == {20}
    assert result.report["balance"]["sex"]["ratio"] == 1.0 and result.report["balance"]["age"]["ratio"] == 1.0
    assert "sex balanced" in result.report["note"] and "age balanced" in result.report["note"]


def test_small_cells_are_taken_whole_and_the_rest_stays_balanced():
    # like ISIC: few young, old mostly male
    records = make(
        {
            ("male", "young"): 10,
            ("female", "young"): 12,
            ("male", "old"): 60,
            ("female", "old"): 25,
            ("male", "middle"): 400,
            ("female", "middle"): 300,
        }
    )
    report = balanced_subset(records, 300, seed=1).report
    counts = report["group_counts"]
    assert counts["young"] == 22  # every young record
    assert counts["old"] == 85  # every old record: old is still below a third
    assert counts["middle"] == 300 - 22 - 85
    assert counts["male"] == counts["female"] == 150  # sex can still be balanced exactly
    assert "young has only 22" in report["note"] and "sex balanced" in report["note"]
    assert report["balance"]["age"]["ratio"] == pytest.approx(22 / 193, abs=1e-3)


def test_unknown_demographics_only_fill_what_is_left():
    records = make({("male", "middle"): 5, ("female", "young"): 5, (None, "old"): 20, ("male", None): 20})
    assert all(r.sex and r.age_group for r in balanced_subset(records, 10, seed=0).records)
    report = balanced_subset(records, 15, seed=0).report
    assert report["achieved"] == 15 and "5 records with unknown sex or age" in report["note"]


def test_more_requested_than_available():
    records = make({("male", "middle"): 4, ("female", "old"): 3})
    report = balanced_subset(records, 50, seed=0).report
    assert report["achieved"] == 7 and report["note"].startswith("only 7 records available")


def test_seeded_and_order_independent_choice():
    records = make({(s, a): 30 for s in ("male", "female") for a in ("young", "middle", "old")})
    a = [r.image for r in balanced_subset(records, 60, seed=5).records]
    assert a == [r.image for r in balanced_subset(records, 60, seed=5).records]
    assert a != [r.image for r in balanced_subset(records, 60, seed=6).records]


@pytest.mark.parametrize("n", [0, -3])
def test_subset_must_be_positive(n):
    with pytest.raises(DataError, match="--subset"):
        balanced_subset(make({("male", "old"): 3}), n)


def test_group_counts_leave_unknowns_out():
    counts = group_counts(make({("male", None): 2, (None, "old"): 3, ("female", "young"): 1}))
    assert counts == {"male": 2, "female": 1, "young": 1, "middle": 0, "old": 3}


def test_split_is_70_20_10_per_class():
    records = make({("male", "middle"): 1000}, labels=("NV", "NV", "NV", "MEL", "DF"))
    split = split_records(records, seed=0)
    assert sorted(i for idx in split.values() for i in idx) == list(range(1000))
    for label, total in Counter(r.label for r in records).items():
        per_split = {s: sum(records[i].label == label for i in idx) for s, idx in split.items()}
        assert per_split["train"] == pytest.approx(0.7 * total, abs=1)
        assert per_split["val"] == pytest.approx(0.2 * total, abs=1)
        assert per_split["test"] == pytest.approx(0.1 * total, abs=1)


def test_split_keeps_each_lesion_in_one_split_and_is_seeded():
    records = make({("female", "old"): 300})
    for i, r in enumerate(records):
        r.lesion_id = f"L{i // 3}" if i < 150 else (None if i % 2 else f"S{i}")  # 50 lesions with 3 images
        r.label = "NV" if (i // 3) % 2 else "MEL"
    split = split_records(records, seed=3)
    where = {i: s for s, idx in split.items() for i in idx}
    for lesion in {r.lesion_id for r in records if r.lesion_id}:
        assert len({where[i] for i, r in enumerate(records) if r.lesion_id == lesion}) == 1
    assert split == split_records(records, seed=3)
    assert split != split_records(records, seed=4)
    assert abs(len(split["train"]) - 210) <= 4
