"""Dataset cards: the schema's checks (one sentence naming the key, exit 2) and datasets read only by a card."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from flnas.cli.main import main
from flnas.data import load_dataset, prepare_data, read_card
from flnas.data.card import parse_card
from flnas.errors import DataError

SKIN = ("I", "II", "III", "IV", "V", "VI")


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def fitz_dataset(root: Path, n: int = 60, *, split: bool = False) -> Path:
    """A Fitzpatrick17k-style set: files with extension, a label column, skin type I-VI, age, patient ids."""
    rng = np.random.default_rng(0)
    (root / "imgs").mkdir(parents=True)
    rows = []
    for i in range(n):
        name = f"img{i:03d}.png" if i % 2 else f"img{i:03d}"  # every other row without its extension
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / "imgs" / f"img{i:03d}.png")
        rows.append({"md5hash": name, "diagnosis": ("benign", "malignant", "non-neoplastic")[i % 3],
                     "fitzpatrick": str(SKIN[i % 6][:]) if i % 17 else "", "age": str(10 + (i * 7) % 80),
                     "patient": f"P{i // 2}", "partition": ("train", "train", "train", "val", "test")[i % 5]})
    with open(root / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    card = {
        "name": "fitz-style",
        "images": "imgs",
        "manifest": "labels.csv",
        "image_column": "md5hash",
        "label_column": "diagnosis",
        "classes": ["benign", "malignant"],
        "sensitive": {
            "skin_type": {"column": "fitzpatrick",
                          "groups": {"light": ["I", "II"], "medium": ["III", "IV"], "dark": ["V", "VI"]}},
            "age": {"column": "age", "bins": [30, 65], "labels": ["young", "middle", "old"]},
        },
        "intersections": [["skin_type", "age"]],
        "group_column": "patient",
    }
    if split:
        card["split_column"] = "partition"
    (root / "flnas.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return root


def test_a_card_reads_a_csv_with_other_column_names(tmp_path):
    root = fitz_dataset(tmp_path / "fitz")
    loaded = load_dataset(root)
    assert loaded.name == "fitz-style" and loaded.classes == ["benign", "malignant"]
    assert loaded.dropped_classes == {"non-neoplastic": 20}  # rows of other classes are dropped and counted
    assert len(loaded.records) == 40
    assert loaded.attributes["skin_type"] == ("light", "medium", "dark")
    assert loaded.attributes["age"] == ("young", "middle", "old")
    assert loaded.attributes["skin_type/age"][:4] == ("light/young", "light/middle", "light/old", "medium/young")
    by_image = {r.image: r for r in loaded.records}
    r = by_image["img001.png"]  # fitzpatrick II, age 17, patient P0
    assert (r.groups["skin_type"], r.groups["age"], r.groups["skin_type/age"], r.unit) == \
        ("light", "young", "light/young", "P0")
    assert by_image["img004"].path.name == "img004.png"  # the missing extension was found
    assert by_image["img034"].groups["skin_type"] is None and by_image["img034"].groups["skin_type/age"] is None
    assert r.values == {"fitzpatrick": "light", "age": 17.0}


def test_prepare_data_with_a_card_balances_the_card_attributes(tmp_path):
    root = fitz_dataset(tmp_path / "fitz", n=240)
    data = prepare_data(root / "flnas.yaml", subset=60, image_size=8, cache_dir=tmp_path / "c", progress=False)
    summary = data.summary
    assert data.attributes["skin_type"] == ("light", "medium", "dark") and "skin_type/age" in data.attributes
    assert set(summary["missing"]) == {"skin_type", "age", "skin_type/age"}
    counts = summary["subset"]["group_counts"]
    assert counts["light"] == counts["medium"] == counts["dark"] == 20  # 3 x 3 cells, equal
    assert set(summary["subset"]["balance"]) == {"skin_type", "age"}
    assert summary["dataset"]["dropped_classes"] == {"non-neoplastic": 80}
    for split in data.splits.values():
        assert set(split.groups) == {"skin_type", "age", "skin_type/age"}
        assert set(split.sensitive) == {"fitzpatrick", "age"} and split.sensitive["age"].dtype == float
    # one patient never spans two splits
    owner: dict[str, str] = {}
    loaded = {r.image: r.unit for r in load_dataset(root).records}
    for name, split in data.splits.items():
        for image in split.image_ids:
            assert owner.setdefault(loaded[image], name) == name


def test_split_column_keeps_the_users_split(tmp_path):
    root = fitz_dataset(tmp_path / "fitz", n=90, split=True)
    data = prepare_data(root, image_size=8, cache_dir=tmp_path / "c", progress=False)
    given = {r.image: r.split for r in load_dataset(root).records}
    for name, split in data.splits.items():
        assert split.image_ids and all(given[i] == name for i in split.image_ids)


def bad_card(**changes) -> dict:
    card = {"images": "imgs", "manifest": "labels.csv", "image_column": "md5hash", "label_column": "diagnosis",
            "sensitive": {"skin": {"column": "fitzpatrick"},
                          "age": {"column": "age", "bins": [30, 65], "labels": ["young", "middle", "old"]}}}
    for key, value in changes.items():
        if value is None:
            card.pop(key)
        else:
            card[key] = value
    return card


AGE = {"column": "age", "bins": [30, 65], "labels": ["young", "middle", "old"]}
BAD_CARDS = {
    "missing key": (bad_card(images=None), "images: required key is missing"),
    "unknown key": (bad_card(lables="x"), "lables: unknown key"),
    "no labels": (bad_card(label_column=None), "give exactly one of label_column"),
    "overlapping groups": (
        bad_card(sensitive={"skin": {"column": "f", "groups": {"light": ["I", "II"], "dark": ["II", "VI"]}}}),
        "sensitive.skin.groups: value 'II' is mapped to both light and dark"),
    "bins out of order": (bad_card(sensitive={"age": {**AGE, "bins": [30, 20]}}),
                          "sensitive.age.bins: edges must increase (30, 20)"),
    "labels count": (bad_card(sensitive={"age": {**AGE, "labels": ["young", "old"]}}),
                     "sensitive.age.labels: 2 edges make 3 groups, so labels needs 3 names, not 2"),
    "one group": (bad_card(sensitive={"site": {"column": "s", "groups": {"head": ["head", "neck"]}}}),
                  "sensitive.site.groups: an attribute needs at least two groups, this one has 1"),
    "group in two attributes": (
        bad_card(sensitive={"age": AGE, "era": {"column": "e", "groups": ["young", "modern"]}}),
        "group 'young' is in both age and era"),
    "intersection of nothing": (bad_card(intersections=[["skin", "site"]]),
                                "intersections[0]: 'site' is not an attribute of sensitive"),
    "balance on unknown": (bad_card(balance_on=["sex"]), "balance_on: 'sex' is not an attribute of sensitive"),
    "group values not a list": (bad_card(sensitive={"skin": {"column": "f", "groups": {"light": "I", "dark": ["V"]}}}),
                                "sensitive.skin.groups.light: Input should be a valid list"),
    "bins and groups": (bad_card(sensitive={"age": {**AGE, "groups": ["a", "b"]}}),
                        "sensitive.age: give either bins (numeric) or groups (categorical), not both"),
}


@pytest.mark.parametrize("case", list(BAD_CARDS))
def test_bad_card_is_one_sentence_naming_the_key_and_exit_2(case, tmp_path, capsys):
    card, expected = BAD_CARDS[case]
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    with pytest.raises(DataError, match="card.yaml: "):
        read_card(path)
    code, _, err = run(["data", "summary", "--data", str(path), "--no-progress"], capsys)
    line = " ".join(err.split())
    assert code == 2 and line.startswith("error: card.yaml: ") and "Traceback" not in err
    assert expected in line, line
    assert len(err.strip().splitlines()) <= 3  # one sentence (rich may wrap it)


@pytest.mark.parametrize(("change", "expected"), [
    ({"sensitive": {"skin": {"column": "fitz"}, "age": AGE}},
     "flnas.yaml: sensitive.skin.column: column 'fitz' missing from labels.csv (found: md5hash, diagnosis"),
    ({"image_column": "file"}, "flnas.yaml: image_column: column 'file' missing from labels.csv"),
    ({"sensitive": {"skin": {"column": "age"}, "age": AGE}},  # one value per record: every age its own group...
     None),
])
def test_columns_are_checked_against_the_csv(change, expected, tmp_path, capsys):
    root = fitz_dataset(tmp_path / "fitz")
    card = yaml.safe_load((root / "flnas.yaml").read_text())
    card.update(change)
    card.pop("intersections")
    (root / "flnas.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    if expected is None:  # ...which clash with nothing: fine, 40 values are 40 groups (sorted)
        assert len(load_dataset(root).attributes["skin"]) > 10
        return
    code, _, err = run(["data", "summary", "--data", str(root), "--no-progress"], capsys)
    assert code == 2 and expected in " ".join(err.split())


def test_a_categorical_column_with_one_value_is_refused(tmp_path):
    root = fitz_dataset(tmp_path / "fitz")
    card = yaml.safe_load((root / "flnas.yaml").read_text())
    card["sensitive"]["site"] = {"column": "partition", "missing": ["train", "val"]}  # leaves only "test"
    (root / "flnas.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    with pytest.raises(DataError, match=r"flnas.yaml: sensitive.site: column partition has 1 group\(s\) \(test\); "
                                        "an attribute needs at least two groups"):
        load_dataset(root)


def test_card_json_and_not_a_mapping(tmp_path):
    path = tmp_path / "card.json"
    path.write_text(json.dumps(bad_card()))
    assert read_card(path).sensitive["age"].labels == ["young", "middle", "old"]
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="card.json: a card is a mapping of keys"):
        read_card(path)
    with pytest.raises(DataError, match="card.yaml: not valid YAML"):
        (tmp_path / "card.yaml").write_text("images: [unclosed")
        read_card(tmp_path / "card.yaml")
    with pytest.raises(DataError, match="nowhere.yaml: dataset card not found"):
        prepare_data(tmp_path / "nowhere.yaml")


def test_card_command_prints_the_folders_card(tmp_path, capsys):
    root = fitz_dataset(tmp_path / "fitz")
    code, out, _ = run(["data", "card", str(root)], capsys)
    assert code == 0 and out.startswith("# flnas dataset card read from")
    assert parse_card(yaml.safe_load(out), "printed") == read_card(root / "flnas.yaml")


def test_synth_card_writes_a_dataset_with_a_third_attribute_and_an_intersection(tmp_path, capsys):
    out = tmp_path / "syn"
    code, _, _ = run(["data", "synth", "--out", str(out), "--card", "--n", "90", "--image-size", "16"], capsys)
    assert code == 0 and (out / "flnas.yaml").is_file() and not (out / "ISIC_2019_Training_GroundTruth.csv").exists()
    code, stdout, _ = run(["data", "summary", "--data", str(out), "--json", "--no-progress", "--image-size", "16",
                           "--cache-dir", str(tmp_path / "c")], capsys)
    summary = json.loads(stdout)
    assert code == 0 and summary["name"] == "synthetic (flnas)" and summary["synthetic"] is True
    assert list(summary["missing"]) == ["sex", "age", "skin_tone", "sex/skin_tone"]
    groups = summary["group_counts"]
    assert groups["light"] + groups["medium"] + groups["dark"] == 90 - summary["missing"]["skin_tone"]
    assert groups["female/dark"] == sum(1 for r in load_dataset(out).records
                                        if r.groups["sex"] == "female" and r.groups["skin_tone"] == "dark")
    # the same generator as the ISIC layout: the same classes, records per lesion kept together
    assert summary["classes"] == ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]
    with pytest.raises(DataError, match="not synthetic; refusing to overwrite"):
        (out / "SYNTHETIC.txt").unlink()
        from flnas.data import write_synthetic

        write_synthetic(out, n=10, card=True)


def nested_dataset(root: Path, splits: list[str]) -> Path:
    """Images in per-patient subfolders named by relative path, a split column, a strict attribute."""
    rng = np.random.default_rng(1)
    lines = ["path,dx,sex,age,pid,split"]
    for i, split in enumerate(splits):
        folder = root / "photos" / f"p{i // 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        lines.append(f"p{i // 3}/{i}.png,{'ab'[i % 2]},{'MF'[i % 3 == 0]},{20 + i},{i // 3},{split}")
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    card = {"images": "photos", "manifest": "meta.csv", "image_column": "path", "label_column": "dx",
            "sensitive": {"sex": {"column": "sex", "groups": {"male": ["M"], "female": ["F"]}, "strict": True},
                          "age": {"column": "age", "bins": [30], "labels": ["under30", "over30"]}},
            "group_column": "pid", "split_column": "split", "balance_on": ["sex"]}
    (root / "card.yml").write_text(yaml.safe_dump(card, sort_keys=False))
    return root / "card.yml"


def test_relative_paths_given_split_and_balance_on(tmp_path):
    card = nested_dataset(tmp_path / "d", ["Train", "train", "VALID", "test", "training", "val"] * 4)
    data = prepare_data(card, subset=12, image_size=8, cache_dir=tmp_path / "c", progress=False)
    report = data.summary["subset"]
    assert set(report["balance"]) == {"sex"} and report["group_counts"]["male"] == report["group_counts"]["female"]
    assert set(report["cell_counts"]) <= {"male", "female"}  # cells of the balanced attributes only
    assert data.name == "d" and data.attributes["age"] == ("under30", "over30")
    given = {r.image: r.split for r in load_dataset(card).records}
    assert all(given[i] == name for name, split in data.splits.items() for i in split.image_ids)


def test_bad_split_value_and_strict_value_are_bad_records(tmp_path, capsys):
    card = nested_dataset(tmp_path / "d", ["train", "val", "holdout", "test"] * 3)
    with pytest.raises(DataError, match=r"meta.csv row 4 \(image p0/2.png\): split 'holdout' is not train, val"):
        load_dataset(card)
    assert load_dataset(card, skip_bad=True).skipped == {"bad_split": 3}
    text = (tmp_path / "d" / "meta.csv").read_text().replace(",holdout", ",test").replace(",M,", ",X,", 1)
    (tmp_path / "d" / "meta.csv").write_text(text)
    code, _, err = run(["data", "summary", "--data", str(card), "--no-progress"], capsys)
    assert code == 2 and "unknown sex value 'X' (expected male, female or empty)" in " ".join(err.split())


def test_summary_tables_name_the_card_groups_and_dropped_classes(tmp_path, capsys):
    root = fitz_dataset(tmp_path / "fitz")
    code, out, _ = run(["data", "summary", "--data", str(root), "--no-progress", "--image-size", "8",
                        "--cache-dir", str(tmp_path / "c")], capsys)
    text = " ".join(out.split())
    assert code == 0 and "fitz-style" in text
    assert all(g in text for g in ("light", "medium", "dark", "light/young", "unknown skin_type", "unknown age"))
    assert "dropped 20 records of classes the card does not list: non-neoplastic 20" in text
