"""The ISIC 2019 layout loader, the synthetic generator and prepare_data (on synthetic data)."""

from __future__ import annotations

import csv
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flnas.data import PreparedData, default_synthetic_dir, load_records, prepare_data, write_synthetic
from flnas.data.isic import GROUND_TRUTH, IMAGE_DIR, METADATA
from flnas.data.synthetic import CLASSES, MARKER
from flnas.errors import DataError


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_records_match_the_csvs(synth_dir):
    loaded = load_records(synth_dir)
    truth, meta = rows(synth_dir / GROUND_TRUTH), rows(synth_dir / METADATA)
    assert loaded.classes == list(CLASSES)  # UNK is all zeros in the synthetic set, so it is dropped
    assert len(loaded.records) == len(truth) - 1 == 240
    expected = Counter(truth[0][1 + [float(v) for v in r[1:]].index(1.0)] for r in truth[1:])
    assert Counter(r.label for r in loaded.records) == expected
    by_image = {r.image: r for r in loaded.records}
    header = meta[0]
    for row in meta[1:]:
        record = by_image[row[0]]
        values = dict(zip(header, row, strict=True))
        assert record.sex == (values["sex"] or None)
        assert (
            math.isnan(record.age_approx)
            if not values["age_approx"]
            else record.age_approx == float(values["age_approx"])
        )
        assert record.lesion_id == values["lesion_id"]
        assert record.path.is_file()
    assert loaded.synthetic and loaded.skipped == {}


def test_downsampled_suffix_and_row_order(synth_dir, tmp_path):
    root = Path(shutil.copytree(synth_dir, tmp_path / "d"))
    truth = rows(root / GROUND_TRUTH)
    with open(root / GROUND_TRUTH, "w", newline="") as fh:  # reversed rows
        csv.writer(fh).writerows([truth[0], *truth[:0:-1]])
    # the metadata may name the image without the suffix while the file and ground truth carry it
    meta = rows(root / METADATA)
    with open(root / METADATA, "w", newline="") as fh:
        csv.writer(fh).writerows([[r[0].replace("_downsampled", ""), *r[1:]] for r in meta])
    suffixed = [r for r in load_records(root).records if r.image.endswith("_downsampled")]
    assert len(suffixed) == 9 and all(
        r.path.name == f"{r.image}.jpg" and r.sex is not None for r in suffixed[:3]
    )
    assert [r.image for r in load_records(root).records] == [r.image for r in load_records(synth_dir).records]


def test_unused_unk_is_dropped_but_a_used_one_kept(synth_dir, tmp_path):
    root = Path(shutil.copytree(synth_dir, tmp_path / "d"))
    truth = rows(root / GROUND_TRUTH)
    truth[1][1:] = ["0"] * 8 + ["1"]
    with open(root / GROUND_TRUTH, "w", newline="") as fh:
        csv.writer(fh).writerows(truth)
    assert load_records(root).classes == [*CLASSES, "UNK"]


def test_image_without_metadata_row_has_unknown_demographics(synth_dir, tmp_path):
    root = Path(shutil.copytree(synth_dir, tmp_path / "d"))
    meta = rows(root / METADATA)
    dropped = meta[1][0]
    with open(root / METADATA, "w", newline="") as fh:
        csv.writer(fh).writerows([meta[0], *meta[2:]])
    loaded = load_records(root)
    record = next(r for r in loaded.records if r.image == dropped)
    assert loaded.no_metadata == 1 and record.sex is None and record.age_group is None


def test_skip_bad_counts_each_reason(synth_dir, tmp_path):
    root = Path(shutil.copytree(synth_dir, tmp_path / "d"))
    truth = rows(root / GROUND_TRUTH)
    (root / IMAGE_DIR / f"{truth[1][0]}.jpg").unlink()
    truth[2][1:] = ["1"] * 9
    truth.append(list(truth[3]))
    with open(root / GROUND_TRUTH, "w", newline="") as fh:
        csv.writer(fh).writerows(truth)
    with pytest.raises(DataError, match=f"{GROUND_TRUTH} row 2: image {truth[1][0]} is listed"):
        load_records(root)
    loaded = load_records(root, skip_bad=True)
    assert loaded.skipped == {"missing_image": 1, "not_one_hot": 1, "duplicate": 1}
    assert len(loaded.records) == 240 + 1 - 3  # one row added (the duplicate), three skipped


def test_synthetic_layout_demographics_and_marker(synth_dir):
    assert "SYNTHETIC" in (synth_dir / MARKER).read_text()
    assert rows(synth_dir / GROUND_TRUTH)[0] == ["image", *CLASSES, "UNK"]
    assert rows(synth_dir / METADATA)[0] == ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]
    records = load_records(synth_dir).records
    lesions = Counter(r.lesion_id for r in records)
    assert 5 <= sum(c == 2 for c in lesions.values()) and max(lesions.values()) == 2
    assert any(r.sex is None for r in records) and any(r.age_group is None for r in records)
    groups = Counter(r.sex for r in records) + Counter(r.age_group for r in records)
    assert all(groups[g] >= 20 for g in ("male", "female", "young", "middle", "old"))
    assert min(Counter(r.label for r in records).values()) >= 10


