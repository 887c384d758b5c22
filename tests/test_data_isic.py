"""Integration test on the real ISIC 2019 subset (../shared/data/isic2019_subset; skipped where absent)."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from flnas.cli.main import main
from flnas.data.groups import age_group

pytestmark = [pytest.mark.slow, pytest.mark.isic]

# from ../shared/data/README.md
README_CLASS_COUNTS = {
    "MEL": 378,
    "NV": 3231,
    "BCC": 195,
    "AK": 51,
    "BKL": 459,
    "DF": 46,
    "VASC": 57,
    "SCC": 83,
}


def summary(argv: list[str], capsys) -> dict:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    assert exc.value.code == 0, out.err
    return json.loads(out.out)


@pytest.fixture(scope="module")
def csv_truth(isic_dir) -> pd.DataFrame:
    """Labels and demographics straight from the official CSVs, with pandas (independent of the loader)."""
    truth = pd.read_csv(isic_dir / "ISIC_2019_Training_GroundTruth.csv")
    meta = pd.read_csv(isic_dir / "ISIC_2019_Training_Metadata.csv")
    labels = truth.columns[1:]
    frame = truth.assign(label=truth[labels].idxmax(axis=1))[["image", "label"]].merge(meta, on="image")
    frame["age_group"] = frame["age_approx"].map(age_group)
    return frame


def test_subset_3000_counts_balance_and_cache_hit(isic_dir, csv_truth, tmp_path, capsys):
    argv = [
        "data",
        "summary",
        "--data",
        str(isic_dir),
        "--subset",
        "3000",
        "--json",
        "--no-progress",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    first = summary(argv, capsys)

    # the whole dataset, as the CSVs say
    dataset = first["dataset"]
    assert first["name"] == "ISIC 2019" and first["synthetic"] is False
    assert first["classes"] == list(README_CLASS_COUNTS)  # UNK has no record: dropped
    assert dataset["records"] == len(csv_truth) == 4500
    assert dataset["class_counts"] == README_CLASS_COUNTS == csv_truth["label"].value_counts().to_dict()
    sexes, ages = csv_truth["sex"].value_counts(), csv_truth["age_group"].value_counts()
    assert dataset["group_counts"] == {
        "male": sexes["male"],
        "female": sexes["female"],
        "young": ages["young"],
        "middle": ages["middle"],
        "old": ages["old"],
    }
    assert dataset["missing"] == {
        "sex": int(csv_truth["sex"].isna().sum()),
        "age": int(csv_truth["age_group"].isna().sum()),
    }

    # the subset: 3000 records, sex exactly balanced, age as balanced as 239 young records allow
    subset = first["subset"]
    assert first["records"] == subset["achieved"] == 3000 == sum(first["class_counts"].values())
    groups = first["group_counts"]
    assert groups["male"] == groups["female"] == 1500
    assert groups["young"] == ages["young"] and groups["old"] == ages["old"]  # all of the scarce groups
    assert groups["middle"] == 3000 - ages["young"] - ages["old"]
    assert "sex balanced" in subset["note"] and "young has only" in subset["note"]
    assert all(first["class_counts"][c] <= n for c, n in README_CLASS_COUNTS.items())
    splits = first["splits"]
    assert (
        sum(splits.values()) == 3000 and abs(splits["train"] - 2100) <= 8 and abs(splits["test"] - 300) <= 8
    )
    assert first["cache"]["hit"] is False and first["cache"]["decoded"] == 3000

    second = summary(argv, capsys)
    assert second["cache"]["hit"] is True and second["cache"]["decoded"] == 0
    assert {k: v for k, v in second.items() if k != "cache"} == {
        k: v for k, v in first.items() if k != "cache"
    }


def test_prepared_subset_matches_csv_rows(isic_dir, csv_truth, tmp_path):
    from flnas.data import prepare_data

    data = prepare_data(isic_dir, subset=300, seed=1, image_size=32, cache_dir=tmp_path, progress=False)
    by_image = csv_truth.set_index("image")
    seen = Counter()
    for split in data.splits.values():
        for k, image in enumerate(split.image_ids):
            row = by_image.loc[image]
            assert data.classes[int(split.labels[k])] == row["label"]
            assert split.groups["sex"][k] == (row["sex"] if isinstance(row["sex"], str) else None)
            seen[image] += 1
    assert len(seen) == 300 and max(seen.values()) == 1
    assert tuple(data.splits["train"].images.shape[1:]) == (3, 32, 32)
