"""Random architectures and small edits (mutations) inside the Choices, for non-LLM designers.

Each mutation names one edit the paper's prompt allows ("insert or remove convolutional layers, use
different normalization methods, regularization methods, and try different sizes of kernel"). Every
result is checked with :func:`~flnas.space.validate.validate_spec`; a mutation either returns a valid spec
that differs from its input or raises :class:`~flnas.errors.SpecError` saying why it cannot.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from flnas.errors import SpecError
from flnas.space.choices import Choices
from flnas.space.spec import CONV_TYPES, ArchSpec, spec_key
from flnas.space.validate import ValidationResult, validate_spec

MUTATIONS: tuple[str, ...] = (
    "add_layer",
    "remove_layer",
    "change_kernel",
    "change_channels",
    "change_norm",
    "change_activation",
    "change_stride",
    "toggle_residual",
    "change_dropout",
    "change_head",
)

Spec = dict[str, Any]


class _Impossible(Exception):
    """This mutation cannot apply to this spec under these Choices (not worth retrying)."""


def _pick(rng: np.random.Generator, values: list[Any] | tuple[Any, ...]) -> Any:
    return values[int(rng.integers(len(values)))]


def _conv_indices(spec: Spec) -> list[int]:
    return [i for i, layer in enumerate(spec["layers"]) if layer["type"] in CONV_TYPES]


def _random_dropout(choices: Choices, rng: np.random.Generator) -> float:
    value = round(float(rng.uniform(choices.dropout_min, choices.dropout_max)), 2)
    return min(max(value, choices.dropout_min), choices.dropout_max)


def _random_conv(choices: Choices, rng: np.random.Generator, max_stride: int | None = None) -> Spec:
    types = [t for t in CONV_TYPES if t in choices.layer_types]
    strides = [s for s in choices.strides if max_stride is None or s <= max_stride] or [min(choices.strides)]
    return {
        "type": _pick(rng, types),
        "channels": int(_pick(rng, choices.channels)),
        "kernel": int(_pick(rng, choices.kernels)),
        "stride": int(_pick(rng, strides)),
        "norm": _pick(rng, choices.norms),
        "activation": _pick(rng, choices.activations),
        "residual": bool(choices.residual and rng.random() < 0.5),
    }


def _random_head(choices: Choices, rng: np.random.Generator) -> Spec:
    n_hidden = int(rng.integers(choices.max_head_layers + 1)) if choices.head_hidden else 0
    return {
        "pool": _pick(rng, choices.head_pools),
        "hidden": [int(_pick(rng, choices.head_hidden)) for _ in range(n_hidden)],
        "dropout": _random_dropout(choices, rng),
        "activation": _pick(rng, choices.activations),
    }


def _add_layer(spec: Spec, choices: Choices, rng: np.random.Generator) -> Spec:
    n_conv = len(_conv_indices(spec))
    if n_conv >= choices.max_layers:
        raise _Impossible(f"the spec already has the maximum of {choices.max_layers} conv/sepconv layers")
    if len(spec["layers"]) >= choices.max_total_layers:
        raise _Impossible(f"the spec already has the maximum of {choices.max_total_layers} layers in total")
    spec["layers"].insert(int(rng.integers(len(spec["layers"]) + 1)), _random_conv(choices, rng))
    return spec


def _remove_layer(spec: Spec, choices: Choices, rng: np.random.Generator) -> Spec:
    conv = _conv_indices(spec)
    removable = [i for i, layer in enumerate(spec["layers"]) if layer["type"] not in CONV_TYPES]
    if len(conv) > choices.min_layers:
        removable += conv
    if not removable or len(spec["layers"]) <= 1:
        raise _Impossible(
            f"the spec already has the minimum of {choices.min_layers} conv/sepconv layers "
            "and no pool or dropout layer to remove"
        )
    del spec["layers"][_pick(rng, removable)]
    return spec


def _change_field(
    name: str, allowed: list[Any], what: str
) -> Callable[[Spec, Choices, np.random.Generator], Spec]:
    """A mutation that gives one conv/sepconv layer a different value of ``name`` from the Choices."""

    def op(spec: Spec, choices: Choices, rng: np.random.Generator) -> Spec:
        values = list(getattr(choices, allowed))
        targets = [i for i in _conv_indices(spec) if any(v != spec["layers"][i][name] for v in values)]
        if not _conv_indices(spec):
            raise _Impossible("the spec has no conv or sepconv layer")
        if not targets:
            raise _Impossible(f"the Choices allow only {what} {', '.join(map(str, values))}")
        i = _pick(rng, targets)
        spec["layers"][i][name] = _pick(rng, [v for v in values if v != spec["layers"][i][name]])
        return spec

    return op


def _toggle_residual(spec: Spec, choices: Choices, rng: np.random.Generator) -> Spec:
    if not choices.residual:
        raise _Impossible("the Choices do not allow residual connections")
    conv = _conv_indices(spec)
    if not conv:
        raise _Impossible("the spec has no conv or sepconv layer")
    i = _pick(rng, conv)
    spec["layers"][i]["residual"] = not spec["layers"][i]["residual"]
    return spec


def _change_dropout(spec: Spec, choices: Choices, rng: np.random.Generator) -> Spec:
    if choices.dropout_min == choices.dropout_max:
        raise _Impossible(f"the Choices fix every dropout probability at {choices.dropout_min}")
    targets = [i for i, layer in enumerate(spec["layers"]) if layer["type"] == "dropout"]
    i = _pick(rng, [*targets, None])
    holder = spec["head"] if i is None else spec["layers"][i]
    key = "dropout" if i is None else "p"
    holder[key] = _random_dropout(choices, rng)
    return spec


def _change_head(spec: Spec, choices: Choices, rng: np.random.Generator) -> Spec:
    head = spec["head"]
    hidden = head["hidden"]
    edits = []
    if any(p != head["pool"] for p in choices.head_pools):
        edits.append("pool")
    if hidden and any(a != head["activation"] for a in choices.activations):
        edits.append("activation")
    if len(hidden) < choices.max_head_layers and choices.head_hidden:
        edits.append("add")
    if hidden:
        edits.append("remove")
    if hidden and len(choices.head_hidden) > 1:
        edits.append("width")
    if not edits:
        raise _Impossible("the Choices allow no other head")
    edit = _pick(rng, edits)
    if edit == "pool":
        head["pool"] = _pick(rng, [p for p in choices.head_pools if p != head["pool"]])
    elif edit == "activation":
        head["activation"] = _pick(rng, [a for a in choices.activations if a != head["activation"]])
    elif edit == "add":
        hidden.insert(int(rng.integers(len(hidden) + 1)), int(_pick(rng, choices.head_hidden)))
    elif edit == "remove":
        del hidden[int(rng.integers(len(hidden)))]
    else:
        j = int(rng.integers(len(hidden)))
        hidden[j] = int(_pick(rng, [w for w in choices.head_hidden if w != hidden[j]]))
    return spec


_OPS: dict[str, Callable[[Spec, Choices, np.random.Generator], Spec]] = {
    "add_layer": _add_layer,
    "remove_layer": _remove_layer,
    "change_kernel": _change_field("kernel", "kernels", "kernel"),
    "change_channels": _change_field("channels", "channels", "channels"),
    "change_norm": _change_field("norm", "norms", "norm"),
    "change_activation": _change_field("activation", "activations", "activation"),
    "change_stride": _change_field("stride", "strides", "stride"),
    "toggle_residual": _toggle_residual,
    "change_dropout": _change_dropout,
    "change_head": _change_head,
}


def _check(
    candidate: Spec, choices: Choices, image_size: int, num_classes: int, dry: bool
) -> ValidationResult:
    return validate_spec(
        candidate, choices, image_size=image_size, num_classes=num_classes, dry_run_forward=dry
    )


def _apply(
    kind: str,
    spec: ArchSpec,
    choices: Choices,
    rng: np.random.Generator,
    *,
    image_size: int,
    num_classes: int,
    max_tries: int,
    dry_run_forward: bool,
) -> ArchSpec:
    base = spec.model_dump(mode="json")
    key = spec_key(spec)
    last = "every variant equalled the input"
    for _ in range(max_tries):
        try:
            candidate = _OPS[kind](copy.deepcopy(base), choices, rng)
        except _Impossible as exc:
            raise SpecError(f"{kind}: {exc}") from None
        result = _check(candidate, choices, image_size, num_classes, dry_run_forward)
        if result.ok and result.spec is not None and spec_key(result.spec) != key:
            return result.spec
        if result.errors:
            last = str(result.errors[0])
    raise SpecError(f"{kind}: no valid variant found in {max_tries} tries (last problem: {last})")


def mutate(
    spec: ArchSpec | dict,
    choices: Choices,
    rng: np.random.Generator,
    *,
    image_size: int,
    num_classes: int,
    kind: str | None = None,
    max_tries: int = 30,
    dry_run_forward: bool = False,
) -> ArchSpec:
    """A valid spec that differs from ``spec`` by one edit (``kind``, or a random applicable one).

    Raises SpecError naming the mutation and why when no valid variant exists (e.g. the minimum layer
    count is reached). Validation as in :func:`random_spec`.
    """
    if not isinstance(spec, ArchSpec):
        spec = ArchSpec.model_validate(spec)
    if kind is not None and kind not in _OPS:
        raise SpecError(f"unknown mutation {kind!r}; use one of {', '.join(MUTATIONS)}")
    kinds = [kind] if kind is not None else [MUTATIONS[i] for i in rng.permutation(len(MUTATIONS))]
    reasons = []
    for name in kinds:
        try:
            return _apply(
                name,
                spec,
                choices,
                rng,
                image_size=image_size,
                num_classes=num_classes,
                max_tries=max_tries,
                dry_run_forward=dry_run_forward,
            )
        except SpecError as exc:
            reasons.append(str(exc))
    if len(reasons) == 1:
        raise SpecError(reasons[0])
    reasons.sort(key=lambda reason: MUTATIONS.index(reason.split(":")[0]))
    raise SpecError("no mutation gives a valid spec: " + "; ".join(reasons))


def random_spec(
    choices: Choices,
    rng: np.random.Generator,
    *,
    image_size: int,
    num_classes: int,
    max_tries: int = 200,
    dry_run_forward: bool = False,
) -> ArchSpec:
    """A valid spec drawn uniformly from the Choices (strides and pools kept within the feature map).

    Candidates are checked with :func:`validate_spec`; the forward dry run is skipped unless
    ``dry_run_forward`` (the analytic shape walk agrees with it, see tests/test_space_mutate.py).
    """
    last = ""
    for _ in range(max_tries):
        n_conv = int(rng.integers(choices.min_layers, choices.max_layers + 1))
        room = max(0, choices.max_total_layers - n_conv)
        n_pool = min(room, int(rng.integers(3))) if "pool" in choices.layer_types else 0
        n_drop = min(room - n_pool, int(rng.integers(2))) if "dropout" in choices.layer_types else 0
        slots = ["conv"] * n_conv + ["pool"] * n_pool + ["dropout"] * n_drop
        slots = [slots[i] for i in rng.permutation(len(slots))]
        layers: list[Spec] = []
        size = image_size
        for slot in slots:
            if slot == "conv":
                layer = _random_conv(choices, rng, max_stride=size)
                size = (size - 1) // layer["stride"] + 1
            elif slot == "pool":
                kernels = [k for k in choices.pool_kernels if k <= size]
                if not kernels:
                    continue
                layer = {
                    "type": "pool",
                    "mode": _pick(rng, choices.pool_modes),
                    "kernel": int(_pick(rng, kernels)),
                }
                size //= layer["kernel"]
            else:
                layer = {"type": "dropout", "p": _random_dropout(choices, rng)}
            layers.append(layer)
        candidate = {"layers": layers, "head": _random_head(choices, rng)}
        result = _check(candidate, choices, image_size, num_classes, dry_run_forward)
        if result.ok and result.spec is not None:
            return result.spec
        last = str(result.errors[0]) if result.errors else ""
    raise SpecError(
        f"random_spec: no valid spec found in {max_tries} tries under these Choices (last problem: {last})"
    )