def test_synthetic_is_seeded_and_biased(tmp_path):
    a = write_synthetic(tmp_path / "a", n=60, seed=7, image_size=32)
    b = write_synthetic(tmp_path / "b", n=60, seed=7, image_size=32)
    assert rows(a / METADATA) == rows(b / METADATA)
    names = sorted(p.name for p in (a / IMAGE_DIR).iterdir())
    assert all((a / IMAGE_DIR / n).read_bytes() == (b / IMAGE_DIR / n).read_bytes() for n in names[:20])

    def contrast(bias: float) -> dict[bool, float]:
        """Mean |lesion centre - skin corners| of old+female records (True) against young+male ones."""
        root = write_synthetic(tmp_path / f"bias{bias}", n=200, seed=1, image_size=32, bias=bias)
        found: dict[bool, list[float]] = {True: [], False: []}
        for r in load_records(root).records:
            if r.sex and r.age_group and (r.sex, r.age_group) in (("female", "old"), ("male", "young")):
                pixels = np.asarray(Image.open(r.path).convert("RGB"), dtype=float)
                centre = pixels[12:20, 12:20].mean(axis=(0, 1))
                corners = np.concatenate([pixels[:4, :4], pixels[:4, -4:], pixels[-4:, :4], pixels[-4:, -4:]])
                found[r.sex == "female"].append(float(np.abs(centre - corners.mean(axis=(0, 1))).sum()))
        return {k: float(np.mean(v)) for k, v in found.items()}

    unbiased, biased = contrast(0.0), contrast(1.0)
    assert biased[True] < 0.6 * biased[False]  # harder group: lesions fade into the skin
    assert abs(unbiased[True] - unbiased[False]) < 0.3 * unbiased[False]


def test_prepared_data_from_fixture(synth_data):
    assert isinstance(synth_data, PreparedData)
    assert synth_data.name == "synthetic (flnas)" and synth_data.synthetic
    assert synth_data.classes == list(CLASSES) and synth_data.num_classes == 8 and synth_data.image_size == 32
    sizes = {name: len(split) for name, split in synth_data.splits.items()}
    assert sum(sizes.values()) == 240 and sizes == synth_data.summary["splits"]
    assert abs(sizes["train"] - 168) <= 4 and abs(sizes["val"] - 48) <= 4
    for split in synth_data.splits.values():
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 32, 32)
        assert split.labels.dtype == torch.int64 and len(split.image_ids) == len(split)
        assert set(split.groups["sex"]) <= {"male", "female", None} and split.sensitive["age_approx"].dtype == float
        assert set(split.groups["age"]) <= {"young", "middle", "old", None}
    train_ids = set(synth_data.splits["train"].image_ids)
    assert not train_ids & set(synth_data.splits["test"].image_ids)
    assert set(synth_data.summary["cache"]) >= {"hit", "path", "decoded"}


def test_prepare_labels_and_pixels_line_up(synth_dir, tmp_path):
    data = prepare_data(synth_dir, image_size=32, cache_dir=tmp_path / "c", progress=False)
    by_image = {r.image: r for r in load_records(synth_dir).records}
    test = data.splits["test"]
    from flnas.data.cache import decode_image

    for k in (0, len(test) - 1):
        record = by_image[test.image_ids[k]]
        assert data.classes[int(test.labels[k])] == record.label and test.groups["sex"][k] == record.sex
        assert torch.equal(test.images[k], torch.from_numpy(decode_image(record.path, 32)).permute(2, 0, 1))


def test_prepare_subset_summary(synth_dir, tmp_path):
    data = prepare_data(synth_dir, subset=90, seed=2, image_size=16, cache_dir=tmp_path / "c", progress=False)
    summary = data.summary
    assert summary["records"] == 90 == summary["subset"]["achieved"] == sum(summary["splits"].values())
    assert summary["group_counts"] == summary["subset"]["group_counts"]
    assert summary["dataset"]["records"] == 240 and summary["missing"] == {"sex": 0, "age": 0}
    assert sum(summary["class_counts"].values()) == 90


def test_default_synthetic_dir_is_made_once(monkeypatch, tmp_path):
    import flnas.data.synthetic as synthetic

    monkeypatch.setitem(synthetic.DEFAULT_SYNTHETIC, "n", 20)
    monkeypatch.setitem(synthetic.DEFAULT_SYNTHETIC, "image_size", 16)
    monkeypatch.setenv("FLNAS_CACHE_DIR", str(tmp_path))
    first = default_synthetic_dir()
    stamp = (first / GROUND_TRUTH).stat().st_mtime_ns
    assert first.parent == tmp_path and (first / MARKER).is_file()
    assert default_synthetic_dir() == first and (first / GROUND_TRUTH).stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary folders left behind
