"""One define-by-run encoding of the Choices for Optuna's samplers (``suggest_spec``) and its inverse.

``suggest_spec(trial, choices, image_size=...)`` asks an Optuna trial for every decision of an
architecture, in order, and returns the spec. The parameters:

- ``n_conv``: the number of conv/sepconv layers (``min_layers`` .. ``max_layers``);
- per conv layer ``i``: ``l{i}_type`` (conv/sepconv), ``l{i}_channels``, ``l{i}_kernel``, ``l{i}_stride``
  (indices into the sorted allowed values, so a model-based sampler sees their order), ``l{i}_norm``,
  ``l{i}_activation``, ``l{i}_residual`` (when the Choices allow residuals), and ``l{i}_after``: nothing,
  a pool (``l{i}_pool_mode``, ``l{i}_pool_kernel``) or a dropout layer (``l{i}_p``) after it;
- the head: ``head_pool``, ``head_n`` hidden layers with widths ``head_h{j}``, ``head_dropout``,
  ``head_activation``.

Parameters of layer ``i`` exist only when ``n_conv > i`` (define-by-run: TPE models them conditionally;
samplers that need a fixed space, such as GP, model the parameters every trial has and draw the rest with
their independent sampler). Decoding keeps the shapes possible at the input size: a stride larger than
the feature map is taken as 1 and a pool window larger than it is left out, as ``random_spec`` does; the
result is validated by the caller (budgets such as ``max_params`` can still rule it out).

``encode_spec(spec, choices, image_size=...)`` is the inverse for specs of this form (each conv layer
followed by at most one pool or dropout), so a designer can tell its sampler every earlier result of the
study (``optuna.trial.create_trial`` + ``study.add_trial``) after a restart. ``distributions(params,
choices, image_size=...)`` gives the distributions of those parameters.
"""

from __future__ import annotations

from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from flnas.space.choices import Choices

CONV_TYPES = ("conv", "sepconv")
NOTHING = "none"


def _ordered(values: list[Any]) -> list[Any]:
    return sorted(set(values))


def _extras(choices: Choices) -> list[str]:
    return [NOTHING, *(t for t in ("pool", "dropout") if t in choices.layer_types)]


def _dropout(trial: Any, name: str, choices: Choices) -> float:
    if choices.dropout_max <= choices.dropout_min:
        return float(choices.dropout_min)
    value = trial.suggest_float(name, choices.dropout_min, choices.dropout_max)
    return min(max(round(float(value), 2), choices.dropout_min), choices.dropout_max)


def suggest_spec(trial: Any, choices: Choices, *, image_size: int) -> dict[str, Any]:
    """The architecture an Optuna trial (or anything with its ``suggest_*`` methods) chooses."""
    conv_types = [t for t in CONV_TYPES if t in choices.layer_types]
    channels, kernels = _ordered(choices.channels), _ordered(choices.kernels)
    strides, pool_kernels = _ordered(choices.strides), _ordered(choices.pool_kernels)
    extras = _extras(choices)
    n_conv = trial.suggest_int("n_conv", choices.min_layers, min(choices.max_layers, choices.max_total_layers))
    layers: list[dict[str, Any]] = []
    size = image_size
    for i in range(n_conv):
        stride = strides[trial.suggest_int(f"l{i}_stride", 0, len(strides) - 1)]
        stride = stride if stride <= size else 1
        layers.append(
            {
                "type": trial.suggest_categorical(f"l{i}_type", conv_types),
                "channels": channels[trial.suggest_int(f"l{i}_channels", 0, len(channels) - 1)],
                "kernel": kernels[trial.suggest_int(f"l{i}_kernel", 0, len(kernels) - 1)],
                "stride": stride,
                "norm": trial.suggest_categorical(f"l{i}_norm", list(choices.norms)),
                "activation": trial.suggest_categorical(f"l{i}_activation", list(choices.activations)),
                "residual": bool(choices.residual)
                and bool(trial.suggest_categorical(f"l{i}_residual", [False, True])),
            }
        )
        size = (size - 1) // stride + 1
        after = trial.suggest_categorical(f"l{i}_after", extras) if len(extras) > 1 else NOTHING
        room = len(layers) + (n_conv - i - 1) < choices.max_total_layers
        if after == "pool":
            mode = trial.suggest_categorical(f"l{i}_pool_mode", list(choices.pool_modes))
            kernel = pool_kernels[trial.suggest_int(f"l{i}_pool_kernel", 0, len(pool_kernels) - 1)]
            if room and kernel <= size:
                layers.append({"type": "pool", "mode": mode, "kernel": kernel})
                size //= kernel
        elif after == "dropout":
            p = _dropout(trial, f"l{i}_p", choices)
            if room:
                layers.append({"type": "dropout", "p": p})
    hidden_widths = _ordered(choices.head_hidden)
    n_hidden = trial.suggest_int("head_n", 0, choices.max_head_layers) if hidden_widths else 0
    hidden = [
        hidden_widths[trial.suggest_int(f"head_h{j}", 0, len(hidden_widths) - 1)] for j in range(n_hidden)
    ]
    head = {
        "pool": trial.suggest_categorical("head_pool", list(choices.head_pools)),
        "hidden": hidden,
        "dropout": _dropout(trial, "head_dropout", choices),
        "activation": trial.suggest_categorical("head_activation", list(choices.activations)),
    }
    return {"layers": layers, "head": head}


