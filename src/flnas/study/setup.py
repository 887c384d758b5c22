"""A study's ``setup`` attribute: what every candidate of the study was trained on and under.

Written once when the study is created (layout in :mod:`flnas.study.storage`), read back by a resumed
search, by ``flnas prompt``, and by ``flnas baselines`` / ``flnas report --repeats`` so that every model of
a study sees the same data, image size, seed and training settings.

New studies default to the balanced accuracy of record and a class-weighted loss (``NEW_STUDY``): on
imbalanced data such as ISIC the plain accuracy and an unweighted loss reward a network that answers the
majority class. A study created before these settings existed keeps what it had: no ``accuracy`` key reads
as "plain", and its stored EvaluatorConfig keeps its ``class_weighted_loss``, so resuming never changes what
its numbers mean. ``--accuracy plain --no-class-weighted`` is the paper's preset.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from flnas.data.groups import DEFAULT_ATTRIBUTES
from flnas.errors import StudyError
from flnas.evaluate.config import EvaluatorConfig
from flnas.records import TaskInfo, check_accuracy

if TYPE_CHECKING:
    from flnas.data.dataset import PreparedData
    from flnas.evaluate import Evaluator

DEFAULT_ENV = "Raspberry Pi 4"
# what a NEW study gets when the flag is not given (an existing study keeps its own setup)
NEW_STUDY = {"accuracy": "balanced", "class_weighted_loss": True}
PAPER_PRESET = {"accuracy": "plain", "class_weighted_loss": False}  # --accuracy plain --no-class-weighted
# the evaluator settings of a study created before they existed: what its models were trained with
TRAIN_BEFORE = {"class_weighted_loss": False, "precision": "fp32", "channels_last": False}
# setup keys a command-line flag can set, with the flag's name (used in conflict messages)
FLAGS = {
    "data": "--data",
    "subset": "--subset",
    "seed": "--seed",
    "image_size": "--image-size",
    "env": "--env",
    "choices": "--choices",
    "accuracy": "--accuracy",
}


def make_setup(
    *,
    data: PreparedData,
    data_arg: str | Path | None,
    subset: int | None,
    seed: int,
    image_size: int,
    cache_dir: str | Path | None,
    train: EvaluatorConfig,
    env: str,
    choices: Any,
    accuracy: str = NEW_STUDY["accuracy"],
) -> dict[str, Any]:
    """The setup dict for a new study (``data_arg`` None means the embedded synthetic set)."""
    check_accuracy(accuracy)
    return {
        "data": str(Path(data_arg).resolve()) if data_arg is not None else None,
        "dataset": data.name,
        "synthetic": bool(data.synthetic),
        "subset": subset,
        "seed": seed,
        "image_size": image_size,
        "cache_dir": str(cache_dir) if cache_dir is not None else None,
        "train": train.to_dict(),
        "env": env,
        "choices": choices.model_dump(mode="json") if hasattr(choices, "model_dump") else dict(choices),
        "classes": list(data.classes),
        "attributes": {a: list(g) for a, g in data.attributes.items()},
        "accuracy": accuracy,
    }


def attributes_from_setup(setup: dict[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """The study's sensitive attributes and their groups; a study from before they were stored has ISIC's."""
    stored = (setup or {}).get("attributes")
    if not isinstance(stored, dict):
        return dict(DEFAULT_ATTRIBUTES)
    return {str(a): tuple(str(g) for g in groups) for a, groups in stored.items()}


def accuracy_from_setup(setup: dict[str, Any] | None) -> str:
    """The study's accuracy of record: its ``accuracy``, or "plain" for a study from before the setting."""
    value = str((setup or {}).get("accuracy") or "plain")
    check_accuracy(value)
    return value


def require_setup(setup: dict[str, Any] | None) -> dict[str, Any]:
    if not setup:
        raise StudyError(
            "the study has no `setup` attribute (it was not created by `flnas search`); "
            "start a new study with `flnas search --study NAME`"
        )
    return setup


