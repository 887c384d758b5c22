"""Check a proposed architecture against the Template, the Choices and the input size, all at once.

Every problem becomes a :class:`SpecIssue` with a JSON path (``layers[3].kernel``) and one sentence an LLM
can act on. The checks, in order: JSON syntax; absurd nesting depth or list lengths (such a spec is refused
at once, with only these problems); the schema (each layer and the head on its own, so one bad
layer does not hide the others); values outside the Choices; layer counts; the feature-map size walked
layer by layer at the input size; the parameter (and optional FLOPs) budget, counted from the spec; and a
dry-run forward of a zero image through the built model that must give shape ``(1, num_classes)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from flnas.errors import SpecError
from flnas.space.choices import Choices
from flnas.space.cost import check_budgets, spec_cost
from flnas.space.files import MAX_DEPTH, TooDeepError, json_depth, loads_bounded
from flnas.space.spec import (
    CONV_TYPES,
    LAYER_ADAPTER,
    ArchSpec,
    Head,
    SpecIssue,
    json_value,
    schema_issues,
)

# Above these the CPU dry run is skipped (too slow or too big to be worth it; the budgets report them).
DRY_RUN_MAX_PARAMS = 100_000_000
DRY_RUN_MAX_FLOPS = 20_000_000_000


@dataclass
class ValidationResult:
    """The parsed spec (None when the schema rejects it) and every problem found."""

    spec: ArchSpec | None
    errors: list[SpecIssue] = field(default_factory=list)
    params: int | None = None  # computed when the spec builds
    flops: int | None = None  # computed when the spec builds (2 x multiply-adds, one image)

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.errors

    def messages(self) -> list[str]:
        """Each problem as ``"path: message"``."""
        return [str(issue) for issue in self.errors]

    def raise_if_invalid(self, source: str = "spec") -> ArchSpec:
        """Return the spec, or raise SpecError listing every problem."""
        if self.ok:
            assert self.spec is not None
            return self.spec
        n = len(self.errors)
        raise SpecError(f"{source}: {n} problem{'s' if n != 1 else ''}: " + "; ".join(self.messages()))


def _join(values: Any) -> str:
    return ", ".join(str(v) for v in values)


def _not_allowed(path: str, value: Any, allowed: list[Any], what: str = "") -> SpecIssue:
    return SpecIssue(
        path, f"{what}{json_value(value)} is not allowed by the Choices; choose one of {_join(allowed)}"
    )


def _conv_choices(choices: Choices) -> list[tuple[str, Any]]:
    """(field, allowed values) for every Choices-restricted field of a conv or sepconv layer."""
    return [
        ("channels", choices.channels),
        ("kernel", choices.kernels),
        ("stride", choices.strides),
        ("norm", choices.norms),
        ("activation", choices.activations),
    ]


def _check_layer(i: int, layer: Any, choices: Choices) -> list[SpecIssue]:
    p = f"layers[{i}]"
    issues = []
    if layer.type not in choices.layer_types:
        issues.append(_not_allowed(f"{p}.type", layer.type, choices.layer_types, "layer type "))
    if layer.type in CONV_TYPES:
        for name, allowed in _conv_choices(choices):
            if getattr(layer, name) not in allowed:
                issues.append(_not_allowed(f"{p}.{name}", getattr(layer, name), allowed))
        if layer.residual and not choices.residual:
            issues.append(
                SpecIssue(
                    f"{p}.residual",
                    "residual connections are not allowed by the Choices; set residual to false",
                )
            )
    elif layer.type == "pool":
        if layer.mode not in choices.pool_modes:
            issues.append(_not_allowed(f"{p}.mode", layer.mode, choices.pool_modes))
        if layer.kernel not in choices.pool_kernels:
            issues.append(_not_allowed(f"{p}.kernel", layer.kernel, choices.pool_kernels))
    elif layer.type == "dropout" and not choices.dropout_min <= layer.p <= choices.dropout_max:
        issues.append(
            SpecIssue(
                f"{p}.p",
                f"{layer.p} is outside the Choices' dropout range; "
                f"use a value from {choices.dropout_min} to {choices.dropout_max}",
            )
        )
    return issues


def _check_raw_layer(i: int, item: Any, choices: Choices, bad_paths: set[str]) -> list[SpecIssue]:
    """Choices checks on the well-formed fields of a layer the schema rejected (so nothing is hidden)."""
    if not isinstance(item, dict) or item.get("type") not in CONV_TYPES:
        return []
    issues = []
    for name, allowed in _conv_choices(choices):
        path = f"layers[{i}].{name}"
        value = item.get(name)
        if value is None or path in bad_paths or isinstance(value, bool | dict | list):
            continue
        if value not in allowed:
            issues.append(_not_allowed(path, value, allowed))
    return issues


def _check_raw_head(item: Any, choices: Choices, bad_paths: set[str]) -> list[SpecIssue]:
    """Choices checks on the hidden widths of a head the schema rejected."""
    hidden = item.get("hidden") if isinstance(item, dict) else None
    if not isinstance(hidden, list) or any(p.startswith("head.hidden") for p in bad_paths):
        return []
    if not all(isinstance(w, int) and not isinstance(w, bool) for w in hidden):
        return []
    return _hidden_issues(hidden, choices)


def _hidden_issues(hidden: list[int], choices: Choices) -> list[SpecIssue]:
    issues = []
    if len(hidden) > choices.max_head_layers:
        msg = f"{len(hidden)} hidden layers is more than the Choices' maximum of {choices.max_head_layers}"
        issues.append(SpecIssue("head.hidden", msg + "; remove some"))
    for j, width in enumerate(hidden):
        if width not in choices.head_hidden:
            issues.append(_not_allowed(f"head.hidden[{j}]", width, choices.head_hidden))
    return issues


def _check_head(head: Head, choices: Choices) -> list[SpecIssue]:
    issues = []
    if head.pool not in choices.head_pools:
        issues.append(_not_allowed("head.pool", head.pool, choices.head_pools))
    issues.extend(_hidden_issues(head.hidden, choices))
    if not choices.dropout_min <= head.dropout <= choices.dropout_max:
        issues.append(
            SpecIssue(
                "head.dropout",
                f"{head.dropout} is outside the Choices' dropout range; "
                f"use a value from {choices.dropout_min} to {choices.dropout_max}",
            )
        )
    if head.hidden and head.activation not in choices.activations:
        issues.append(_not_allowed("head.activation", head.activation, choices.activations))
    return issues


def _check_counts(raw_layers: list[Any], choices: Choices) -> list[SpecIssue]:
    n_conv = sum(1 for item in raw_layers if isinstance(item, dict) and item.get("type") in CONV_TYPES)
    issues = []
    if n_conv < choices.min_layers:
        issues.append(
            SpecIssue(
                "layers",
                f"{n_conv} conv/sepconv layers is fewer than the Choices' minimum of "
                f"{choices.min_layers}; add conv or sepconv layers",
            )
        )
    if n_conv > choices.max_layers:
        issues.append(
            SpecIssue(
                "layers",
                f"{n_conv} conv/sepconv layers is more than the Choices' maximum of "
                f"{choices.max_layers}; remove conv or sepconv layers",
            )
        )
    if len(raw_layers) > choices.max_total_layers:
        issues.append(
            SpecIssue(
                "layers",
                f"{len(raw_layers)} layers in total is more than the Choices' maximum "
                f"of {choices.max_total_layers}; remove pool, dropout or conv layers",
            )
        )
    return issues


def check_shapes(spec: ArchSpec, image_size: int) -> list[SpecIssue]:
    """Walk the feature-map size; report layers that cannot shrink it further or need more than 1x1."""
    issues = []
    size = image_size
    at = f"at input size {image_size}"
    for i, layer in enumerate(spec.layers):
        if layer.type in CONV_TYPES:
            if layer.stride > 1 and size < layer.stride:
                issues.append(
                    SpecIssue(
                        f"layers[{i}]",
                        f"stride {layer.stride} would shrink the {size}x{size} "
                        f"feature map below 1x1 {at}; use stride 1 or remove an earlier "
                        "downsampling layer",
                    )
                )
            size = (size - 1) // layer.stride + 1
            if layer.norm == "instance" and size == 1:
                issues.append(
                    SpecIssue(
                        f"layers[{i}].norm",
                        f"instance norm needs a feature map larger than 1x1 "
                        f"but it is 1x1 here {at}; use batch, group or layer norm, or "
                        "downsample less",
                    )
                )
        elif layer.type == "pool":
            if size < layer.kernel:
                issues.append(
                    SpecIssue(
                        f"layers[{i}]",
                        f"pool kernel {layer.kernel} would shrink the "
                        f"{size}x{size} feature map below 1x1 {at}; remove this pool or an "
                        "earlier downsampling layer",
                    )
                )
            size = max(1, size // layer.kernel)
    return issues


def dry_run(spec: ArchSpec, num_classes: int, image_size: int) -> tuple[int, ...]:
    """Run a 1x3xSxS zero image through the built model (eval mode) and return the output shape.

    The model is built on the meta device and moved to uninitialised CPU memory that is then zeroed,
    which skips weight initialisation; only the shapes matter here.
    """
    import torch

    from flnas.space.build import build_model

    with torch.device("meta"):
        model = build_model(spec, num_classes)
    model = model.to_empty(device="cpu").eval()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.zero_()
        out = model(torch.zeros(1, 3, image_size, image_size))
    return tuple(out.shape)


def _absurd(n: int, limit: int) -> bool:
    """Far over a list limit: not worth checking item by item (a little over still gets every problem)."""
    return n > max(2 * limit, limit + 8)


def size_issues(raw: Any, choices: Choices) -> list[SpecIssue]:
    """Problems found without looking inside a single layer: absurd nesting depth or list lengths.

    Checked first, in microseconds, so that an absurd spec (10,000 layers, 20,000 hidden widths, JSON nested
    thousands deep) is refused at once instead of after validating and building every layer. A list only a
    little over its limit is left to the full validation, which lists every problem at once.
    """
    if json_depth(raw, MAX_DEPTH) > MAX_DEPTH:
        return [SpecIssue("$", f"nested more than {MAX_DEPTH} levels deep; an architecture needs 4")]
    if not isinstance(raw, dict):
        return []
    issues = []
    layers = raw.get("layers")
    if isinstance(layers, list) and _absurd(len(layers), choices.max_total_layers):
        issues.append(
            SpecIssue(
                "layers",
                f"{len(layers)} layers in total is more than the Choices' maximum "
                f"of {choices.max_total_layers}; remove pool, dropout or conv layers",
            )
        )
    head = raw.get("head")
    hidden = head.get("hidden") if isinstance(head, dict) else None
    if isinstance(hidden, list) and _absurd(len(hidden), choices.max_head_layers):
        msg = f"{len(hidden)} hidden layers is more than the Choices' maximum of {choices.max_head_layers}"
        issues.append(SpecIssue("head.hidden", msg + "; remove some"))
    return issues


def _parse(data: dict | str | ArchSpec) -> tuple[Any, list[SpecIssue]]:
    if isinstance(data, ArchSpec):
        return data.model_dump(mode="json"), []
    if isinstance(data, str | bytes):
        try:
            data = loads_bounded(data)
        except TooDeepError as exc:
            return None, [SpecIssue("$", f"{exc}; reply with one JSON object")]
        except json.JSONDecodeError as exc:
            return None, [
                SpecIssue(
                    "$",
                    f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                    "reply with one JSON object",
                )
            ]
    if not isinstance(data, dict):
        return None, [
            SpecIssue(
                "$",
                f'the architecture must be a JSON object with keys "layers" and "head", '
                f"got {type(data).__name__}",
            )
        ]
    return data, []


def validate_spec(
    data: dict | str | ArchSpec,
    choices: Choices,
    *,
    image_size: int,
    num_classes: int,
    dry_run_forward: bool = True,
) -> ValidationResult:
    """Check ``data`` against the Template, the Choices and the input size; report every problem.

    ``dry_run_forward=False`` skips the forward pass (the analytic shape walk, which the tests show agrees
    with the real forward, still runs); the mutations use it to check many candidates quickly.
    """
    raw, issues = _parse(data)
    if raw is None:
        return ValidationResult(None, issues)
    too_big = size_issues(raw, choices)
    if too_big:
        return ValidationResult(None, too_big)
    for key in raw:
        if key not in ("layers", "head"):
            issues.append(SpecIssue(str(key), 'unknown field; the architecture has only "layers" and "head"'))
    raw_layers = raw.get("layers")
    layers: list[Any] = []
    schema_ok = True
    if raw_layers is None:
        issues.append(SpecIssue("layers", "required field is missing; give a list of layers"))
        schema_ok = False
        raw_layers = []
    elif not isinstance(raw_layers, list):
        issues.append(SpecIssue("layers", f"must be a list of layers, got {type(raw_layers).__name__}"))
        schema_ok = False
        raw_layers = []
    elif not raw_layers:
        issues.append(SpecIssue("layers", "must contain at least one layer"))
        schema_ok = False
    for i, item in enumerate(raw_layers):
        try:
            layer = LAYER_ADAPTER.validate_python(item)
        except ValidationError as exc:
            layer_issues = schema_issues(exc, f"layers[{i}]", item, is_layer=True)
            issues.extend(layer_issues)
            issues.extend(_check_raw_layer(i, item, choices, {issue.path for issue in layer_issues}))
            schema_ok = False
            continue
        layers.append(layer)
        issues.extend(_check_layer(i, layer, choices))
    head = None
    try:
        head = Head.model_validate(raw.get("head", {}))
    except ValidationError as exc:
        head_issues = schema_issues(exc, "head", raw.get("head"), is_layer=False)
        issues.extend(head_issues)
        issues.extend(_check_raw_head(raw.get("head"), choices, {issue.path for issue in head_issues}))
        schema_ok = False
    if head is not None:
        issues.extend(_check_head(head, choices))
    issues.extend(_check_counts(raw_layers, choices))
    if not schema_ok or head is None:
        return ValidationResult(None, issues)
    spec = ArchSpec(layers=layers, head=head)
    shape_issues = check_shapes(spec, image_size)
    issues.extend(shape_issues)
    cost = spec_cost(spec, num_classes, image_size)
    result = ValidationResult(spec, issues, params=cost["params"], flops=cost["flops"])
    issues.extend(check_budgets(cost, choices, image_size))
    small = cost["params"] <= DRY_RUN_MAX_PARAMS and cost["flops"] <= DRY_RUN_MAX_FLOPS
    if dry_run_forward and not shape_issues and small:
        try:
            shape = dry_run(spec, num_classes, image_size)
        except Exception as exc:  # noqa: BLE001 - any failure of the dry run is a problem of the spec
            msg = f"the network fails on a 1x3x{image_size}x{image_size} input ({type(exc).__name__}: {exc})"
            issues.append(SpecIssue("$", msg))
        else:
            if shape != (1, num_classes):
                issues.append(SpecIssue("$", f"the output shape is {shape}, expected (1, {num_classes})"))
    return result
