"""``flnas.evaluate(spec, ...)`` (one architecture, as `flnas evaluate`) and ``flnas.audit(predictions)``
(the fairness metrics of any model's predictions, as `flnas metrics`).

`flnas evaluate` and `flnas metrics` call :func:`prepare_evaluation` and :func:`audit` too; they add only
the printing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flnas.api import defaults
from flnas.api.options import as_path, epoch_logger, log_warnings, logger, pop_train
from flnas.errors import EvaluationError, FlnasError, SpecError

if TYPE_CHECKING:
    from flnas.data.dataset import PreparedData
    from flnas.evaluate import Evaluator

Log = Callable[[str], None]


@dataclass
class Evaluation:
    """One architecture ready to train: its spec (JSON data), its name, and the evaluator with the data."""

    spec: Any
    name: str
    evaluator: Evaluator

    @property
    def data(self) -> PreparedData:
        return self.evaluator.data


def prepare_evaluation(spec: Any, *, progress: bool = False, **options: Any) -> Evaluation:
    """Read and size-check the spec, prepare the data and build the evaluator (``options``: :func:`evaluate`'s).

    ``spec`` is a spec file (JSON), a dict or an ``ArchSpec``; an absurd spec (thousands of layers) is
    refused before the data is prepared.
    """
    from flnas.data import default_synthetic_dir, prepare_data
    from flnas.evaluate import Evaluator, EvaluatorConfig
    from flnas.space import load_choices, read_spec_file
    from flnas.space.validate import size_issues

    if isinstance(spec, (str, Path)):
        where, name, spec = str(spec), Path(spec).stem, read_spec_file(spec)
    else:
        where, name = "spec", "spec"
        spec = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else spec
    choices = load_choices(as_path(options.pop("choices", None)))
    too_big = size_issues(spec, choices)
    if too_big:
        raise SpecError(f"{where}: invalid spec: {too_big[0]}")
    seed = int(options.pop("seed", defaults.EVALUATE["seed"]))
    options.setdefault("device", defaults.EVALUATE["device"])
    config = EvaluatorConfig(seed=seed, **pop_train(options))
    data = as_path(options.pop("data", None))
    prepared = prepare_data(
        data if data is not None else default_synthetic_dir(),
        subset=options.pop("subset", None),
        seed=seed,
        image_size=int(options.pop("image_size", defaults.EVALUATE["image_size"])),
        cache_dir=as_path(options.pop("cache_dir", None)),
        progress=progress,
    )
    if options:
        raise TypeError(f"unexpected option {sorted(options)[0]!r}")
    return Evaluation(spec, name, Evaluator(prepared, config, choices=choices))


def evaluate(
    spec: Any,
    data: str | Path | None = None,
    *,
    subset: int | None = None,
    epochs: int | None = None,
    patience: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    image_size: int = int(defaults.EVALUATE["image_size"]),
    seed: int = int(defaults.EVALUATE["seed"]),
    device: str = str(defaults.EVALUATE["device"]),
    cache_dir: str | Path | None = None,
    choices: str | Path | None = None,
    out: str | Path | None = None,
    no_hardware: bool = False,
    class_weighted: bool | None = None,
    max_train_seconds: float | None = None,
    precision: str | None = None,
    channels_last: bool | None = None,
    progress: bool = False,
    callback: Log | None = None,
) -> dict[str, Any]:
    """Train one architecture and return every metric, as `flnas evaluate SPEC.json --json` prints it.

    ``spec``: a spec file, a dict (``result.best.spec``) or an ``ArchSpec``; ``data=None`` is the embedded
    synthetic set. ``out`` keeps spec.json, model.pt, model.onnx, model.py, metrics.json and
    predictions.csv. A candidate that cannot be trained (NaN loss, out of memory, over
    ``max_train_seconds``, invalid) raises :class:`flnas.errors.EvaluationError` with the reason.
    """
    options = {key: value for key, value in locals().items() if key not in ("spec", "progress", "callback", "out")}
    log = logger(progress, callback)
    prepared = prepare_evaluation(spec, progress=progress, **options)
    log_warnings(prepared.data, log)
    result = prepared.evaluator.evaluate(
        prepared.spec,
        name=prepared.name,
        out_dir=as_path(out),
        on_epoch=epoch_logger(log) if (progress or callback) else None,
    )
    if not result.ok:
        raise EvaluationError(str(result.reason), metrics=result.metrics)
    return result.metrics


def audit(
    predictions: Any,
    *,
    classes: str | Sequence[str] | None = None,
    ci: bool = False,
    resamples: int | None = None,
    seed: int | None = None,
    sensitive: str | Sequence[str] | None = None,
    bins: Sequence[str] = (),
    intersect: Sequence[str | Sequence[str]] = (),
) -> dict[str, Any]:
    """Accuracy, Unfairness, EODD, EOPP1, EOPP2, per-group and per-pair values of a model's predictions.

    What `flnas metrics --json` prints. ``predictions``: a predictions.csv path or a DataFrame with the
    columns y_true, y_pred (class names or indices) and the sensitive columns (default sex and age_approx).
    ``classes`` fixes the class list (default: the dataset's, from a metrics.json beside the file as
    `flnas evaluate --out` writes it; else the names seen). The groups: when that metrics.json records how
    the dataset's columns become groups (a dataset read through its card) and neither ``sensitive`` nor
    ``intersect`` is given, those; else ``sensitive`` names other columns ("skin_type,site"),
    ``bins`` makes a numeric one into groups ("age=30,65"), ``intersect`` adds combinations ("sex,age");
    ``ci`` adds 95% percentile-bootstrap intervals over the images (``resamples``, ``seed``).
    """
    from flnas.evaluate.predictions import fairness_from_predictions, read_predictions, recorded_columns

    columns = _sensitive_columns(sensitive, list(bins))
    groups_of = [[a.strip() for a in item.split(",")] if isinstance(item, str) else list(item) for item in intersect]
    class_list = None
    if classes is not None:
        items = classes.split(",") if isinstance(classes, str) else list(classes)
        class_list = [c.strip() for c in items if c.strip()]
        if not class_list or len(set(class_list)) != len(class_list):
            shown = classes if isinstance(classes, str) else ",".join(items)
            raise FlnasError(f"--classes {shown!r}: give a comma-separated list of distinct class names")
    if not ci and (resamples is not None or seed is not None):
        raise FlnasError("--resamples and --seed set up the bootstrap: add --ci to compute intervals")
    source, from_sidecar = "predictions", False
    if isinstance(predictions, (str, Path)):
        source, df = str(predictions), read_predictions(predictions)
        dataset = _sidecar_dataset(Path(predictions))
        from_sidecar = class_list is None and (class_list := _dataset_classes(dataset)) is not None
        recorded = recorded_columns(dataset) if columns is None and not groups_of else None
        if recorded is not None:  # the evaluator's own record of the groups; explicit flags win
            columns, groups_of = recorded
    else:
        df = predictions
    groups = {"sensitive": columns, "intersect": groups_of}
    if ci:
        from flnas.evaluate.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, fairness_with_intervals

        result = fairness_with_intervals(
            df,
            classes=class_list,
            source=source,
            resamples=DEFAULT_RESAMPLES if resamples is None else resamples,
            seed=DEFAULT_SEED if seed is None else seed,
            **groups,
        )
    else:
        result = fairness_from_predictions(df, classes=class_list, source=source, **groups)
    if from_sidecar:
        result["classes_from"] = "metrics.json"
    return result


def _sensitive_columns(sensitive: str | Sequence[str] | None, bins: list[str]) -> list[Any] | None:
    """``--sensitive`` and ``--bins`` as :class:`~flnas.data.attributes.SensitiveColumn` s (None: ISIC's default)."""
    from flnas.evaluate.predictions import sensitive_columns

    if sensitive is None:
        if bins:
            raise FlnasError("--bins makes a --sensitive column numeric: name the columns with --sensitive too")
        return None
    edges: dict[str, list[float]] = {}
    labels: dict[str, list[str]] = {}
    for item in bins:
        column, _, rest = item.partition("=")
        cuts, _, names = rest.partition(":")
        if not column.strip() or not cuts.strip():
            raise FlnasError(f"--bins {item!r}: expected COLUMN=EDGE,EDGE,..., e.g. age=30,65")
        try:
            edges[column.strip()] = [float(x) for x in cuts.split(",")]
        except ValueError:
            raise FlnasError(
                f"--bins {item!r}: expected COLUMN=EDGE,EDGE,... with numbers as edges, e.g. age=30,65"
            ) from None
        if names:
            labels[column.strip()] = [x.strip() for x in names.split(",")]
    names = sensitive.split(",") if isinstance(sensitive, str) else list(sensitive)
    return sensitive_columns(names, edges, labels)


def _sidecar_dataset(predictions: Path) -> dict[str, Any]:
    """The ``dataset`` section of the evaluator's metrics.json next to predictions.csv ({} when there is none)."""
    try:
        dataset = json.loads(predictions.with_name("metrics.json").read_text())["dataset"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return dataset if isinstance(dataset, dict) else {}


def _dataset_classes(dataset: dict[str, Any]) -> list[str] | None:
    """The dataset's class list from a metrics.json ``dataset`` section, when it has one.

    A test split may lack a class; the fairness averages must still run over the dataset's full list.
    """
    classes = dataset.get("classes")
    if isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes):
        return classes
    return None
