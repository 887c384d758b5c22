"""The paper's baselines (ResNet-18/34, MobileNetV1/V2) as timm models with random weights.

Each is built with ``pretrained=False`` (nothing is downloaded) and trained by the same
:class:`~flnas.evaluate.Evaluator` as the searched candidates; :mod:`flnas.study.baselines` records them in
the study (``kind="baseline"``) so that Table I compares numbers from one run on one dataset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flnas.errors import FlnasError

if TYPE_CHECKING:
    from torch import nn

# registry name -> timm model name; the order is Table I's.
BASELINES: dict[str, str] = {
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "mobilenetv1": "mobilenetv1_100",
    "mobilenetv2": "mobilenetv2_100",
}
BASELINE_LABELS: dict[str, str] = {
    "resnet18": "ResNet-18",
    "resnet34": "ResNet-34",
    "mobilenetv1": "MobileNetV1",
    "mobilenetv2": "MobileNetV2",
}
BASELINE_DESIGNER = "baseline"


def baseline_names() -> list[str]:
    return list(BASELINES)


def parse_models(text: str | list[str] | None) -> list[str]:
    """Turn ``"resnet18,mobilenetv2"`` into a checked list of registry names (all of them when empty)."""
    if not text:
        return baseline_names()
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [item.strip().lower() for item in items if item.strip()]
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise FlnasError(f"--models: unknown baseline {unknown[0]!r}; choose from {', '.join(BASELINES)}")
    return list(dict.fromkeys(names))


def create_baseline(name: str, num_classes: int, *, seed: int | None = None) -> nn.Module:
    """Build a baseline from timm with random weights (drawn with ``seed``) and ``num_classes`` outputs."""
    import timm
    import torch

    if name not in BASELINES:
        raise FlnasError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    if seed is not None:  # the evaluator seeds spec-built models itself; a module arrives already initialised
        torch.manual_seed(seed)
    return timm.create_model(BASELINES[name], pretrained=False, num_classes=num_classes)


def baseline_label(name: str) -> str:
    return BASELINE_LABELS.get(name, name)
