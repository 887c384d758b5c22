"""From a folder in the ISIC 2019 layout to a :class:`PreparedData` ready for the evaluator.

Steps: read and check the CSVs and the image folder (:mod:`flnas.data.isic`), take the balanced subset
when asked (:mod:`flnas.data.subset`), decode the chosen images through the cache
(:mod:`flnas.data.cache`), drop or report unreadable images, split 70/20/10 by class and lesion, and
write the summary that ``flnas data summary --json`` prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from flnas.data.cache import load_images
from flnas.data.dataset import PreparedData, Split
from flnas.data.isic import GROUND_TRUTH, IMAGE_DIR, Record, load_records
from flnas.data.subset import SPLITS, balanced_subset, group_counts, split_records
from flnas.errors import DataError

REAL_NAME = "ISIC 2019"
SYNTHETIC_NAME = "synthetic (flnas)"


def _counts(records: Sequence[Record], classes: list[str]) -> dict:
    """class_counts, group_counts and missing {sex, age} of some records."""
    labels = Counter(r.label for r in records)
    return {
        "class_counts": {c: labels.get(c, 0) for c in classes},
        "group_counts": group_counts(records),
        "missing": {"sex": sum(r.sex is None for r in records),
                    "age": sum(r.age_group is None for r in records)},
    }


def _make_split(records: Sequence[Record], images: np.ndarray, classes: list[str]) -> Split:
    index = {c: i for i, c in enumerate(classes)}
    return Split(
        images=torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
        labels=torch.tensor([index[r.label] for r in records], dtype=torch.int64),
        sex=np.array([r.sex for r in records], dtype=object),
        age_group=np.array([r.age_group for r in records], dtype=object),
        age_approx=np.array([r.age_approx for r in records], dtype=float),
        image_ids=[r.image for r in records],
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
    """
    loaded = load_records(root, skip_bad=skip_bad)
    classes = loaded.classes
    records = loaded.records
    skipped = Counter(loaded.skipped)
    subset_report = None
    if subset is not None:
        chosen = balanced_subset(records, subset, seed=seed)
        records, subset_report = chosen.records, chosen.report

    cache = load_images([r.path for r in records], image_size, cache_dir=cache_dir, progress=progress)
    images = cache.images
    if cache.failed:
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
            raise DataError(f"{loaded.root}: no readable images left after skipping bad records")

    split_idx = split_records(records, seed=seed)
    splits = {name: _make_split([records[i] for i in split_idx[name]], images[split_idx[name]], classes)
              for name in SPLITS}
    name = SYNTHETIC_NAME if loaded.synthetic else REAL_NAME
    summary = {
        "name": name,
        "synthetic": loaded.synthetic,
        "root": str(loaded.root),
        "image_size": image_size,
        "seed": seed,
        "records": len(records),
        "classes": classes,
        **_counts(records, classes),
        "splits": {s: len(split_idx[s]) for s in SPLITS},
        "split_class_counts": {s: dict(zip(classes, torch.bincount(splits[s].labels, minlength=len(classes))
                                           .tolist(), strict=True)) for s in SPLITS},
        "dataset": {"records": len(loaded.records), **_counts(loaded.records, classes),
                    "no_metadata": loaded.no_metadata},
        "subset": subset_report,
        "skipped": {"total": sum(skipped.values()), "by_reason": dict(sorted(skipped.items()))},
        "cache": cache.info(),
    }
    return PreparedData(name=name, root=loaded.root, classes=classes, image_size=image_size, splits=splits,
                        synthetic=loaded.synthetic, summary=summary)
