"""A synthetic dataset in the official ISIC 2019 layout (or read through a card), for tests and the default.

Each of the 8 classes gets procedural lesion-like images with its own colour, shape and texture (MEL dark,
irregular and variegated; NV round and even brown; BCC pink with red vessels; AK red and scaly; BKL tan with
a cobblestone pattern; DF small with a pale centre; VASC red-purple lobules; SCC pink with a keratin core), so
that a small CNN can learn them at 32 px. Demographics (sex, age_approx) are drawn per lesion, a few are left
empty, and some lesions have two images. ``bias`` makes some groups harder: images of old and of female
patients get lower lesion contrast and more noise, so group accuracies differ after training. The folder
holds ``SYNTHETIC.txt`` saying so; :func:`flnas.data.prepare_data` then names the dataset "synthetic (flnas)".
With ``card=True`` the same images go into a layout only a dataset card describes (:data:`CARD`), with skin
tone (light, medium, dark thirds of the background colour) as a third attribute.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from flnas.data.isic import GROUND_TRUTH, IMAGE_DIR, LABEL_COLUMNS, METADATA
from flnas.errors import DataError
from flnas.paths import cache_root

MARKER = "SYNTHETIC.txt"
CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC")
#: share of each class (NV most common, as in ISIC 2019, but every class well represented)
CLASS_WEIGHTS = {"MEL": 0.15, "NV": 0.30, "BCC": 0.11, "AK": 0.08, "BKL": 0.12, "DF": 0.07, "VASC": 0.08,
                 "SCC": 0.09}
#: lesion colour (RGB), radius range, border irregularity, edge softness
LOOKS = {
    "MEL": ((55, 35, 30), (0.55, 0.75), 0.28, 0.04),
    "NV": ((140, 90, 60), (0.35, 0.50), 0.03, 0.05),
    "BCC": ((225, 150, 160), (0.40, 0.55), 0.10, 0.08),
    "AK": ((185, 95, 80), (0.45, 0.65), 0.12, 0.15),
    "BKL": ((175, 135, 85), (0.40, 0.60), 0.06, 0.02),
    "DF": ((115, 75, 55), (0.22, 0.32), 0.04, 0.05),
    "VASC": ((140, 25, 70), (0.40, 0.55), 0.05, 0.04),
    "SCC": ((205, 105, 95), (0.45, 0.60), 0.18, 0.06),
}
SITES = ("anterior torso", "posterior torso", "upper extremity", "lower extremity", "head/neck",
         "lateral torso", "palms/soles", "")
AGES = np.arange(5, 90, 5)
# age weights: about a quarter young (< 30), half middle (30-65), a quarter old (> 65)
AGE_WEIGHTS = np.array([0.04, 0.05, 0.05, 0.05, 0.06, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07,
                        0.06, 0.06, 0.06, 0.05])
DEFAULT_SYNTHETIC = {"n": 600, "seed": 0, "image_size": 64, "bias": 0.5}
CARD_FILE = "flnas.yaml"
#: the card `write_synthetic(card=True)` writes: other column names, a file column with and without extension,
#: a third three-valued attribute and an intersection
CARD = {
    "name": "synthetic skin (flnas)",
    "images": "images",
    "manifest": "labels.csv",
    "image_column": "file",
    "label_column": "diagnosis",
    "classes": list(CLASSES),
    "sensitive": {
        "sex": {"column": "gender", "groups": {"male": ["M"], "female": ["F"]}},
        "age": {"column": "age_years", "bins": [30, 65], "labels": ["young", "middle", "old"]},
        "skin_tone": {"column": "skin_tone", "groups": ["light", "medium", "dark"]},
    },
    "intersections": [["sex", "skin_tone"]],
    "group_column": "patient",
}


def _class_labels(n: int, rng: np.random.Generator) -> list[str]:
    """Labels in the CLASS_WEIGHTS shares (largest remainder), every class at least once when n >= 8."""
    raw = {c: n * w for c, w in CLASS_WEIGHTS.items()}
    counts = {c: int(v) for c, v in raw.items()}
    if n >= len(CLASSES):
        counts = {c: max(1, v) for c, v in counts.items()}
    for c in sorted(raw, key=lambda c: counts[c] - raw[c]):
        if sum(counts.values()) >= n:
            break
        counts[c] += 1
    while sum(counts.values()) > n:
        counts[max(counts, key=counts.get)] -= 1
    labels = [c for c in CLASSES for _ in range(counts[c])]
    return [labels[i] for i in rng.permutation(len(labels))]


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    lin = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    y, x = np.meshgrid(lin, lin, indexing="ij")
    return y, x


def _lesion_image(label: str, size: int, hard: float, params: dict, rng: np.random.Generator) -> np.ndarray:
    """One RGB uint8 image of a lesion of class ``label``; ``hard`` in [0, 1] lowers contrast, adds noise."""
    colour, _, irregular, soft = LOOKS[label]
    y, x = _grid(size)
    cx, cy, angle = params["cx"], params["cy"], params["angle"] + rng.normal(0, 0.1)
    dx, dy = x - cx, y - cy
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    theta = np.arctan2(v, u)
    dist = np.sqrt((u / params["ax"]) ** 2 + (v / params["ay"]) ** 2)
    edge = 1.0 + irregular * sum(a * np.sin(k * theta + p) for k, a, p in params["harmonics"])
    mask = 1.0 / (1.0 + np.exp(-(params["radius"] * edge - dist * params["radius"]) / soft))

    skin = np.array(params["skin"], dtype=np.float32)
    background = skin + 12.0 * (x * params["shade"][0] + y * params["shade"][1])[..., None]
    lesion = np.broadcast_to(np.array(colour, dtype=np.float32), (size, size, 3)).copy()
    r = dist  # 0 at the centre, 1 at the (mean) border
    if label == "MEL":  # variegated: blue-grey and black blotches
        blot = np.sin(7 * u + params["phase"]) * np.sin(6 * v - params["phase"])
        lesion += (blot > 0.3)[..., None] * np.array([35, 45, 80], np.float32)
        lesion -= (blot < -0.5)[..., None] * 30
    elif label == "NV":  # even, slightly darker centre
        lesion -= (25 * (1 - np.clip(r, 0, 1)))[..., None]
    elif label == "BCC":  # thin red vessels
        vessels = np.abs(np.sin(9 * u + 3 * np.sin(4 * v + params["phase"]))) < 0.18
        lesion[vessels] = (190, 40, 50)
    elif label == "AK":  # rough scaly surface
        lesion += 28 * rng.standard_normal((size, size, 1), dtype=np.float32)
    elif label == "BKL":  # cobblestone / stuck-on pattern
        cells = np.sin(14 * u + params["phase"]) * np.sin(14 * v)
        lesion -= (cells > 0.2)[..., None] * np.array([45, 40, 25], np.float32)
    elif label == "DF":  # pale central patch inside a brown ring
        lesion[r < 0.5] = (235, 220, 205)
    elif label == "VASC":  # red-purple lobules
        lobes = np.zeros((size, size), np.float32)
        for lx, ly in params["lobes"]:
            lobes = np.maximum(lobes, np.exp(-(((x - cx - lx) ** 2 + (y - cy - ly) ** 2) / 0.02)))
        lesion = lesion * (0.6 + 0.6 * lobes[..., None])
    elif label == "SCC":  # yellow-white keratin core
        lesion[r < 0.4] = (230, 215, 160)

    contrast = 1.0 - 0.65 * hard
    image = background + (contrast * mask)[..., None] * (lesion - background)
    image += (4.0 + 30.0 * hard) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _lesion_params(label: str, rng: np.random.Generator) -> dict:
    tone = rng.uniform(0, 1)
    skin = (235 - 60 * tone, 195 - 70 * tone, 170 - 70 * tone)
    return {
        "tone": tone,
        "cx": rng.uniform(-0.15, 0.15), "cy": rng.uniform(-0.15, 0.15), "angle": rng.uniform(0, math.pi),
        "radius": rng.uniform(*LOOKS[label][1]), "ax": rng.uniform(0.85, 1.15), "ay": rng.uniform(0.75, 1.1),
        "harmonics": [(k, rng.uniform(0.3, 1.0), rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5)],
        "skin": skin, "shade": rng.uniform(-1, 1, 2), "phase": rng.uniform(0, 2 * math.pi),
        "lobes": [tuple(rng.uniform(-0.25, 0.25, 2)) for _ in range(int(rng.integers(3, 6)))],
    }


def _hardness(sex: str, age: float, bias: float, dark: bool = False) -> float:
    """How much harder this record is made: old counts 0.6, female 0.4 (dark skin 0.4), scaled by ``bias``."""
    old = 0.6 if (not math.isnan(age) and age > 65) else 0.0
    female = 0.4 if sex == "female" else 0.0
    return bias * (old + female + (0.4 if dark else 0.0))


def skin_tone(tone: float) -> str:
    """The card layout's third attribute: light, medium or dark thirds of the background skin tone."""
    return "light" if tone < 1 / 3 else "medium" if tone < 2 / 3 else "dark"


