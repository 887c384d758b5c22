"""Groups found in a data column are ordered as people read them: numbers by value, text naturally.

One function (:func:`flnas.data.attributes.group_order`) orders them wherever groups are discovered: a
dataset card's attribute without a ``groups:`` list, ``flnas metrics --sensitive COL``, the metric
functions called without attributes. As plain text, "10" came before "9" and "Type 10" before "Type 2".
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from flnas.cli.main import main
from flnas.data import load_dataset
from flnas.data.attributes import group_order, natural_key
from flnas.data.subset import cell_counts
from flnas.errors import StudyError
from flnas.evaluate.fairness import fairness_metrics
from flnas.study.setup import check_same_attributes

TYPES = [str(t) for t in range(1, 13)]  # a skin-type scale of 12 values, written as integers


def test_numbers_go_by_value_and_keep_how_they_are_written():
    assert group_order(["10", "9", "1", "12", "2"]) == ("1", "2", "9", "10", "12")
    assert group_order(["2.5", "-1", "1e3", "10", "0.5"]) == ("-1", "0.5", "2.5", "10", "1e3")
    assert group_order(["1.0", "10.0", "9.0"]) == ("1.0", "9.0", "10.0")  # as in the data, not re-formatted
    assert group_order([3, 10, 2, 10]) == ("2", "3", "10")  # values of any type, each name once


def test_text_goes_naturally_and_plain_words_as_before():
    assert group_order(["Type 10", "Type 2", "Type 1"]) == ("Type 1", "Type 2", "Type 10")
    assert group_order(["site b", "site a", "1st", "12th", "2nd"]) == ("1st", "2nd", "12th", "site a", "site b")
    assert group_order(["x1", "x01", "x2"]) == ("x01", "x1", "x2")  # the text breaks a tie of equal numbers
    words = ["torso", "head/neck", "Lower extremity", "oral/genital", "palms/soles"]
    assert group_order(words) == tuple(sorted(words))  # no digits: the order plain text always had
    assert group_order(["nan", "inf", "1"]) == ("1", "inf", "nan")  # not all numbers: natural text
    assert sorted(["a10b2", "a2b10", "a2b9"], key=natural_key) == ["a2b9", "a2b10", "a10b2"]


def _card_dataset(root: Path) -> Path:
    """24 tiny images; a skin type 1..12 and a site "Type 1".."Type 12", neither with a groups: list."""
    rng = np.random.default_rng(0)
    (root / "imgs").mkdir(parents=True)
    rows = []
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / "imgs" / f"i{i}.png")
        rows.append({"file": f"i{i}.png", "dx": ("a", "b")[i % 2], "skin": TYPES[(i * 5) % 12],
                     "site": f"Type {TYPES[(i * 7) % 12]}"})
    with open(root / "m.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    card = {"name": "numbered", "images": "imgs", "manifest": "m.csv", "image_column": "file",
            "label_column": "dx", "sensitive": {"skin": {"column": "skin"}, "site": {"column": "site"},
                                                "given": {"column": "skin", "groups": {"high": ["10", "11", "12"],
                                                                                       "low": ["1", "2", "3"]}}},
            "intersections": [["skin", "given"]]}
    (root / "flnas.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return root


def test_a_card_attribute_found_in_its_column_is_ordered_by_number(tmp_path):
    loaded = load_dataset(_card_dataset(tmp_path / "set"))
    assert loaded.attributes["skin"] == tuple(TYPES)
    assert loaded.attributes["site"] == tuple(f"Type {t}" for t in TYPES)
    assert loaded.attributes["given"] == ("high", "low")  # groups a card names keep the card's order
    assert loaded.attributes["skin/given"][:4] == ("1/high", "1/low", "2/high", "2/low")
    cells = cell_counts(loaded.records, ("skin",))
    assert list(cells) == TYPES  # the balanced subset's cells in the same order


def test_flnas_metrics_orders_the_groups_of_a_sensitive_column(tmp_path, capsys):
    path = tmp_path / "p.csv"
    lines = ["y_true,y_pred,skin,site"]
    lines += [f"{'AB'[i % 2]},{'AB'[i % 3 % 2]},{TYPES[(i * 5) % 12]},Type {TYPES[(i * 7) % 12]}" for i in range(24)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit) as exc:
        main(["metrics", "-p", str(path), "--sensitive", "skin,site", "--json"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    m = json.loads(out)
    assert m["attributes"] == {"skin": TYPES, "site": [f"Type {t}" for t in TYPES]}
    assert list(m["groups"])[:12] == TYPES
    assert list(m["pairs"])[:3] == ["1|2", "1|3", "1|4"]


def test_metric_functions_without_attributes_order_number_groups_by_value():
    y = np.array([0, 1] * 12)
    skin = np.array([TYPES[(i * 5) % 12] for i in range(24)])
    m = fairness_metrics(y, y, classes=2, groups={"skin": skin})
    assert list(m["groups"]) == TYPES


def test_a_study_with_text_ordered_groups_is_told_how_to_keep_its_order(tmp_path):
    root = _card_dataset(tmp_path / "set")
    found = load_dataset(root).attributes
    text = tuple(sorted(TYPES))  # what a study made before this ordering stored
    as_text = {**found, "skin": text, "skin/given": tuple(f"{t}/{g}" for t in text for g in found["given"])}
    with pytest.raises(StudyError) as info:
        check_same_attributes(root, found, as_text)
    listed = ", ".join(sorted(TYPES))
    assert f"set `groups: [{listed}]` (quoted if they are numbers) under sensitive.skin" in str(info.value)
    with pytest.raises(StudyError, match="sensitive attributes differ"):  # other groups: another dataset
        check_same_attributes(root, found, {**found, "skin": ("1", "2")})
    # the remedy: the card lists the groups in the study's order, and the study's attributes come back
    card = yaml.safe_load((root / "flnas.yaml").read_text())
    card["sensitive"]["skin"]["groups"] = sorted(TYPES)
    (root / "flnas.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    again = load_dataset(root).attributes
    assert again["skin"] == tuple(sorted(TYPES))
    assert again == as_text
    check_same_attributes(root, again, as_text)
