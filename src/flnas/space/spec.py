"""The architecture format (the paper's Template) as pydantic models.

An architecture is data, never code: a list of layers (conv, sepconv, pool, dropout) followed by a
classification head. The JSON Schema of :class:`ArchSpec` is what an LLM designer is shown, so every
field carries a description, and unknown keys are errors (``extra="forbid"``) that name the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

Norm = Literal["batch", "group", "instance", "layer", "none"]
Activation = Literal["relu", "relu6", "gelu", "silu", "hardswish", "none"]
LayerType = Literal["conv", "sepconv", "pool", "dropout"]

NORMS: tuple[str, ...] = ("batch", "group", "instance", "layer", "none")
ACTIVATIONS: tuple[str, ...] = ("relu", "relu6", "gelu", "silu", "hardswish", "none")
LAYER_TYPES: tuple[str, ...] = ("conv", "sepconv", "pool", "dropout")
CONV_TYPES: tuple[str, ...] = ("conv", "sepconv")

_STRICT = ConfigDict(extra="forbid")


def _odd_kernel(value: int) -> int:
    if value % 2 == 0:
        raise ValueError(
            f"kernel {value} is even; use an odd size (1, 3, 5, 7) so padding keeps the feature map size"
        )
    return value


class ConvLayer(BaseModel):
    """A standard convolution followed by normalisation and activation."""

    model_config = _STRICT

    type: Literal["conv"] = Field(description="Layer type: a standard KxK convolution.")
    channels: int = Field(ge=1, description="Number of output channels.")
    kernel: int = Field(
        default=3, ge=1, description="Odd kernel size K; padding K//2 keeps the size at stride 1."
    )
    stride: int = Field(default=1, ge=1, description="Stride; 2 halves the feature map (rounding up).")
    norm: Norm = Field(default="batch", description="Normalisation after the convolution.")
    activation: Activation = Field(default="relu", description="Activation after the normalisation.")
    residual: bool = Field(
        default=False,
        description="Add a skip connection around this layer; a 1x1 projection is used when shapes differ.",
    )

    @field_validator("kernel")
    @classmethod
    def _kernel_odd(cls, value: int) -> int:
        return _odd_kernel(value)


class SepConvLayer(BaseModel):
    """A depthwise-separable convolution: depthwise KxK, norm, activation, pointwise 1x1, norm, activation."""

    model_config = _STRICT

    type: Literal["sepconv"] = Field(
        description="Layer type: depthwise-separable convolution (depthwise KxK then pointwise 1x1)."
    )
    channels: int = Field(ge=1, description="Number of output channels (of the pointwise 1x1 convolution).")
    kernel: int = Field(default=3, ge=1, description="Odd kernel size K of the depthwise convolution.")
    stride: int = Field(default=1, ge=1, description="Stride of the depthwise convolution; 2 halves the map.")
    norm: Norm = Field(default="batch", description="Normalisation after each of the two convolutions.")
    activation: Activation = Field(default="relu", description="Activation after each normalisation.")
    residual: bool = Field(
        default=False,
        description="Add a skip connection around this layer; a 1x1 projection is used when shapes differ.",
    )

    @field_validator("kernel")
    @classmethod
    def _kernel_odd(cls, value: int) -> int:
        return _odd_kernel(value)


class PoolLayer(BaseModel):
    """Spatial pooling with window K and stride K (divides the feature map size by K, rounding down)."""

    model_config = _STRICT

    type: Literal["pool"] = Field(description="Layer type: spatial pooling.")
    mode: Literal["max", "avg"] = Field(default="max", description="Max or average pooling.")
    kernel: int = Field(default=2, ge=1, description="Window K and stride K; the map shrinks by a factor K.")


class DropoutLayer(BaseModel):
    """Dropout on feature maps (regularisation; inactive at inference)."""

    model_config = _STRICT

    type: Literal["dropout"] = Field(description="Layer type: dropout of feature-map elements.")
    p: float = Field(ge=0.0, lt=1.0, description="Probability of zeroing an element during training.")


Layer = Annotated[ConvLayer | SepConvLayer | PoolLayer | DropoutLayer, Field(discriminator="type")]


class Head(BaseModel):
    """The classifier: global pooling, then [Dropout] Linear activation per hidden width, then the output."""

    model_config = _STRICT

    pool: Literal["avg", "max"] = Field(default="avg", description="Global pooling of the last feature map.")
    hidden: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list, description="Widths of hidden fully connected layers, in order (may be empty)."
    )
    dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Dropout before every Linear layer of the head."
    )
    activation: Activation = Field(default="relu", description="Activation after each hidden layer.")


class ArchSpec(BaseModel):
    """A CNN for image classification: ``layers`` run in order on a 3-channel image, then ``head``."""

    model_config = ConfigDict(extra="forbid", title="ArchSpec")

    layers: list[Layer] = Field(
        min_length=1, description="Feature extractor, applied in order to the RGB input image."
    )
    head: Head = Field(default_factory=Head, description="Classifier on top of the last feature map.")

    def conv_count(self) -> int:
        """Number of conv and sepconv layers (what the Choices' layer limits count)."""
        return sum(1 for layer in self.layers if layer.type in CONV_TYPES)


EXAMPLE_SPEC_PATH = Path(__file__).with_name("example_spec.json")


def example_spec() -> ArchSpec:
    """A small valid network (about 50K parameters) in the DESIGN.md format (``example_spec.json``)."""
    return ArchSpec.model_validate_json(EXAMPLE_SPEC_PATH.read_text(encoding="utf-8"))


def spec_key(spec: ArchSpec | dict[str, Any]) -> str:
    """Canonical JSON (defaults filled in, keys sorted, no spaces): equal networks give equal keys."""
    if not isinstance(spec, ArchSpec):
        spec = ArchSpec.model_validate(spec)
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def spec_to_dict(spec: ArchSpec) -> dict[str, Any]:
    """The spec as a plain JSON-able dict with every default filled in."""
    return spec.model_dump(mode="json")


# -- schema errors as JSON paths and sentences (used by flnas.space.validate) -----------------------------

LAYER_ADAPTER: TypeAdapter[Any] = TypeAdapter(Layer)
_FIELDS = {
    "conv": "type, channels, kernel, stride, norm, activation, residual",
    "sepconv": "type, channels, kernel, stride, norm, activation, residual",
    "pool": "type, mode, kernel",
    "dropout": "type, p",
}
_LAYER_TYPES = "conv, sepconv, pool, dropout"


@dataclass(frozen=True)
class SpecIssue:
    """One problem: where (JSON path, ``$`` for the whole spec) and what to do about it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _path(prefix: str, loc: tuple[Any, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "$"


def schema_issues(exc: ValidationError, prefix: str, data: Any, *, is_layer: bool) -> list[SpecIssue]:
    """Convert pydantic errors to SpecIssues with JSON paths and plain sentences."""
    issues = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        kind = err["type"]
        if is_layer and loc and loc[0] in _FIELDS:  # drop the discriminator tag pydantic inserts
            loc = loc[1:]
        path = _path(prefix, loc)
        value = err.get("input")
        msg = str(err["msg"]).removeprefix("Value error, ")
        if kind == "union_tag_invalid":
            path = _path(prefix, ("type",))
            msg = f"{json_value(value.get('type'))} is not a layer type; use one of {_LAYER_TYPES}"
        elif kind == "union_tag_not_found":
            msg = f"the layer has no 'type'; add \"type\" with one of {_LAYER_TYPES}"
        elif kind == "extra_forbidden":
            layer_type = data.get("type") if isinstance(data, dict) else None
            allowed = _FIELDS.get(layer_type) if is_layer else ", ".join(Head.model_fields)
            msg = (
                f"unknown field; remove it (allowed fields: {allowed})"
                if allowed
                else "unknown field; remove it"
            )
        elif kind == "missing":
            msg = "required field is missing"
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            msg = f"{json_value(value)} is not allowed; use one of {expected}"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            msg = f"must be a JSON object, got {type(value).__name__}"
        elif kind in (
            "int_type",
            "int_parsing",
            "int_from_float",
            "float_type",
            "float_parsing",
            "bool_type",
            "bool_parsing",
            "list_type",
        ) or kind.startswith(("greater", "less", "too_")):
            msg = f"{msg} (got {json_value(value)})"
        issues.append(SpecIssue(path, msg))
    return issues


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


_MAX_SHOWN = 120  # characters of a value quoted in a message; the rest is summarised by its size


def json_value(value: Any) -> str:
    """``value`` as it would appear in the JSON (strings quoted), for messages; a huge value is cut short."""
    text = json.dumps(value) if _is_json(value) else repr(value)
    if len(text) <= _MAX_SHOWN:
        return text
    return f"{text[:_MAX_SHOWN]}... ({len(text):,} characters)"


_JSON_KINDS = {list: "a JSON array", str: "a JSON string", bool: "a JSON boolean", int: "a JSON number",
               float: "a JSON number", type(None): "JSON null"}


def read_spec_file(path: str | Path, *, what: str = "spec file") -> dict[str, Any]:
    """The architecture in a JSON file, as a dict (validation is :func:`flnas.space.validate_spec`'s job).

    A UTF-8 byte-order mark is accepted, as in the CSV files. Every problem is one :class:`SpecError`
    sentence naming the file: not found, not UTF-8 text, not JSON (with line and column), nested too deeply,
    or JSON that is not an object (a quoted string holding an architecture says so).
    """
    from flnas.errors import SpecError

    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: {what} not found")
    if not path.is_file():
        raise SpecError(f"{path}: {what} is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SpecError(f"{path}: {what} is not UTF-8 text; give the architecture as a JSON file") from None
    except OSError as exc:
        raise SpecError(f"{path}: {what} cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{path}: {what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise SpecError(f"{path}: {what} holds JSON nested too deeply to be an architecture") from None
    if isinstance(data, dict):
        return data
    hint = ""
    if isinstance(data, str):
        try:
            quoted_object = isinstance(json.loads(data), dict)
        except (json.JSONDecodeError, RecursionError):
            quoted_object = False
        if quoted_object:
            hint = " (it holds an architecture written as a quoted string: write the object itself)"
    raise SpecError(
        f"{path}: {what} holds {_JSON_KINDS.get(type(data), 'a JSON value')}, not an object; an architecture is "
        f'a JSON object with keys "layers" and "head"{hint}'
    )
