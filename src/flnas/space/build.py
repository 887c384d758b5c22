"""Turn an :class:`~flnas.space.spec.ArchSpec` into a PyTorch module.

The network is ``features`` (one entry per spec layer) then ``head``; both are ``nn.Sequential`` so the
structure reads like the spec and exports to ONNX without data-dependent control flow.

Rules (also in docs/space.md):

- conv: ``Conv2d(k, stride, padding=k//2)`` -> norm -> activation; the convolution has a bias only when
  norm is "none". sepconv: depthwise ``Conv2d(groups=C_in)`` -> norm -> activation -> pointwise 1x1 ->
  norm -> activation.
- residual: ``act(body(x) + shortcut(x))`` where body is the layer without its last activation
  (ResNet's post-activation form). The shortcut is the identity when channels and stride are unchanged,
  otherwise a 1x1 convolution with the layer's stride followed by the layer's norm (a projection).
- norms: batch = BatchNorm2d; group = GroupNorm(gcd(8, C), C); instance = InstanceNorm2d(C, affine=True);
  layer = GroupNorm(1, C) (normalises over channels and space of each sample); none = nothing.
- pool: MaxPool2d/AvgPool2d with window K and stride K. dropout: nn.Dropout(p).
- head: global avg/max pool -> flatten -> for each hidden width: [Dropout(p)] -> Linear -> activation;
  then [Dropout(p)] -> Linear(num_classes). Dropout modules appear only when p > 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from flnas.space.spec import ArchSpec, ConvLayer, DropoutLayer, Head, PoolLayer, SepConvLayer

IN_CHANNELS = 3

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "hardswish": nn.Hardswish,
}


def group_count(channels: int) -> int:
    """Groups used by "group" norm: gcd(8, channels), so the groups always divide the channels."""
    return math.gcd(8, channels)


def make_norm(norm: str, channels: int) -> nn.Module | None:
    """The normalisation module for ``norm`` (None for "none")."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(group_count(channels), channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == "layer":
        return nn.GroupNorm(1, channels)
    if norm == "none":
        return None
    raise ValueError(f"unknown norm {norm!r}")


def make_activation(name: str) -> nn.Module | None:
    """The activation module for ``name`` (None for "none")."""
    if name == "none":
        return None
    return _ACTIVATIONS[name]()


class Residual(nn.Module):
    """``act(body(x) + shortcut(x))``: a layer with a skip connection (shortcut may be a 1x1 projection)."""

    def __init__(self, body: nn.Module, shortcut: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class FLNASNet(nn.Module):
    """A network built from an ArchSpec: ``head(features(x))``."""

    def __init__(self, features: nn.Sequential, head: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def count_params(self) -> int:
        """Number of parameters (trainable or not)."""
        return sum(p.numel() for p in self.parameters())


def _seq(*modules: nn.Module | None) -> list[nn.Module]:
    return [m for m in modules if m is not None]


def _conv_layer(layer: ConvLayer | SepConvLayer, c_in: int) -> nn.Module:
    c_out, k, s = layer.channels, layer.kernel, layer.stride
    bias = layer.norm == "none"
    if layer.type == "conv":
        body = _seq(
            nn.Conv2d(c_in, c_out, k, stride=s, padding=k // 2, bias=bias), make_norm(layer.norm, c_out)
        )
    else:
        body = _seq(
            nn.Conv2d(c_in, c_in, k, stride=s, padding=k // 2, groups=c_in, bias=bias),
            make_norm(layer.norm, c_in),
            make_activation(layer.activation),
            nn.Conv2d(c_in, c_out, 1, bias=bias),
            make_norm(layer.norm, c_out),
        )
    act = make_activation(layer.activation)
    if not layer.residual:
        return nn.Sequential(*body, *_seq(act))
    if c_in == c_out and s == 1:
        shortcut: nn.Module = nn.Identity()
    else:
        shortcut = nn.Sequential(
            *_seq(nn.Conv2d(c_in, c_out, 1, stride=s, bias=bias), make_norm(layer.norm, c_out))
        )
    return Residual(nn.Sequential(*body), shortcut, act if act is not None else nn.Identity())


def build_features(spec: ArchSpec, in_channels: int = IN_CHANNELS) -> tuple[nn.Sequential, int]:
    """The feature extractor and its number of output channels."""
    modules: list[nn.Module] = []
    channels = in_channels
    for layer in spec.layers:
        if isinstance(layer, ConvLayer | SepConvLayer):
            modules.append(_conv_layer(layer, channels))
            channels = layer.channels
        elif isinstance(layer, PoolLayer):
            pool = nn.MaxPool2d if layer.mode == "max" else nn.AvgPool2d
            modules.append(pool(layer.kernel, stride=layer.kernel))
        elif isinstance(layer, DropoutLayer):
            modules.append(nn.Dropout(layer.p))
        else:  # pragma: no cover - the discriminated union has no other members
            raise TypeError(f"unknown layer {layer!r}")
    return nn.Sequential(*modules), channels


def build_head(head: Head, in_features: int, num_classes: int) -> nn.Sequential:
    """Global pool, flatten, hidden Linear layers, output Linear."""
    modules: list[nn.Module] = [nn.AdaptiveAvgPool2d(1) if head.pool == "avg" else nn.AdaptiveMaxPool2d(1)]
    modules.append(nn.Flatten(1))
    width = in_features
    for hidden in head.hidden:
        if head.dropout > 0:
            modules.append(nn.Dropout(head.dropout))
        modules.append(nn.Linear(width, hidden))
        modules.extend(_seq(make_activation(head.activation)))
        width = hidden
    if head.dropout > 0:
        modules.append(nn.Dropout(head.dropout))
    modules.append(nn.Linear(width, num_classes))
    return nn.Sequential(*modules)


def build_model(spec: ArchSpec | dict, num_classes: int, *, in_channels: int = IN_CHANNELS) -> FLNASNet:
    """Build the network for ``spec`` (not checked against Choices; use validate_spec first)."""
    if not isinstance(spec, ArchSpec):
        spec = ArchSpec.model_validate(spec)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    features, channels = build_features(spec, in_channels)
    model = FLNASNet(features, build_head(spec.head, channels, num_classes))
    model.spec = spec  # the architecture it was built from (plain attribute, not a submodule)
    return model