def data_from_setup(setup: dict[str, Any], *, progress: bool = False) -> PreparedData:
    """Load the study's dataset again (from the decoded-image cache when it is still there)."""
    from flnas.data import default_synthetic_dir, prepare_data

    setup = require_setup(setup)
    root = Path(setup["data"]) if setup.get("data") else default_synthetic_dir()
    data = prepare_data(
        root,
        subset=setup.get("subset"),
        seed=int(setup.get("seed", 0)),
        image_size=int(setup["image_size"]),
        cache_dir=setup.get("cache_dir"),
        progress=progress,
    )
    if setup.get("classes") and list(data.classes) != list(setup["classes"]):
        raise StudyError(
            f"{root}: classes {data.classes} differ from the study's {setup['classes']}; "
            "the dataset changed since the study was created"
        )
    check_same_attributes(root, data.attributes, attributes_from_setup(setup))
    return data


def check_same_attributes(root: Any, found: dict[str, tuple[str, ...]], stored: dict[str, tuple[str, ...]]) -> None:
    """StudyError unless the data's attributes and groups are the study's, in the same order.

    Groups found in a column were once ordered as text ("10" before "9"); they now go by number
    (:func:`flnas.data.attributes.group_order`). A study made before keeps its order: its error says how
    to give the card that order, which also picks the same balanced subset as before.
    """
    if not found or found == stored:
        return
    moved = [a for a in stored if "/" not in a and a in found and found[a] != stored[a]]
    same_sets = set(found) == set(stored) and all(sorted(found[a]) == sorted(stored[a]) for a in stored)
    if same_sets and moved:
        attribute, groups = moved[0], ", ".join(stored[moved[0]])
        raise StudyError(
            f"{root}: the groups of {attribute} found in its column are now in number order "
            f"({', '.join(found[attribute])}) and this study has them in text order; to read it as before, set "
            f"`groups: [{groups}]` (quoted if they are numbers) under sensitive.{attribute} in the card"
        )
    groups = "; ".join(f"{a}: {', '.join(g)}" for a, g in stored.items())
    raise StudyError(
        f"{root}: its sensitive attributes differ from the study's ({groups}); "
        "the dataset or its card changed since the study was created"
    )


def evaluator_config_from_setup(setup: dict[str, Any], **overrides: Any) -> EvaluatorConfig:
    """The study's EvaluatorConfig, with optional overrides (e.g. ``seed`` for report repeats)."""
    return EvaluatorConfig.from_dict({**require_setup(setup).get("train", {}), **overrides})


def evaluator_from_setup(
    setup: dict[str, Any], data: PreparedData | None = None, **overrides: Any
) -> Evaluator:
    """An Evaluator with the study's data, training settings and Choices (``overrides`` go into EvaluatorConfig).

    The one way an evaluator for a study is built: the search, the baselines, the experiment and a
    retraining export all use it, so every model of a study is trained alike (``device`` may differ: it
    says where this run trains, not what the study is).
    """
    from flnas.evaluate import Evaluator

    data = data if data is not None else data_from_setup(setup)
    return Evaluator(data, evaluator_config_from_setup(setup, **overrides), choices=choices_from_setup(setup))


def choices_from_setup(setup: dict[str, Any]) -> Any:
    """The study's Choices (the search space every designer must stay in)."""
    from flnas.space import Choices, load_choices

    stored = require_setup(setup).get("choices")
    return Choices.model_validate(stored) if stored else load_choices(None)


def task_from_setup(setup: dict[str, Any]) -> TaskInfo:
    """What the network is for (dataset, classes, groups, input size, target device)."""
    setup = require_setup(setup)
    return TaskInfo(
        dataset=str(setup.get("dataset") or "ISIC 2019"),
        classes=list(setup.get("classes") or []),
        groups={a: list(g) for a, g in attributes_from_setup(setup).items()},
        image_size=int(setup["image_size"]),
        env=str(setup.get("env") or DEFAULT_ENV),
    )


def describe_training(train: dict[str, Any]) -> str:
    """How a study's models are trained, for messages: the loss, precision and memory format
    (``class-weighted loss, bf16 + channels_last``)."""
    stored = {**TRAIN_BEFORE, **train}
    weighted = "class-weighted" if stored["class_weighted_loss"] else "unweighted"
    return f"{weighted} loss, {stored['precision']}{' + channels_last' if stored['channels_last'] else ''}"


