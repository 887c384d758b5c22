"""From a folder in the ISIC 2019 layout to a :class:`PreparedData` ready for the evaluator.

Steps: read and check the CSVs and the image folder (:mod:`flnas.data.isic`), take the balanced subset
when asked (:mod:`flnas.data.subset`), decode the chosen images through the cache
(:mod:`flnas.data.cache`), drop or report unreadable images, split 70/20/10 by class and lesion, and
write the summary that ``flnas data summary --json`` prints.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from flnas.data.cache import default_cache_dir, load_images
from flnas.data.dataset import PreparedData, Split
from flnas.data.groups import ATTRIBUTES, age_group
from flnas.data.isic import GROUND_TRUTH, IMAGE_DIR, METADATA, Record
from flnas.data.plan import load_plan, record_counts
from flnas.data.subset import SPLITS, group_counts, split_records
from flnas.errors import DataError

REAL_NAME = "ISIC 2019"
SYNTHETIC_NAME = "synthetic (flnas)"


def _columns(records: Sequence[Record], classes: list[str]) -> dict[str, np.ndarray]:
    """Per-record arrays for the splits (label index, sex, age group, age, image id)."""
    index = {c: i for i, c in enumerate(classes)}
    return {"label": np.array([index[r.label] for r in records], dtype=np.int64),
            "sex": np.array([r.sex for r in records], dtype=object),
            "age_group": np.array([r.age_group for r in records], dtype=object),
            "age_approx": np.array([r.age_approx for r in records], dtype=float),
            "image": np.array([r.image for r in records], dtype=object)}


def _plan_columns(columns: dict[str, list], classes: list[str]) -> dict[str, np.ndarray]:
    """The same arrays straight from a cached plan's columns (no Record objects)."""
    index = {c: i for i, c in enumerate(classes)}
    values = [math.nan if a is None else a for a in columns["age_approx"]]
    groups = {a: age_group(a) for a in set(values) if a is not None}
    return {"label": np.array([index[c] for c in columns["label"]], dtype=np.int64),
            "sex": np.array(columns["sex"], dtype=object),
            "age_group": np.array([None if a is None else groups[a] for a in columns["age_approx"]], dtype=object),
            "age_approx": np.array(values, dtype=float),
            "image": np.array(columns["image"], dtype=object)}


def _make_split(arrays: dict[str, np.ndarray], idx: list[int], images: np.ndarray) -> Split:
    """One split of the ISIC layout: its groups are sex and age (:data:`flnas.data.groups.ATTRIBUTES`)."""
    take = np.asarray(idx, dtype=np.int64)
    return Split(
        images=torch.from_numpy(np.ascontiguousarray(images[take].transpose(0, 3, 1, 2))),
        labels=torch.from_numpy(arrays["label"][take]),
        groups={"sex": arrays["sex"][take], "age": arrays["age_group"][take]},
        image_ids=arrays["image"][take].tolist(),
        sensitive={"sex": arrays["sex"][take], "age_approx": arrays["age_approx"][take]},
    )


def prepare_data(
    root: str | Path,
    *,
    subset: int | None = None,
    seed: int = 0,
    image_size: int = 64,
    cache_dir: str | Path | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> PreparedData:
    """Load ``root`` (official ISIC 2019 layout), optionally a balanced ``subset``, decoded and split.

    Raises :class:`DataError` (one sentence naming the file and row) for any bad input unless
    ``skip_bad``, in which case bad records are left out and counted in ``summary["skipped"]``.
    The checked records, subset and split come from the records cache (:mod:`flnas.data.plan`) when
    it is current, the images from the decoded-image cache; both live in ``cache_dir``.
    """
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    plan = load_plan(root, directory, subset=subset, seed=seed, skip_bad=skip_bad)
    classes = plan.classes
    skipped = Counter(plan.skipped)
    subset_report = plan.subset_report

    cache = load_images(plan.columns["path"], image_size, cache_dir=directory, progress=progress)
    images = cache.images
    if cache.failed:  # rare: fall back to Record objects, drop the unreadable images and split again
        records = plan.records()
        first = min(cache.failed)
        bad = records[first]
        if not skip_bad:
            raise DataError(f"{IMAGE_DIR}/{bad.path.name} ({GROUND_TRUTH} row {bad.row}): unreadable image "
                            f"({cache.failed[first]})")
        keep = [i for i in range(len(records)) if i not in cache.failed]
        skipped["unreadable_image"] += len(cache.failed)
        records, images = [records[i] for i in keep], images[keep]
        if subset_report is not None:
            subset_report.update(achieved=len(records), group_counts=group_counts(records))
            subset_report["note"] += f"; {len(cache.failed)} unreadable images were dropped after choosing"
        if not records:
            raise DataError(f"{plan.root}: no readable images left after skipping bad records")
        split_idx, counts, arrays = split_records(records, seed=seed), record_counts(records, classes), \
            _columns(records, classes)
    else:
        split_idx, counts, arrays = plan.split, plan.counts, _plan_columns(plan.columns, classes)

    splits = {name: _make_split(arrays, split_idx[name], images) for name in SPLITS}
    name = SYNTHETIC_NAME if plan.synthetic else REAL_NAME
    summary = {
        "name": name,
        "synthetic": plan.synthetic,
        "root": plan.root,
        "image_size": image_size,
        "seed": seed,
        "records": len(arrays["label"]),
        "classes": classes,
        **counts,
        "splits": {s: len(split_idx[s]) for s in SPLITS},
        "split_class_counts": {s: dict(zip(classes, torch.bincount(splits[s].labels, minlength=len(classes))
                                           .tolist(), strict=True)) for s in SPLITS},
        "dataset": plan.dataset,
        "subset": subset_report,
        "skipped": {"total": sum(skipped.values()), "by_reason": dict(sorted(skipped.items()))},
        "cache": {**cache.info(), "records": plan.status},
    }
    summary["warnings"] = data_warnings(summary)
    return PreparedData(name=name, root=Path(plan.root), classes=classes, image_size=image_size,
                        splits=splits, synthetic=plan.synthetic, summary=summary, attributes=dict(ATTRIBUTES))


def data_warnings(summary: dict) -> list[str]:
    """Sentences on data that loads but cannot give meaningful results (``summary["warnings"]``).

    Commands print them; the training commands also refuse such data (:func:`flnas.data.check_trainable`).
    """
    warnings = []
    present = [c for c, n in summary["class_counts"].items() if n]
    if len(present) == 1:
        warnings.append(f"every record is of class {present[0]}: a classifier needs at least two classes, "
                        "and one trained on these records is trivially 100% accurate")
    records, missing = summary["records"], summary["missing"]
    if records and missing["sex"] == records and missing["age"] == records:
        warnings.append(f"no record has a known sex or age ({METADATA} has no usable row for these images): "
                        "the demographic groups are empty and every fairness metric is undefined")
    subset = summary.get("subset")
    if subset and subset["achieved"] < subset["requested"]:
        warnings.append(f"--subset {subset['requested']} asks for more records than the {subset['available']} "
                        f"available; all {subset['achieved']} are used")
    splits = summary["splits"]
    if splits["train"] < 2 or not splits["val"] or not splits["test"]:
        warnings.append(f"the split has {splits['train']} train, {splits['val']} validation and {splits['test']} "
                        "test records: too few to train (the training commands refuse it)")
    return warnings
