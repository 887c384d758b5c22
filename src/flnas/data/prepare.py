"""From a dataset (a card, a folder with ``flnas.yaml``, or the ISIC 2019 layout) to a :class:`PreparedData`.

Steps: read and check the CSVs and the image folder as the card says (:mod:`flnas.data.loader`), take the
balanced subset when asked (:mod:`flnas.data.subset`), decode the chosen images through the cache
(:mod:`flnas.data.cache`), drop or report unreadable images, split 70/20/10 by class and unit (or as the
card's split column says), and write the summary that ``flnas data summary --json`` prints.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from flnas.data.cache import default_cache_dir, load_images
from flnas.data.dataset import PreparedData, Split
from flnas.data.plan import Plan, load_plan, record_counts
from flnas.data.subset import SPLITS, group_counts, split_records
from flnas.errors import DataError


def _arrays(plan: Plan, labels: list[str], images: list[str], groups: dict[str, list],
            values: dict[str, list]) -> dict[str, dict[str, np.ndarray] | np.ndarray]:
    """Per-record arrays for the splits: label index, image id, group per attribute, raw sensitive values."""
    index = {c: i for i, c in enumerate(plan.classes)}
    numeric = set(plan.numeric)
    return {
        "label": np.array([index[c] for c in labels], dtype=np.int64),
        "image": np.array(images, dtype=object),
        "groups": {a: np.array(g, dtype=object) for a, g in groups.items()},
        "values": {c: (np.array([math.nan if x is None else x for x in v], dtype=float) if c in numeric
                       else np.array(v, dtype=object)) for c, v in values.items()},
    }


def _make_split(arrays: dict, idx: list[int], images: np.ndarray) -> Split:
    take = np.asarray(idx, dtype=np.int64)
    return Split(
        images=torch.from_numpy(np.ascontiguousarray(images[take].transpose(0, 3, 1, 2))),
        labels=torch.from_numpy(arrays["label"][take]),
        groups={a: g[take] for a, g in arrays["groups"].items()},
        image_ids=arrays["image"][take].tolist(),
        sensitive={c: v[take] for c, v in arrays["values"].items()},
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
    attributes = {a: tuple(g) for a, g in plan.attributes.items()}
    if cache.failed:  # rare: fall back to Record objects, drop the unreadable images and split again
        records = plan.records()
        first = min(cache.failed)
        bad = records[first]
        if not skip_bad:
            raise DataError(f"{plan.images}/{bad.path.name} ({plan.manifest} row {bad.row}): unreadable image "
                            f"({cache.failed[first]})")
        keep = [i for i in range(len(records)) if i not in cache.failed]
        skipped["unreadable_image"] += len(cache.failed)
        records, images = [records[i] for i in keep], images[keep]
        if subset_report is not None:
            subset_report.update(achieved=len(records), group_counts=group_counts(records, attributes))
            subset_report["note"] += f"; {len(cache.failed)} unreadable images were dropped after choosing"
        if not records:
            raise DataError(f"{plan.root}: no readable images left after skipping bad records")
        split_idx = split_records(records, seed=seed, given=plan.given_split)
        counts = record_counts(records, classes, attributes)
        arrays = _arrays(plan, [r.label for r in records], [r.image for r in records],
                         {a: [r.groups[a] for r in records] for a in attributes},
                         {c: [r.values[c] for r in records] for c in plan.values})
    else:
        split_idx, counts = plan.split, plan.counts
        arrays = _arrays(plan, plan.columns["label"], plan.columns["image"], plan.groups, plan.values)

    splits = {name: _make_split(arrays, split_idx[name], images) for name in SPLITS}
    name = plan.name
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
    summary["warnings"] = data_warnings(summary, plan.sources)
    return PreparedData(name=name, root=Path(plan.root), classes=classes, image_size=image_size,
                        splits=splits, synthetic=plan.synthetic, summary=summary, attributes=attributes,
                        sensitive=plan.sensitive)


def data_warnings(summary: dict, source: str = "the metadata CSV") -> list[str]:
    """Sentences on data that loads but cannot give meaningful results (``summary["warnings"]``).

    Commands print them; the training commands also refuse such data (:func:`flnas.data.check_trainable`).
    """
    warnings = []
    present = [c for c, n in summary["class_counts"].items() if n]
    if len(present) == 1:
        warnings.append(f"every record is of class {present[0]}: a classifier needs at least two classes, "
                        "and one trained on these records is trivially 100% accurate")
    records, missing = summary["records"], summary["missing"]
    base = [a for a in missing if "/" not in a]
    if records and base and all(missing[a] == records for a in base):
        warnings.append(f"no record has a known {' or '.join(base)} ({source} has no usable row for these "
                        "images): the groups are empty and every fairness metric is undefined")
    subset = summary.get("subset")
    if subset and subset["achieved"] < subset["requested"]:
        warnings.append(f"--subset {subset['requested']} asks for more records than the {subset['available']} "
                        f"available; all {subset['achieved']} are used")
    splits = summary["splits"]
    if splits["train"] < 2 or not splits["val"] or not splits["test"]:
        warnings.append(f"the split has {splits['train']} train, {splits['val']} validation and {splits['test']} "
                        "test records: too few to train (the training commands refuse it)")
    return warnings
