"""The Template narrowed by the Choices: the JSON Schema an LLM is shown and decoded against.

``ArchSpec.model_json_schema()`` says what a field *is* (an integer, one of five norms); a study's Choices
say which values it may *take* (channels 8..256 from a list, kernels 1/3/5/7, at most 20 conv layers).
:func:`choices_schema` writes the Choices into the schema -- enums for every listed value, numeric bounds
for dropout, ``minItems``/``maxItems`` for the layer list and the head -- so that a server with
grammar-constrained decoding (llama.cpp, vLLM, Ollama, OpenAI) cannot emit a value outside them, and the
prompt shows one document instead of a schema plus a separate range. What a JSON Schema cannot express
(the feature-map size at the input size, the parameter and FLOPs budgets, the number of conv layers
among pools and dropouts) stays in :func:`flnas.space.validate.validate_spec`, with the same messages.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from flnas.space.choices import Choices
from flnas.space.spec import ArchSpec

__all__ = ["choices_schema", "template_schema"]

_LAYER_DEFS = {"conv": "ConvLayer", "sepconv": "SepConvLayer", "pool": "PoolLayer", "dropout": "DropoutLayer"}


@lru_cache(maxsize=1)
def _base() -> dict[str, Any]:
    return {**_strip_titles(ArchSpec.model_json_schema()), "title": "ArchSpec"}


def template_schema() -> dict[str, Any]:
    """The Template (ArchSpec's JSON Schema) without pydantic's per-field ``title`` noise; a fresh copy."""
    return copy.deepcopy(_base())


def _strip_titles(node: Any) -> Any:
    """Drop the ``title`` keywords pydantic adds to every field (they repeat the field name)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "title" and isinstance(value, str):
                continue
            # "properties" maps field names to schemas: a field called "title" would be kept
            out[key] = {k: _strip_titles(v) for k, v in value.items()} if key == "properties" else _strip_titles(value)
        return out
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def _enum(prop: dict[str, Any], values: list[Any]) -> None:
    """Restrict a property to ``values`` (kept in the Choices' order); bounds become redundant."""
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "const"):
        prop.pop(key, None)
    prop["enum"] = list(values)
    if "default" in prop and prop["default"] not in values:
        del prop["default"]


def _bounds(prop: dict[str, Any], low: float, high: float) -> None:
    """A closed numeric range [low, high] (the Choices' dropout range)."""
    prop.pop("exclusiveMaximum", None)
    prop.pop("exclusiveMinimum", None)
    prop["minimum"] = low
    prop["maximum"] = high
    if "default" in prop and not low <= prop["default"] <= high:
        del prop["default"]


def choices_schema(choices: Choices) -> dict[str, Any]:
    """ArchSpec's JSON Schema with the Choices written in (enums, ranges, list lengths); a new dict.

    Every value the schema allows passes the Choices' per-field checks of ``validate_spec``; the
    remaining checks (conv-layer count, feature-map size, budgets, the forward pass) are not expressible.
    """
    schema = template_schema()
    defs = schema["$defs"]
    for name in ("ConvLayer", "SepConvLayer"):
        props = defs[name]["properties"]
        _enum(props["channels"], choices.channels)
        _enum(props["kernel"], choices.kernels)
        _enum(props["stride"], choices.strides)
        _enum(props["norm"], choices.norms)
        _enum(props["activation"], choices.activations)
        if not choices.residual:
            _enum(props["residual"], [False])
    pool = defs["PoolLayer"]["properties"]
    _enum(pool["mode"], choices.pool_modes)
    _enum(pool["kernel"], choices.pool_kernels)
    _bounds(defs["DropoutLayer"]["properties"]["p"], choices.dropout_min, choices.dropout_max)

    head = defs["Head"]["properties"]
    _enum(head["pool"], choices.head_pools)
    if choices.head_hidden:
        _enum(head["hidden"]["items"], choices.head_hidden)
    head["hidden"]["maxItems"] = choices.max_head_layers
    _bounds(head["dropout"], choices.dropout_min, choices.dropout_max)
    _enum(head["activation"], choices.activations)

    layers = schema["properties"]["layers"]
    allowed = [t for t in _LAYER_DEFS if t in choices.layer_types]
    items = layers["items"]
    items["oneOf"] = [{"$ref": f"#/$defs/{_LAYER_DEFS[t]}"} for t in allowed]
    if "discriminator" in items:
        items["discriminator"]["mapping"] = {t: f"#/$defs/{_LAYER_DEFS[t]}" for t in allowed}
    for kind, name in _LAYER_DEFS.items():
        if kind not in allowed:
            del defs[name]
    layers["minItems"] = choices.min_layers
    layers["maxItems"] = choices.max_total_layers
    return schema
