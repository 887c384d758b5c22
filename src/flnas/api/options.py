"""How the commands' options become settings: evaluator settings, paths, and where progress lines go.

Shared by the command line and the Python API (their options have the same names), so a flag and its
keyword argument mean the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flnas.data.dataset import PreparedData

Log = Callable[[str], None]


def logger(progress: bool, callback: Log | None) -> Log:
    """Where an API call's progress lines go: ``callback``, stderr with ``progress``, else nowhere."""
    import sys

    def log(message: str) -> None:
        if callback is not None:
            callback(message)
        if progress:
            print(message, file=sys.stderr, flush=True)

    return log


def epoch_logger(log: Log) -> Callable[[int, dict[str, Any]], None]:
    """An ``on_epoch`` callback that logs one line per epoch (its validation accuracy)."""

    def on_epoch(epoch: int, logs: dict[str, Any]) -> None:
        acc = logs.get("val_accuracy")
        shown = "n/a" if acc is None else f"{100 * acc:.2f}%"
        log(f"  epoch {epoch}/{logs.get('epochs')}: val acc {shown}")

    return on_epoch


def log_warnings(data: PreparedData, log: Log) -> None:
    """The data's warnings (one class, no demographics, a subset larger than the data) as log lines."""
    for warning in data.summary.get("warnings") or ():
        log(f"warning: {warning}")


# the evaluator settings among the commands' options (see train_overrides)
TRAIN_OPTIONS = (
    "epochs",
    "patience",
    "batch_size",
    "lr",
    "device",
    "max_train_seconds",
    "no_hardware",
    "class_weighted",
    "precision",
    "channels_last",
)


def pop_train(options: dict[str, Any]) -> dict[str, Any]:
    """Take the evaluator settings out of a command's ``options`` and return them as EvaluatorConfig fields."""
    return train_overrides(**{key: options.pop(key) for key in TRAIN_OPTIONS if key in options})


def as_path(value: str | Path | None) -> Path | None:
    """A path option given as a string or a Path (None stays None)."""
    return Path(value) if value is not None else None


def train_overrides(
    *,
    epochs: int | None = None,
    patience: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    device: str | None = None,
    max_train_seconds: float | None = None,
    no_hardware: bool = False,
    class_weighted: bool | None = None,
    precision: str | None = None,
    channels_last: bool | None = None,
) -> dict[str, Any]:
    """The evaluator settings (EvaluatorConfig fields) the user gave; None means not given.

    ``no_hardware`` sets measure_hardware to False and ``class_weighted`` sets class_weighted_loss; a setting
    left out means "not given", so a resumed study keeps what it was created with.
    """
    given = {
        "epochs": epochs,
        "patience": patience,
        "batch_size": batch_size,
        "lr": lr,
        "device": device,
        "max_train_seconds": max_train_seconds,
        "measure_hardware": False if no_hardware else None,
        "class_weighted_loss": class_weighted,
        "precision": _precision(precision, device),
        "channels_last": channels_last,
    }
    return {key: value for key, value in given.items() if value is not None}


def _precision(precision: str | None, device: str | None) -> str | None:
    """Checked against the device this run trains on: ``auto`` becomes what it computes natively (a study
    stores the resolved value) and ``fp16`` off CUDA is refused here, before anything is trained."""
    if precision is None:
        return None
    from flnas.evaluate.device import resolve_device, resolve_precision

    return resolve_precision(precision, resolve_device(device or "auto"))


def pop_liveness(options: dict[str, Any]) -> Any:
    """Take ``heartbeat_interval`` and ``grace_period`` out of ``options``: the study's worker heartbeat settings."""
    from flnas.api import defaults
    from flnas.errors import FlnasError
    from flnas.study.workers import Liveness

    try:
        return Liveness(
            options.pop("heartbeat_interval", defaults.HEARTBEAT_INTERVAL),
            options.pop("grace_period", defaults.GRACE_PERIOD),
        )
    except ValueError as exc:
        raise FlnasError(f"--heartbeat-interval/--grace-period: {exc}") from exc