def write_synthetic(out: str | Path, *, n: int = 600, seed: int = 0, image_size: int = 64,
                    bias: float = 0.5, card: bool = False) -> Path:
    """Write ``n`` synthetic records into ``out``; return ``out``.

    The official ISIC 2019 layout by default; with ``card`` a dataset read through its card ``flnas.yaml``
    (:data:`CARD`: ``images/``, ``labels.csv`` with other column names, a third attribute ``skin_tone`` whose
    dark group ``bias`` also makes harder, and the intersection ``sex/skin_tone``).
    """
    out = Path(out).expanduser()
    if n < 1:
        raise DataError(f"--n must be at least 1, not {n}")
    if not 8 <= image_size <= 1024:
        raise DataError(f"--image-size must be between 8 and 1024 pixels, not {image_size}")
    if not 0.0 <= bias <= 1.0:
        raise DataError(f"--bias must be between 0 and 1, not {bias}")
    if ((out / GROUND_TRUTH).exists() or (out / CARD_FILE).exists()) and not (out / MARKER).exists():
        raise DataError(f"{out}: holds a dataset that is not synthetic; refusing to overwrite it")
    try:
        (_write_card if card else _write)(out, n=n, seed=seed, image_size=image_size, bias=bias)
    except OSError as exc:  # read-only or full file system, a file where a folder must go, no permission
        raise DataError(f"{out}: cannot write the synthetic dataset there ({exc.strerror or exc})") from None
    return out


