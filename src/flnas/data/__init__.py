"""The data layer: ISIC 2019 layout loader, balanced subset, lesion-aware split, image cache, synthetic set.

``prepare_data(root, ...)`` is the one call most code needs; it returns a :class:`PreparedData` whose
``summary`` is what ``flnas data summary --json`` prints. ``default_synthetic_dir()`` is the embedded
default dataset (synthetic, labelled so wherever it is used).
"""

from __future__ import annotations

from flnas.data.cache import CacheResult, decode_image, default_cache_dir, load_images
from flnas.data.dataset import PreparedData, Split, check_trainable
from flnas.data.isic import LoadResult, Record, load_records
from flnas.data.prepare import prepare_data
from flnas.data.subset import SubsetResult, balanced_subset, split_records
from flnas.data.synthetic import default_synthetic_dir, write_synthetic

__all__ = [
    "CacheResult",
    "LoadResult",
    "PreparedData",
    "Record",
    "Split",
    "SubsetResult",
    "balanced_subset",
    "check_trainable",
    "decode_image",
    "default_cache_dir",
    "default_synthetic_dir",
    "load_images",
    "load_records",
    "prepare_data",
    "split_records",
    "write_synthetic",
]
