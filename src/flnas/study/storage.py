"""The study is an Optuna study in RDB storage; this module opens it and holds its record layout.

Layout (every field JSON-serialisable), so that search, baselines, report and the dashboard agree:

Study user attributes
    ``setup``: {"data": str | None (None: the embedded synthetic set), "dataset": name, "subset", "seed",
    "image_size", "cache_dir", "train": TrainConfig.to_dict(), "env", "choices": Choices as dict,
    "classes": [...]} -- written once by the first command that creates the study.

Trial user attributes
    ``kind``: "search" | "baseline" | "repeat"; ``iteration`` (1-based, search only); ``designer``;
    ``baseline`` (model name, baselines only); ``status``: "ok" | "failed" | "invalid";
    ``reason`` (why not ok); ``spec`` (architecture JSON or None); ``spec_key`` (canonical JSON);
    ``metrics`` (the evaluator's JSON object); ``record`` (prompt, raw reply, attempts, token usage,
    timings); ``seed``.
    ``repeat_of`` (trial number) and ``repeat`` (index) for report re-runs.

Trial values (state COMPLETE, kind "search"/"baseline" with status "ok"): ``[val accuracy, val unfairness,
params]`` with directions maximise, minimise, minimise. An undefined unfairness is stored as 1.0 (the worst)
in values and as null in ``metrics``. Failed and invalid candidates are state FAIL with the same user attrs.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import optuna

from flnas.errors import StudyError

DEFAULT_STORAGE = "sqlite:///flnas.db"
DEFAULT_STUDY = "flnas"
DIRECTIONS = ["maximize", "minimize", "minimize"]
OBJECTIVE_NAMES = ["val_accuracy", "val_unfairness", "params"]


def storage_url(storage: str | None) -> str:
    """Accept a SQLAlchemy URL or a plain file path (taken as SQLite)."""
    if not storage:
        return os.environ.get("FLNAS_STORAGE", DEFAULT_STORAGE)
    if "://" in storage:
        return storage
    return f"sqlite:///{storage}"


def open_study(name: str, storage: str | None, *, create: bool = True) -> optuna.Study:
    """Open (or create) the named multi-objective study; one clear error when the storage cannot be used."""
    url = storage_url(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        rdb = optuna.storages.RDBStorage(url, heartbeat_interval=None, engine_kwargs=_engine_kwargs(url))
        if create:
            study = optuna.create_study(
                study_name=name, storage=rdb, directions=DIRECTIONS, load_if_exists=True
            )
            with warnings.catch_warnings():  # set_metric_names is marked experimental in optuna
                warnings.simplefilter("ignore")
                study.set_metric_names(OBJECTIVE_NAMES)
            return study
        return optuna.load_study(study_name=name, storage=rdb)
    except KeyError as exc:
        raise StudyError(f"no study named {name!r} in {_redact(url)}; run `flnas search --study {name}` first") from exc
    except Exception as exc:  # SQLAlchemy/optuna raise many kinds; the user needs one sentence
        raise StudyError(f"cannot open study {name!r} in {_redact(url)}: {exc}") from exc


def _engine_kwargs(url: str) -> dict[str, Any]:
    return {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}


def _redact(url: str) -> str:
    """Hide a password in a database URL before it is shown."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def get_setup(study: optuna.Study) -> dict[str, Any] | None:
    return study.user_attrs.get("setup")


def set_setup(study: optuna.Study, setup: dict[str, Any]) -> None:
    study.set_user_attr("setup", setup)


def get_search_settings(study: optuna.Study) -> dict[str, Any]:
    """The last search run's settings (iters, candidates, selection, tolerance, designer); {} before any."""
    settings = study.user_attrs.get("search")
    return settings if isinstance(settings, dict) else {}


def set_search_settings(
    study: optuna.Study, *, iters: int, candidates: int, selection: str, tolerance: float, designer: str
) -> None:
    """Record how the search runs, for `flnas prompt` and for `flnas report`'s default selection rule."""
    settings = {"iters": iters, "candidates": candidates, "selection": selection, "tolerance": tolerance}
    study.set_user_attr("search", {**settings, "designer": designer})
