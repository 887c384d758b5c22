"""Choices: the allowed range of every field of the Template, plus resource budgets.

The paper's prompt ends with "The available range is *Choices*"; flnas keeps Choices in a JSON or YAML file
(default: ``default_choices.yaml`` next to this module) that is shown to the LLM and enforced by
:func:`flnas.space.validate.validate_spec`. Layer limits count conv and sepconv layers only ("insert or
remove convolutional layers"); ``max_total_layers`` bounds the whole list including pool and dropout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flnas.errors import SpecError
from flnas.space.spec import ACTIVATIONS, LAYER_TYPES, NORMS, Activation, LayerType, Norm

DEFAULT_CHOICES_PATH = Path(__file__).with_name("default_choices.yaml")


class Choices(BaseModel):
    """Bounds on every field of an :class:`~flnas.space.spec.ArchSpec` and the resource budgets."""

    model_config = ConfigDict(extra="forbid")

    layer_types: list[LayerType] = Field(
        default_factory=lambda: list(LAYER_TYPES), min_length=1, description="Layer types that may be used."
    )
    min_layers: int = Field(default=2, ge=1, description="Fewest conv + sepconv layers.")
    max_layers: int = Field(default=20, ge=1, description="Most conv + sepconv layers.")
    max_total_layers: int = Field(default=32, ge=1, description="Most entries in 'layers' (all types).")
    channels: list[int] = Field(
        default_factory=lambda: [8, 16, 24, 32, 48, 64, 96, 128, 192, 256],
        min_length=1,
        description="Allowed output channels of conv and sepconv layers.",
    )
    kernels: list[int] = Field(
        default_factory=lambda: [1, 3, 5, 7], min_length=1, description="Odd kernel sizes."
    )
    strides: list[int] = Field(default_factory=lambda: [1, 2], min_length=1, description="Allowed strides.")
    norms: list[Norm] = Field(
        default_factory=lambda: list(NORMS), min_length=1, description="Normalisations."
    )
    activations: list[Activation] = Field(
        default_factory=lambda: list(ACTIVATIONS), min_length=1, description="Activations (layers and head)."
    )
    residual: bool = Field(
        default=True, description="Whether conv/sepconv layers may have residual connections."
    )
    pool_modes: list[Literal["max", "avg"]] = Field(
        default_factory=lambda: ["max", "avg"], min_length=1, description="max, avg."
    )
    pool_kernels: list[int] = Field(default_factory=lambda: [2, 3], min_length=1, description="Pool windows.")
    dropout_min: float = Field(default=0.0, ge=0.0, lt=1.0, description="Smallest dropout probability.")
    dropout_max: float = Field(default=0.5, ge=0.0, lt=1.0, description="Largest dropout probability.")
    head_pools: list[Literal["avg", "max"]] = Field(
        default_factory=lambda: ["avg", "max"], min_length=1, description="avg, max."
    )
    head_hidden: list[int] = Field(
        default_factory=lambda: [32, 64, 128, 256, 512], description="Allowed widths of hidden head layers."
    )
    max_head_layers: int = Field(default=2, ge=0, description="Most hidden layers in the head.")
    max_params: int | None = Field(default=2_000_000, ge=1, description="Parameter budget (None: no limit).")
    max_flops: int | None = Field(
        default=None,
        ge=1,
        description="FLOPs budget per image (2 x multiply-adds of conv/linear; None: no limit).",
    )
    max_latency_s: float | None = Field(
        default=None,
        gt=0,
        description="Latency budget at batch size 2 in seconds (checked by the evaluator).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Choices:
        problems = []
        if self.min_layers > self.max_layers:
            problems.append(f"min_layers {self.min_layers} is more than max_layers {self.max_layers}")
        if self.min_layers > self.max_total_layers:
            problems.append(
                f"min_layers {self.min_layers} is more than max_total_layers {self.max_total_layers}"
            )
        if self.dropout_min > self.dropout_max:
            problems.append(f"dropout_min {self.dropout_min} is more than dropout_max {self.dropout_max}")
        if "conv" not in self.layer_types and "sepconv" not in self.layer_types:
            problems.append("layer_types must include conv or sepconv")
        for name in ("channels", "kernels", "strides", "pool_kernels", "head_hidden"):
            bad = [v for v in getattr(self, name) if v < 1]
            if bad:
                problems.append(f"{name} must be positive integers (got {bad[0]})")
        even = [k for k in self.kernels if k % 2 == 0]
        if even:
            problems.append(f"kernels must be odd (got {even[0]})")
        if self.max_head_layers > 0 and not self.head_hidden:
            problems.append("head_hidden must list at least one width when max_head_layers > 0")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def summary(self) -> dict[str, Any]:
        """The Choices as a JSON-able dict (what the prompt shows)."""
        return self.model_dump(mode="json")


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def choices_from_dict(data: Any, *, source: str = "choices") -> Choices:
    """Validate a dict as Choices; raise SpecError naming ``source`` and the bad field."""
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: Choices must be a mapping of field names to values, got {type(data).__name__}"
        )
    try:
        return Choices.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown field; known fields are {', '.join(Choices.model_fields)}"
            parts.append(f"field '{_field_name(err['loc'])}': {msg}" if err["loc"] else msg)
        raise SpecError(f"{source}: invalid Choices: " + "; ".join(parts)) from None


def load_choices(path: Path | str | None = None) -> Choices:
    """Read Choices from a JSON or YAML file; ``None`` gives the packaged default."""
    path = DEFAULT_CHOICES_PATH if path is None else Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: Choices file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is accepted, as in CSV and spec files
    except UnicodeDecodeError:
        raise SpecError(f"{path}: Choices file is not UTF-8 text (expected JSON or YAML)") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        detail = " ".join(str(exc).split())
        raise SpecError(f"{path}: not valid {kind} ({detail})") from None
    return choices_from_dict(data if data is not None else {}, source=str(path))


def default_choices() -> Choices:
    """The packaged default Choices (mirrors the paper's prompt)."""
    return load_choices(None)
