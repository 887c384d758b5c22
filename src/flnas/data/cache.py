"""Decoded-image cache: every image is decoded and resized once into an on-disk uint8 array.

A cache entry is a pair ``<name>.npy`` (uint8, N x S x S x 3, in the order of the file list) and
``<name>.json`` (what it was built from). ``name`` hashes the file list and image size, so one dataset
at one size has one entry; the JSON holds a key that also covers every file's size and modification time
and a CRC of the array. A later run with the same files and size loads the array and decodes nothing.
When a file changed (stale) or the entry cannot be read or fails its CRC (corrupt), the entry is rebuilt
in place. Images are resized to S x S without cropping (the whole lesion stays in view); JPEGs are
decoded at a reduced scale first (``Image.draft``), in a thread pool, with a progress bar.

Images that cannot be decoded are not an error here: their indices and reasons come back in
``CacheResult.failed`` (and are cached too), and :func:`flnas.data.prepare_data` decides.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from flnas.errors import DataError
from flnas.paths import cache_root

CACHE_VERSION = 1


@dataclass
class CacheResult:
    """The decoded images and how they were obtained."""

    images: np.ndarray  # uint8 (N, S, S, 3); zeros where decoding failed
    failed: dict[int, str] = field(default_factory=dict)  # index -> why the image could not be decoded
    hit: bool = False
    path: Path | None = None
    decoded: int = 0  # images decoded by this call (0 on a hit)
    status: str = "built"  # "hit", "built", "rebuilt (stale)" or "rebuilt (corrupt)"
    seconds: float = 0.0  # full precision: a warm read can take well under a millisecond

    def info(self) -> dict:
        """The ``cache`` object of the data summary (``seconds`` unrounded; round it only to display it)."""
        return {"hit": self.hit, "path": str(self.path), "decoded": self.decoded, "status": self.status,
                "seconds": self.seconds}


def default_cache_dir() -> Path:
    """``cache_root()/images`` (``$FLNAS_CACHE_DIR/images`` when that is set)."""
    return cache_root() / "images"


def _absolute(paths: Sequence[str | Path]) -> list[str]:
    """Absolute path strings (one getcwd, not one per file)."""
    cwd = os.getcwd()
    return [os.path.normpath(os.path.join(cwd, p)) for p in paths]


def _entry_name(absolute: Sequence[str], image_size: int) -> str:
    digest = hashlib.sha256(f"flnas-images-v{CACHE_VERSION}|{image_size}".encode())
    digest.update("".join(f"\n{p}" for p in absolute).encode())
    return f"{digest.hexdigest()[:24]}-{image_size}px-{len(absolute)}"


def cache_key(paths: Sequence[str | Path], image_size: int, *, absolute: Sequence[str] | None = None) -> str:
    """Hash of the file list, the image size and every file's size and modification time."""
    digest = hashlib.sha256(f"flnas-images-v{CACHE_VERSION}|{image_size}".encode())
    parts = []
    for p in absolute if absolute is not None else _absolute(paths):
        try:
            st = os.stat(p)
            parts.append(f"\n{p}|{st.st_size}|{st.st_mtime_ns}")
        except OSError:
            parts.append(f"\n{p}|missing")
    digest.update("".join(parts).encode())
    return digest.hexdigest()


def decode_image(path: Path, image_size: int) -> np.ndarray:
    """One image as uint8 (S, S, 3) RGB, resized without cropping."""
    with Image.open(path) as im:
        im.draft("RGB", (image_size, image_size))  # JPEG: decode at the smallest scale >= the target
        rgb = im.convert("RGB")
    if rgb.size != (image_size, image_size):
        rgb = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))


def _read_entry(
    npy: Path, meta_path: Path, key: str, shape: tuple[int, ...]
) -> tuple[str, CacheResult | None]:
    """("hit", result) or (why it cannot be used, None)."""
    if not npy.exists() and not meta_path.exists():
        return "built", None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key or meta.get("version") != CACHE_VERSION:
            return "rebuilt (stale)", None
        images = np.load(npy, allow_pickle=False)
        if images.dtype != np.uint8 or tuple(images.shape) != shape or _crc(images) != meta.get("crc32"):
            return "rebuilt (corrupt)", None
        failed = {int(i): str(msg) for i, msg in meta.get("failed", {}).items()}
    except (OSError, ValueError, EOFError, TypeError, AttributeError):
        return "rebuilt (corrupt)", None
    return "hit", CacheResult(images=images, failed=failed, hit=True, path=npy, decoded=0, status="hit")


def _decode_all(paths: Sequence[str | Path], image_size: int, progress: bool, workers: int | None
                ) -> tuple[np.ndarray, dict[int, str]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    images = np.zeros((len(paths), image_size, image_size, 3), dtype=np.uint8)
    failed: dict[int, str] = {}

    def work(i: int) -> None:
        try:
            images[i] = decode_image(paths[i], image_size)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means "unreadable image"
            failed[i] = f"{type(exc).__name__}: {exc}".strip()

    columns = (TextColumn("decoding images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not progress, transient=False) as bar, \
            ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 1)) as pool:
        task = bar.add_task("decode", total=len(paths))
        for future in as_completed([pool.submit(work, i) for i in range(len(paths))]):
            future.result()
            bar.advance(task)
    return images, failed


def _write_entry(npy: Path, meta_path: Path, images: np.ndarray, meta: dict) -> None:
    try:
        npy.parent.mkdir(parents=True, exist_ok=True)
        tmp = npy.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, images, allow_pickle=False)
        os.replace(tmp, npy)
        tmp_meta = meta_path.with_suffix(f".{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps(meta, indent=1))
        os.replace(tmp_meta, meta_path)
    except OSError as exc:
        raise DataError(f"{npy.parent}: cannot write the decoded-image cache ({exc.strerror or exc}); "
                        "choose another place with --cache-dir") from None


def load_images(
    paths: Sequence[str | Path],
    image_size: int,
    *,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> CacheResult:
    """The images of ``paths`` decoded at ``image_size``, from the cache when it is current."""
    if image_size < 8 or image_size > 1024:
        raise DataError(f"--image-size must be between 8 and 1024 pixels, not {image_size}")
    start = time.perf_counter()
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    absolute = _absolute(paths)  # once: the entry name and the key both need it
    name = _entry_name(absolute, image_size)
    npy, meta_path = directory / f"{name}.npy", directory / f"{name}.json"
    key = cache_key(paths, image_size, absolute=absolute)
    status, cached = _read_entry(npy, meta_path, key, (len(paths), image_size, image_size, 3))
    if cached is not None:
        cached.seconds = time.perf_counter() - start
        return cached
    images, failed = _decode_all(paths, image_size, progress, workers)
    meta = {"version": CACHE_VERSION, "key": key, "image_size": image_size, "count": len(paths),
            "crc32": _crc(images), "failed": {str(i): msg for i, msg in sorted(failed.items())},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write_entry(npy, meta_path, images, meta)
    return CacheResult(images=images, failed=failed, hit=False, path=npy, decoded=len(paths) - len(failed),
                       status=status, seconds=time.perf_counter() - start)