def setup_conflicts(stored: dict[str, Any], requested: dict[str, Any]) -> list[str]:
    """Sentences for each explicitly requested value that differs from the stored setup.

    ``requested`` holds only what the user gave on the command line: setup keys (see FLAGS) and
    EvaluatorConfig fields under ``train``.
    """
    out: list[str] = []
    for key, value in requested.items():
        if key == "train":
            # a study from before a setting has the value it was trained with
            stored_train = {**TRAIN_BEFORE, **(stored.get("train") or {})}
            for field, v in value.items():
                if field not in stored_train or stored_train[field] == v:
                    continue
                if field == "measure_hardware":
                    out.append(
                        f"--no-hardware (the study {'measures' if stored_train[field] else 'skips'} "
                        "hardware metrics)"
                    )
                elif field == "class_weighted_loss":
                    out.append(
                        "--class-weighted (the study trains with an unweighted loss)"
                        if v
                        else "--no-class-weighted (the study trains with a class-weighted loss)"
                    )
                elif field == "channels_last":
                    out.append(
                        "--channels-last (the study trains in the usual memory format)"
                        if v
                        else "--no-channels-last (the study trains in channels_last)"
                    )
                else:
                    flag = "--" + field.replace("_", "-")
                    out.append(f"{flag} {v} (the study has {stored_train[field]})")
        elif key == "accuracy" and accuracy_from_setup(stored) != value:
            out.append(f"--accuracy {value} (the study has {accuracy_from_setup(stored)})")
        elif key in stored and stored[key] != value:
            out.append(f"{FLAGS.get(key, key)} {value} (the study has {stored[key]})")
    return out


def resolve_setup(
    study: Any,
    *,
    data: Path | None,
    subset: int | None,
    seed: int | None,
    image_size: int | None,
    cache_dir: Path | None,
    env: str | None,
    choices_path: Path | None,
    train: dict[str, Any],
    defaults: dict[str, Any],
    accuracy: str | None = None,
    progress: bool = False,
) -> tuple[dict[str, Any], PreparedData, bool]:
    """(setup, data, resumed): the study's stored setup, or a new one written from the flags.

    Only flags the user gave (not None; ``train`` holds EvaluatorConfig fields) are compared with a stored
    setup; any difference is a StudyError naming each flag and both values. ``--device`` may differ: it
    says where this run trains, not what the study is. ``defaults`` fill in a new study's image size and
    EvaluatorConfig fields that were not given; ``accuracy`` and ``class_weighted_loss`` not given are
    :data:`NEW_STUDY`'s for a new study. ``progress`` draws a bar while images are decoded (the CLI's).
    """
    from flnas.space import load_choices
    from flnas.study.storage import get_setup, set_setup

    requested: dict[str, Any] = {"subset": subset, "seed": seed, "image_size": image_size, "env": env}
    if accuracy is not None:
        check_accuracy(accuracy)
        requested["accuracy"] = accuracy
    requested = {key: v for key, v in requested.items() if v is not None}
    if data is not None:
        requested["data"] = str(Path(data).resolve())
    if choices_path is not None:
        requested["choices"] = load_choices(choices_path).model_dump(mode="json")
    if any(key != "device" for key in train):
        requested["train"] = {key: v for key, v in train.items() if key != "device"}
    stored = get_setup(study)
    if stored is not None:
        conflicts = setup_conflicts(stored, requested)
        if conflicts:
            raise StudyError(
                f"study {study.study_name!r} was created with other settings ({'; '.join(conflicts)}); "
                "drop these flags to resume it, or choose a new --study"
            )
        return stored, data_from_setup(stored, progress=progress), True

    from flnas.data import check_trainable, default_synthetic_dir, prepare_data

    seed = int(requested.get("seed", 0))
    size = int(requested.get("image_size", defaults.get("image_size", 64)))
    train_defaults = {k: v for k, v in defaults.items() if k != "image_size"}
    new_train = {"class_weighted_loss": NEW_STUDY["class_weighted_loss"]}
    config = EvaluatorConfig.from_dict({**new_train, **train_defaults, **train, "seed": seed})
    choices = load_choices(choices_path)
    root = data if data is not None else default_synthetic_dir()
    prepared = prepare_data(
        root, subset=subset, seed=seed, image_size=size, cache_dir=cache_dir, progress=progress
    )
    check_trainable(prepared)  # before the study stores a setup that no candidate could train on
    setup = make_setup(
        data=prepared,
        data_arg=data,
        subset=subset,
        seed=seed,
        image_size=size,
        cache_dir=cache_dir,
        train=config,
        env=env or DEFAULT_ENV,
        choices=choices,
        accuracy=accuracy or NEW_STUDY["accuracy"],
    )
    set_setup(study, setup)
    return setup, prepared, False
