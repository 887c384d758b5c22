"""Shared fixtures: a tiny synthetic dataset in the official ISIC layout, and the real subset when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

from db_servers import (  # noqa: E402,F401  (throw-away PostgreSQL and MariaDB servers)
    mariadb_server,
    postgres_server,
    server_url,
    study_url,
)
from llm_server import llm_server  # noqa: E402,F401  (the fake chat-completions server fixture)

# $FLNAS_ISIC_SUBSET points elsewhere (e.g. from a git worktree, whose parent has no shared/)
ISIC_SUBSET = Path(os.environ.get("FLNAS_ISIC_SUBSET")
                   or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2019_subset")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's caches out of the user's home."""
    monkeypatch.setenv("FLNAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "flnas-cache"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synthetic dataset (240 records, 32x32) in the official ISIC 2019 layout."""
    from flnas.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("synth") / "data", n=240, seed=0, image_size=32)


@pytest.fixture(scope="session")
def synth_data(synth_dir, tmp_path_factory):
    """The synthetic dataset decoded at 32x32 and split 70/20/10."""
    from flnas.data import prepare_data

    return prepare_data(synth_dir, image_size=32, seed=0, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(scope="session")
def isic_dir() -> Path:
    if not (ISIC_SUBSET / "ISIC_2019_Training_GroundTruth.csv").exists():
        pytest.skip(f"real ISIC 2019 subset not found at {ISIC_SUBSET} (only on the developers' machines)")
    return ISIC_SUBSET