class _Replay:
    """A stand-in trial that answers from ``params`` and records each parameter's distribution."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.distributions: dict[str, BaseDistribution] = {}

    def _get(self, name: str, distribution: BaseDistribution) -> Any:
        self.distributions[name] = distribution
        if name not in self.params:
            raise KeyError(name)
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return int(self._get(name, IntDistribution(low, high)))

    def suggest_float(self, name: str, low: float, high: float) -> float:
        return float(self._get(name, FloatDistribution(low, high)))

    def suggest_categorical(self, name: str, options: list[Any]) -> Any:
        return self._get(name, CategoricalDistribution(options))


def distributions(params: dict[str, Any], choices: Choices, *, image_size: int) -> dict[str, BaseDistribution]:
    """The distribution of each parameter in ``params`` (for ``optuna.trial.create_trial``)."""
    replay = _Replay(params)
    suggest_spec(replay, choices, image_size=image_size)
    return {name: d for name, d in replay.distributions.items() if name in params}


def encode_spec(spec: dict[str, Any], choices: Choices, *, image_size: int) -> dict[str, Any] | None:
    """Parameters for which :func:`suggest_spec` gives ``spec`` back; None when it has another form."""
    channels, kernels = _ordered(choices.channels), _ordered(choices.kernels)
    strides, pool_kernels = _ordered(choices.strides), _ordered(choices.pool_kernels)
    hidden_widths = _ordered(choices.head_hidden)
    layers, head = list(spec.get("layers") or []), dict(spec.get("head") or {})
    params: dict[str, Any] = {}
    i = 0
    try:
        j = 0
        while j < len(layers):
            layer = layers[j]
            if layer.get("type") not in CONV_TYPES:
                return None  # an extra layer before the first conv, or two in a row
            params.update(
                {
                    f"l{i}_type": layer["type"],
                    f"l{i}_channels": channels.index(layer["channels"]),
                    f"l{i}_kernel": kernels.index(layer.get("kernel", 3)),
                    f"l{i}_stride": strides.index(layer.get("stride", 1)),
                    f"l{i}_norm": layer.get("norm", "batch"),
                    f"l{i}_activation": layer.get("activation", "relu"),
                }
            )
            if choices.residual:
                params[f"l{i}_residual"] = bool(layer.get("residual", False))
            nxt = layers[j + 1] if j + 1 < len(layers) else None
            if nxt is not None and nxt.get("type") == "pool":
                params[f"l{i}_after"] = "pool"
                params[f"l{i}_pool_mode"] = nxt.get("mode", "max")
                params[f"l{i}_pool_kernel"] = pool_kernels.index(nxt["kernel"])
                j += 1
            elif nxt is not None and nxt.get("type") == "dropout":
                params[f"l{i}_after"] = "dropout"
                if choices.dropout_max > choices.dropout_min:
                    params[f"l{i}_p"] = float(nxt["p"])
                j += 1
            elif len(_extras(choices)) > 1:
                params[f"l{i}_after"] = NOTHING
            i += 1
            j += 1
        params["n_conv"] = i
        hidden = list(head.get("hidden") or [])
        if hidden_widths:
            params["head_n"] = len(hidden)
            params.update({f"head_h{k}": hidden_widths.index(w) for k, w in enumerate(hidden)})
        elif hidden:
            return None
        params["head_pool"] = head.get("pool", "avg")
        if choices.dropout_max > choices.dropout_min:
            params["head_dropout"] = float(head.get("dropout", 0.0))
        params["head_activation"] = head.get("activation", "relu")
    except (ValueError, KeyError, TypeError):  # a value outside the Choices
        return None
    try:
        back = suggest_spec(_Replay(params), choices, image_size=image_size)
    except (KeyError, ValueError):
        return None
    return params if _same(back, spec) else None


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    from flnas.space.spec import spec_key

    try:
        return spec_key(a) == spec_key(b)
    except Exception:  # noqa: BLE001 - a spec that does not even parse is simply not the same
        return False