def _lesions(rng: np.random.Generator, n: int, image_size: int, bias: float, card: bool):
    """(index, lesion, pixels) of each record, drawing from ``rng`` in a fixed order."""
    labels = _class_labels(n, rng)
    previous: dict | None = None
    for i, label in enumerate(labels):
        if previous is not None and not previous["paired"] and rng.random() < 0.12:
            lesion = previous  # a second image of the same lesion
            lesion["paired"] = True
        else:
            age = float(rng.choice(AGES, p=AGE_WEIGHTS / AGE_WEIGHTS.sum()))
            lesion = {
                "label": label, "params": _lesion_params(label, rng), "paired": False,
                "lesion_id": f"SYN_{i:07d}",
                "sex": "" if rng.random() < 0.03 else str(rng.choice(["male", "female"])),
                "age": math.nan if rng.random() < 0.03 else age,
                "site": str(rng.choice(SITES)),
            }
        previous = lesion
        dark = card and skin_tone(lesion["params"]["tone"]) == "dark"
        pixels = _lesion_image(lesion["label"], image_size, _hardness(lesion["sex"], lesion["age"], bias, dark),
                               lesion["params"], rng)
        yield i, lesion, pixels


def _marker(out: Path, n: int, seed: int, image_size: int, bias: float) -> None:
    (out / MARKER).write_text(
        "This dataset is SYNTHETIC: procedural lesion-like images written by flnas (write_synthetic), "
        f"not real dermoscopy.\nn={n} seed={seed} image_size={image_size} bias={bias}\n")


