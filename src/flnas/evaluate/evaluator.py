"""The paper's Evaluator (section III-E): train a candidate, then measure accuracy, fairness and hardware.

``Evaluator(data, config).evaluate(spec_or_module)`` returns an :class:`EvalResult` whose ``metrics`` is the
``flnas evaluate --json`` object. A candidate's own problem (an invalid spec, a NaN/inf loss, running out
of memory, exceeding the time budget, a module that does not run) ends as ``status="failed"`` with a
one-sentence ``reason``; ``evaluate`` never raises for it, so a search loop keeps going.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flnas.data.dataset import PreparedData, Split, check_trainable
from flnas.errors import FlnasError
from flnas.evaluate.bootstrap import DEFAULT_RESAMPLES
from flnas.evaluate.config import EvaluatorConfig
from flnas.evaluate.device import (
    PRECISIONS,
    check_precision,
    describe_device,
    free_memory,
    is_out_of_memory,
    resolve_device,
    seed_everything,
    set_threads,
)
from flnas.evaluate.train import OPTIMIZERS, Normalizer, TrainingFailed, predict, train_model

logger = logging.getLogger(__name__)

HARDWARE_KEYS = (
    "flops",
    "peak_memory_mb",
    "latency_s",
    "latency_per_image_s",
    "throughput",
    "onnx_latency_s",
)


@dataclass
class EvalResult:
    """One evaluation: ``status`` "ok" or "failed", ``reason`` when failed, and the metrics object."""

    status: str
    reason: str | None
    metrics: dict[str, Any]
    model: nn.Module | None = None  # trained (best-val-loss weights), in eval mode
    predictions: Any = None  # pandas DataFrame of the test split: image, y_true, y_pred, the sensitive columns
    spec: Any = None  # the validated ArchSpec, when evaluated from a spec
    failure: str | None = None  # "invalid" | "nan" | "oom" | "timeout" | "error" when failed
    artifacts: dict[str, str] = field(default_factory=dict)  # file name -> path, when out_dir was given

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def check_config(config: EvaluatorConfig) -> None:
    """Reject settings that can never train anything (a user error, raised before any candidate runs)."""
    problems = []
    if int(config.epochs) < 1:
        problems.append(f"epochs must be at least 1 (got {config.epochs})")
    if config.patience is not None and int(config.patience) < 0:
        problems.append(f"patience must be 0 (no early stopping) or more (got {config.patience})")
    if int(config.batch_size) < 1:
        problems.append(f"batch_size must be at least 1 (got {config.batch_size})")
    if not config.lr > 0:
        problems.append(f"lr must be positive (got {config.lr})")
    if config.optimizer.lower() not in OPTIMIZERS:
        problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {config.optimizer!r})")
    if not 0 <= config.label_smoothing < 1:
        problems.append(f"label_smoothing must be in [0, 1) (got {config.label_smoothing})")
    if str(config.precision) not in PRECISIONS:
        problems.append(f"precision must be one of {', '.join(PRECISIONS)} (got {config.precision!r})")
    if config.max_train_seconds is not None and not config.max_train_seconds > 0:
        problems.append(f"max_train_seconds must be positive or unset (got {config.max_train_seconds})")
    if problems:
        raise FlnasError("training config: " + "; ".join(problems))


class Evaluator:
    """Trains and measures candidates on one dataset under one EvaluatorConfig (the same for every candidate)."""

    #: bootstrap resamples behind the test split's confidence intervals
    resamples: int = DEFAULT_RESAMPLES

    def __init__(self, data: PreparedData, config: EvaluatorConfig | None = None, *, choices: Any = None) -> None:
        self.data = data
        self.config = config or EvaluatorConfig()
        check_config(self.config)
        check_trainable(data)
        self.device = resolve_device(self.config.device)
        check_precision(str(self.config.precision), self.device)  # fp16 off CUDA: refused before training
        self._choices = choices
        self.normalize = Normalizer.from_images(data.splits["train"].images)

    @property
    def choices(self) -> Any:
        """The Choices that specs are validated against (the default Choices unless given)."""
        if self._choices is None:
            from flnas.space import load_choices

            self._choices = load_choices(None)
        return self._choices

    # -- public -------------------------------------------------------------------------------------------

    def evaluate(
        self,
        target: Any,
        *,
        name: str | None = None,
        out_dir: str | Path | None = None,
        on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> EvalResult:
        """Train and measure ``target`` (an ArchSpec, its JSON dict/str, or an nn.Module trained in place)."""
        set_threads(self.config.num_threads)
        metrics = self._base_metrics(name)
        spec = None
        if isinstance(target, nn.Module):
            model = target
        else:
            spec, problem = self._validate(target)
            if spec is None:
                return self._failed(metrics, "invalid", problem, spec=None)
            metrics["spec"] = _spec_dict(spec)
            seed_everything(self.config.seed)
            try:
                from flnas.space import build_model

                model = build_model(spec, self.data.num_classes)
            except Exception as exc:  # a valid spec should always build; say what went wrong if not
                return self._failed(
                    metrics, "error", f"could not build the model: {_describe(exc)}", spec=spec
                )
        metrics["params"] = _count_params(model)

        seed_everything(self.config.seed)
        train, val = self.data.splits["train"], self.data.splits["val"]
        try:
            result = train_model(
                model,
                train.images,
                train.labels,
                val.images,
                val.labels,
                self.config,
                device=self.device,
                normalize=self.normalize,
                num_classes=self.data.num_classes,
                on_epoch=on_epoch,
            )
        except TrainingFailed as exc:
            metrics.update(_history_fields(exc.history))
            return self._failed(metrics, exc.kind, exc.reason, spec=spec, model=model)
        except Exception as exc:
            kind, reason = self._classify(exc, "training")
            return self._failed(metrics, kind, reason, spec=spec, model=model)

        metrics.update(_history_fields(result.history))
        metrics.update(
            epochs=result.epochs,
            best_epoch=result.best_epoch,
            stopped_early=result.stopped_early,
            train_seconds=round(result.train_seconds, 3),
            train={"loss": result.train_loss, "accuracy": result.train_accuracy},
        )
        try:
            val_metrics, _ = self._split_metrics(model, val)
            test_metrics, test_pred = self._split_metrics(model, self.data.splits["test"])
            test_metrics.update(self._intervals(self.data.splits["test"], test_pred))
        except Exception as exc:
            kind, reason = self._classify(exc, "evaluation")
            return self._failed(metrics, kind, reason, spec=spec, model=model)
        metrics["val"], metrics["test"] = val_metrics, test_metrics
        predictions = self.predictions_frame(self.data.splits["test"], test_pred)

        onnx_path = Path(out_dir) / "model.onnx" if out_dir is not None else None
        if self.config.measure_hardware:
            hardware = self._hardware(model, onnx_path)
            if hardware.pop("_oom", False):
                return self._failed(metrics, "oom", hardware["error"], spec=spec, model=model)
            metrics.update({k: hardware.get(k) for k in HARDWARE_KEYS})
            metrics["hardware"] = hardware
        model.eval()
        artifacts: dict[str, str] = {}
        if out_dir is not None:
            from flnas.evaluate.artifacts import save_artifacts

            artifacts = save_artifacts(
                out_dir,
                spec=spec,
                model=model,
                metrics=metrics,
                predictions=predictions,
                num_classes=self.data.num_classes,
                image_size=self.data.image_size,
                onnx_path=onnx_path if onnx_path is not None and onnx_path.exists() else None,
            )
        return EvalResult("ok", None, metrics, model=model, predictions=predictions, spec=spec, artifacts=artifacts)

    def predictions_frame(self, split: Split, predicted: torch.Tensor) -> Any:
        """Test-split predictions as `flnas metrics --predictions` reads them (class names, not indices)."""
        import pandas as pd

        classes = np.asarray(self.data.classes, dtype=object)
        frame = {
            "image": list(split.image_ids),
            "y_true": classes[split.labels.cpu().numpy()],
            "y_pred": classes[predicted.cpu().numpy()],
        }
        # the raw sensitive columns (ISIC: sex, age_approx); else each dataset attribute's group names
        columns = split.sensitive or {a: split.groups[a] for a in self.data.attributes if "/" not in a}
        for column, values in columns.items():
            values = np.asarray(values)
            frame[column] = values if values.dtype.kind == "f" else ["" if v is None else v for v in values]
        return pd.DataFrame(frame)

    # -- steps --------------------------------------------------------------------------------------------

    def _base_metrics(self, name: str | None) -> dict[str, Any]:
        data = self.data
        metrics: dict[str, Any] = {
            "name": name,
            "status": "ok",
            "reason": None,
            "failure": None,
            "dataset": {
                "name": data.name,
                "synthetic": bool(data.synthetic),
                "image_size": data.image_size,
                "classes": list(data.classes),
                "attributes": {a: list(g) for a, g in data.attributes.items()},
                "sizes": {k: len(v) for k, v in data.splits.items()},
                # how predictions.csv's columns become the groups (`flnas metrics` reads it); ISIC: none
                **({"sensitive": data.sensitive} if data.sensitive else {}),
            },
            "device": describe_device(self.device),
            "seed": int(self.config.seed),
            "params": None,
            **{k: None for k in HARDWARE_KEYS},
            "epochs": 0,
            "best_epoch": None,
            "stopped_early": False,
            "train_seconds": None,
            "train": None,
            "val": None,
            "test": None,
            "history": [],
            "config": self.config.to_dict(),
            "normalization": self.normalize.to_dict(),
        }
        return metrics

    def _validate(self, target: Any) -> tuple[Any, str | None]:
        """(spec, None) when valid, else (None, "invalid spec: path: message; ...")."""
        from flnas.space import validate_spec

        try:
            result = validate_spec(
                target, self.choices, image_size=self.data.image_size, num_classes=self.data.num_classes
            )
        except FlnasError as exc:
            return None, f"invalid spec: {exc}"
        if not result.ok or result.spec is None:
            issues = "; ".join(str(issue) for issue in result.errors)
            return None, f"invalid spec: {issues or 'rejected by the validator'}"
        return result.spec, None

    def _split_metrics(self, model: nn.Module, split: Split) -> tuple[dict[str, Any], torch.Tensor]:
        """Loss plus the fairness metrics (`flnas metrics --json` form) of one split."""
        from flnas.evaluate.fairness import fairness_metrics

        loss, _, predicted = predict(model, split.images, split.labels, self.normalize, self.device)
        out = dict(
            fairness_metrics(
                split.labels.cpu().numpy(),
                predicted.numpy(),
                classes=list(self.data.classes),
                groups=split.groups,
                attributes=self.data.attributes or None,
            )
        )
        out["loss"] = loss
        num_classes = len(self.data.classes)  # per-class support and predictions (degenerate models)
        out["class_counts"] = {
            "true": np.bincount(split.labels.cpu().numpy(), minlength=num_classes).tolist(),
            "predicted": np.bincount(predicted.numpy(), minlength=num_classes).tolist(),
        }
        return out, predicted

    def _intervals(self, split: Split, predicted: torch.Tensor) -> dict[str, Any]:
        """The split's bootstrap intervals (``ci``, ``bootstrap``) and its packed ``predictions``.

        Seeded with the training seed, so every model of a study gets the same resampled images and a
        report can pair them; about 0.1 s for 1,000 images.
        """
        from flnas.evaluate.bootstrap import bootstrap
        from flnas.evaluate.stored import pack_predictions

        if len(split) == 0:
            return {}
        y_true, y_pred = split.labels.cpu().numpy(), predicted.cpu().numpy()
        groups, attributes = split.groups, self.data.attributes or None
        boot = bootstrap(
            y_true,
            y_pred,
            classes=list(self.data.classes),
            groups=groups,
            attributes=attributes,
            resamples=self.resamples,
            seed=int(self.config.seed),
        )
        packed = pack_predictions(
            y_true,
            y_pred,
            num_classes=self.data.num_classes,
            groups=groups,
            attributes=attributes,
            image_ids=split.image_ids,
        )
        return {**boot.to_json(), "predictions": packed}

    def _hardware(self, model: nn.Module, onnx_path: Path | None) -> dict[str, Any]:
        """measure_hardware's dict; a failure there is recorded (``error``); only OOM fails the candidate."""
        from flnas.evaluate.hardware import measure_hardware

        model.eval()
        try:
            return dict(
                measure_hardware(
                    model,
                    self.data.image_size,
                    self.device,
                    latency_batch_size=self.config.latency_batch_size,
                    throughput_batch_size=self.config.throughput_batch_size,
                    repeats=self.config.latency_repeats,
                    onnx_path=onnx_path,
                )
            )
        except Exception as exc:
            if is_out_of_memory(exc):
                free_memory(self.device)
                return {"_oom": True, "error": f"out of memory on {self.device} while measuring hardware"}
            logger.warning("hardware measurement failed: %s", _describe(exc))
            return {"error": f"hardware measurement failed: {_describe(exc)}"}

    def _classify(self, exc: BaseException, stage: str) -> tuple[str, str]:
        if is_out_of_memory(exc):
            free_memory(self.device)
            return "oom", (
                f"out of memory on {self.device} during {stage} (batch size {self.config.batch_size}): {_describe(exc)}"
            )
        logger.debug("candidate failed during %s:\n%s", stage, traceback.format_exc())
        return "error", f"error during {stage}: {_describe(exc)}"

    def _failed(
        self,
        metrics: dict[str, Any],
        kind: str,
        reason: str | None,
        *,
        spec: Any,
        model: nn.Module | None = None,
    ) -> EvalResult:
        reason = reason or kind
        metrics.update(status="failed", reason=reason, failure=kind)
        if model is not None:
            model.cpu().eval()  # a failed candidate should not keep holding accelerator memory
            free_memory(self.device)
        return EvalResult("failed", reason, metrics, model=model, spec=spec, failure=kind)


def _history_fields(history: list[dict[str, Any]]) -> dict[str, Any]:
    return {"history": [dict(h) for h in history], "epochs": len(history)}


def _count_params(model: nn.Module) -> int:
    from flnas.evaluate.hardware import count_params

    return int(count_params(model))


def _spec_dict(spec: Any) -> dict[str, Any]:
    return spec.model_dump(mode="json") if hasattr(spec, "model_dump") else dict(spec)


def _describe(exc: BaseException) -> str:
    """One line: the exception type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
