"""The decoded-image cache: decode once, hit afterwards, rebuild when stale or corrupt, configurable place."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flnas.data.cache import CacheResult, decode_image, default_cache_dir, load_images
from flnas.errors import DataError


@pytest.fixture()
def images(tmp_path) -> list[Path]:
    """Five JPEGs of different sizes and shapes (one grey-scale, one PNG with alpha)."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(40, 30), (64, 64), (30, 50), (100, 75), (20, 20)]):
        path = tmp_path / "img" / f"im{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    Image.fromarray(np.full((30, 30), 200, np.uint8), mode="L").save(paths[1])
    png = tmp_path / "img" / "alpha.png"
    Image.fromarray(np.full((12, 18, 4), 90, np.uint8), mode="RGBA").save(png)
    return [*paths, png]


def test_miss_then_hit_without_decoding(images, tmp_path, monkeypatch):
    first = load_images(images, 16, cache_dir=tmp_path / "c", progress=False)
    assert not first.hit and first.decoded == len(images) and first.status == "built"
    assert first.images.shape == (len(images), 16, 16, 3) and first.images.dtype == np.uint8
    assert np.array_equal(first.images[0], decode_image(images[0], 16))
    assert (first.images[1] == first.images[1][0, 0, 0]).all()  # grey-scale became RGB

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cache hit must not decode")

    monkeypatch.setattr("flnas.data.cache.decode_image", no_decoding)
    second = load_images(images, 16, cache_dir=tmp_path / "c", progress=False)
    assert second.hit and second.decoded == 0 and second.status == "hit" and second.path == first.path
    assert np.array_equal(second.images, first.images)
    assert second.info()["hit"] is True and second.info()["decoded"] == 0


def test_other_size_or_file_list_is_another_entry(images, tmp_path):
    load_images(images, 16, cache_dir=tmp_path / "c", progress=False)
    assert not load_images(images, 20, cache_dir=tmp_path / "c", progress=False).hit
    assert not load_images(images[:3], 16, cache_dir=tmp_path / "c", progress=False).hit
    assert load_images(images, 16, cache_dir=tmp_path / "c", progress=False).hit
    assert len(list((tmp_path / "c").glob("*.npy"))) == 3


def test_changed_file_makes_the_cache_stale(images, tmp_path):
    first = load_images(images, 16, cache_dir=tmp_path / "c", progress=False)
    Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(images[0])
    stat = images[0].stat()
    os.utime(images[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    again = load_images(images, 16, cache_dir=tmp_path / "c", progress=False)
    assert not again.hit and again.status == "rebuilt (stale)" and again.path == first.path
    assert again.images[0].max() < 10 and np.array_equal(again.images[2], first.images[2])
    assert load_images(images, 16, cache_dir=tmp_path / "c", progress=False).hit


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_corrupt_cache_is_detected_and_rebuilt(damage, images, tmp_path):
    first = load_images(images, 16, cache_dir=tmp_path / "c", progress=False)
    npy = first.path
    if damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:300])
    elif damage == "flip":
        data = bytearray(npy.read_bytes())
        data[-7] ^= 0xFF  # one pixel changes: only the CRC notices
        npy.write_bytes(bytes(data))
    else:
        npy.with_suffix(".json").write_text("{not json")
    again = load_images(images, 16, cache_dir=tmp_path / "c", progress=False)
    assert not again.hit and again.status == "rebuilt (corrupt)" and again.decoded == len(images)
    assert np.array_equal(again.images, first.images)
    assert load_images(images, 16, cache_dir=tmp_path / "c", progress=False).hit


def test_default_location_follows_cache_root(images, tmp_path, monkeypatch):
    monkeypatch.setenv("FLNAS_CACHE_DIR", str(tmp_path / "root"))
    assert default_cache_dir() == tmp_path / "root" / "images"
    result = load_images(images, 16, progress=False)
    assert result.path.parent == tmp_path / "root" / "images"


def test_unreadable_images_are_reported_and_remembered(images, tmp_path):
    images[3].write_bytes(b"GIF89a garbage")
    first = load_images(images, 16, cache_dir=tmp_path / "c", progress=False)
    assert set(first.failed) == {3} and first.decoded == len(images) - 1
    assert (first.images[3] == 0).all()
    meta = json.loads(first.path.with_suffix(".json").read_text())
    assert list(meta["failed"]) == ["3"]
    again = load_images(images, 16, cache_dir=tmp_path / "c", progress=False)
    assert again.hit and set(again.failed) == {3}


def test_progress_bar_is_drawn_on_stderr(images, tmp_path, capfd):
    load_images(images, 16, cache_dir=tmp_path / "c", progress=True)
    captured = capfd.readouterr()
    assert "decoding images" in captured.err and captured.out == ""


def test_unwritable_cache_dir_is_a_data_error(images, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="cannot write the decoded-image cache"):
        load_images(images, 16, cache_dir=blocker / "sub", progress=False)


def test_info_keeps_the_measured_seconds_unrounded():
    """A warm read can take well under a millisecond; rounding it to 0.000 broke every ratio over it."""
    result = CacheResult(images=np.zeros((1, 8, 8, 3), dtype=np.uint8), seconds=0.00042)
    assert result.info()["seconds"] == 0.00042
