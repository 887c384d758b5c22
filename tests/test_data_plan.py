"""Records cache (flnas.data.plan): warm prepare_data equals cold, and stale/corrupt entries are rebuilt."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from flnas.data import prepare_data
from flnas.data.isic import GROUND_TRUTH, IMAGE_DIR
from flnas.errors import DataError


@pytest.fixture()
def data_dir(synth_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(synth_dir, tmp_path / "data"))


def _load(root: Path, cache: Path, **kw):
    return prepare_data(root, image_size=16, cache_dir=cache, progress=False, **kw)


def _entry(cache: Path) -> Path:
    (entry,) = cache.glob("records-*.json")
    return entry


def _same(a, b) -> None:
    strip = {k: v for k, v in a.summary.items() if k != "cache"}
    assert strip == {k: v for k, v in b.summary.items() if k != "cache"}
    for name in ("train", "val", "test"):
        x, y = a.splits[name], b.splits[name]
        assert torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels)
        assert x.image_ids == y.image_ids and list(x.groups) == list(y.groups)
        assert all(list(x.groups[a]) == list(y.groups[a]) for a in x.groups)
        np.testing.assert_array_equal(x.sensitive["age_approx"], y.sensitive["age_approx"])


@pytest.mark.parametrize("subset", [None, 100])
def test_warm_load_uses_the_records_cache_and_matches_cold(data_dir, tmp_path, subset):
    cache = tmp_path / "cache"
    cold = _load(data_dir, cache, subset=subset, seed=3)
    warm = _load(data_dir, cache, subset=subset, seed=3)
    assert cold.summary["cache"]["records"] == "built" and warm.summary["cache"]["records"] == "hit"
    _same(cold, warm)
    other_seed = _load(data_dir, cache, subset=subset, seed=4)  # its own entry, not a hit on seed 3
    assert other_seed.summary["cache"]["records"] == "built"


def test_changed_csv_rebuilds_the_records(data_dir, tmp_path):
    cache = tmp_path / "cache"
    _load(data_dir, cache)
    gt = data_dir / GROUND_TRUTH
    lines = gt.read_text().splitlines(keepends=True)
    gt.write_text("".join(lines[:-1]))  # drop the last record
    warm = _load(data_dir, cache)
    assert warm.summary["cache"]["records"] == "rebuilt (stale)"
    assert warm.summary["dataset"]["records"] == len(lines) - 2
    assert _load(data_dir, cache).summary["cache"]["records"] == "hit"


def test_bad_csv_after_caching_raises_the_same_error(data_dir, tmp_path):
    cache = tmp_path / "cache"
    _load(data_dir, cache)
    gt = data_dir / GROUND_TRUTH
    lines = gt.read_text().splitlines(keepends=True)
    gt.write_text("".join(lines) + lines[3])  # a duplicate image
    with pytest.raises(DataError, match=rf"{GROUND_TRUTH} row {len(lines) + 1}: image .* is listed twice"):
        _load(data_dir, cache)


def test_removed_image_file_is_noticed(data_dir, tmp_path):
    cache = tmp_path / "cache"
    first = _load(data_dir, cache)
    image = first.splits["train"].image_ids[0]
    (victim,) = (data_dir / IMAGE_DIR).glob(f"{image}.*")
    victim.unlink()
    with pytest.raises(DataError, match=rf"image {image} is listed but {IMAGE_DIR}/{image}.jpg does not exist"):
        _load(data_dir, cache)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_records_entry_is_rebuilt(data_dir, tmp_path, damage):
    cache = tmp_path / "cache"
    cold = _load(data_dir, cache)
    entry = _entry(cache)
    data = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # payload changed, header (key, hash) intact
        cut = data.index(b"\n") + 200
        entry.write_bytes(data[:cut] + (b"1" if data[cut:cut + 1] != b"1" else b"2") + data[cut + 1:])
    else:
        entry.write_bytes(b"\x00not json")
    rebuilt = _load(data_dir, cache)
    assert rebuilt.summary["cache"]["records"] == "rebuilt (corrupt)"
    _same(cold, rebuilt)
    assert _load(data_dir, cache).summary["cache"]["records"] == "hit"


def test_same_size_csv_edit_with_new_mtime_is_stale(data_dir, tmp_path):
    cache = tmp_path / "cache"
    _load(data_dir, cache)
    gt = data_dir / GROUND_TRUTH
    st = gt.stat()
    os.utime(gt, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert _load(data_dir, cache).summary["cache"]["records"] == "rebuilt (stale)"
