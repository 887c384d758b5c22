"""The data layer: dataset cards (ISIC 2019 built in), loader, balanced subset, leak-free split, image cache.

``prepare_data(source, ...)`` (a card file, a folder holding ``flnas.yaml``, or a folder in the ISIC 2019
layout) is the one call most code needs; it returns a :class:`PreparedData` whose
``summary`` is what ``flnas data summary --json`` prints. ``default_synthetic_dir()`` is the embedded
default dataset (synthetic, labelled so wherever it is used).
"""

from __future__ import annotations

from flnas.data.cache import CacheResult, decode_image, default_cache_dir, load_images
from flnas.data.card import Card, read_card, resolve_card
from flnas.data.dataset import PreparedData, Split, check_trainable
from flnas.data.isic import Record, isic_card, load_records
from flnas.data.loader import LoadResult, load_dataset
from flnas.data.prepare import prepare_data
from flnas.data.subset import SubsetResult, balanced_subset, split_records
from flnas.data.synthetic import default_synthetic_dir, write_synthetic

__all__ = [
    "CacheResult",
    "Card",
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
    "isic_card",
    "load_dataset",
    "load_images",
    "load_records",
    "prepare_data",
    "read_card",
    "resolve_card",
    "split_records",
    "write_synthetic",
]