def _write(out: Path, *, n: int, seed: int, image_size: int, bias: float) -> None:
    """The files of :func:`write_synthetic` in the ISIC layout (checked arguments); OSErrors propagate."""
    images_dir = out / IMAGE_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)  # written last: its presence means the set is complete
    rng = np.random.default_rng(seed)
    truth_rows, meta_rows = [], []
    for i, lesion, pixels in _lesions(rng, n, image_size, bias, card=False):
        name = f"ISIC_{9000000 + i:07d}" + ("_downsampled" if i % 25 == 24 else "")
        Image.fromarray(pixels).save(images_dir / f"{name}.jpg", quality=92)
        truth_rows.append([name] + ["1.0" if c == lesion["label"] else "0.0" for c in LABEL_COLUMNS])
        age_text = "" if math.isnan(lesion["age"]) else f"{lesion['age']:.1f}"
        meta_rows.append([name, age_text, lesion["site"], lesion["lesion_id"], lesion["sex"]])

    with open(out / GROUND_TRUTH, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", *LABEL_COLUMNS])
        writer.writerows(truth_rows)
    with open(out / METADATA, "w", newline="") as fh:  # rows in another order, as real data may have
        writer = csv.writer(fh)
        writer.writerow(["image", "age_approx", "anatom_site_general", "lesion_id", "sex"])
        writer.writerows(meta_rows[j] for j in rng.permutation(len(meta_rows)))
    _marker(out, n, seed, image_size, bias)


def _write_card(out: Path, *, n: int, seed: int, image_size: int, bias: float) -> None:
    """The files of :func:`write_synthetic` with ``card`` (checked arguments); OSErrors propagate."""
    from flnas.data.card import card_yaml, parse_card

    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i, lesion, pixels in _lesions(rng, n, image_size, bias, card=True):
        name = f"syn{i:06d}.jpg"
        Image.fromarray(pixels).save(images_dir / name, quality=92)
        rows.append([name if i % 2 else name[:-4], lesion["label"], {"male": "M", "female": "F"}.get(lesion["sex"], ""),
                     "" if math.isnan(lesion["age"]) else f"{lesion['age']:.0f}",
                     skin_tone(lesion["params"]["tone"]), f"patient-{lesion['lesion_id'][4:]}"])
    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "diagnosis", "gender", "age_years", "skin_tone", "patient"])
        writer.writerows(rows)
    header = (f"SYNTHETIC dataset written by flnas (flnas data synth --card): n={n} seed={seed} "
              f"image_size={image_size} bias={bias}")
    (out / CARD_FILE).write_text(card_yaml(parse_card(CARD, CARD_FILE), header))
    _marker(out, n, seed, image_size, bias)


def default_synthetic_dir() -> Path:
    """The embedded default dataset (synthetic), written once under ``cache_root()`` and reused."""
    spec = DEFAULT_SYNTHETIC
    root = cache_root() / f"synthetic-v1-n{spec['n']}-s{spec['seed']}-{spec['image_size']}px"
    if (root / MARKER).is_file():
        return root
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_synthetic(tmp, **spec)
    try:
        if root.exists() and not (root / MARKER).is_file():
            shutil.rmtree(root, ignore_errors=True)  # an interrupted earlier attempt
        os.replace(tmp, root)
    except OSError:
        if not (root / MARKER).is_file():  # someone else finished first, unless something really failed
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
