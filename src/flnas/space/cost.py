"""What a spec costs, counted from the spec alone: parameters and FLOPs, and the Choices' budgets on them."""

from __future__ import annotations

from flnas.space.choices import Choices
from flnas.space.spec import CONV_TYPES, ArchSpec, SpecIssue

__all__ = ["check_budgets", "spec_cost"]


def _norm_params(norm: str, channels: int) -> int:
    return 0 if norm == "none" else 2 * channels  # every norm flnas builds has an affine weight and bias


def spec_cost(spec: ArchSpec, num_classes: int, image_size: int) -> dict[str, int]:
    """Parameters and FLOPs per image, computed from the spec without building it.

    FLOPs follow ``torch.utils.flop_counter``: 2 x multiply-adds of convolutions and linear layers (bias,
    norms, activations and pooling are not counted). Equal to what the built model gives (tested).
    """
    params = flops = 0
    c_in, size = 3, image_size
    for layer in spec.layers:
        if layer.type in CONV_TYPES:
            c, k, s, bias = layer.channels, layer.kernel, layer.stride, layer.norm == "none"
            size = (size - 1) // s + 1
            if layer.type == "conv":
                params += c_in * c * k * k + bias * c + _norm_params(layer.norm, c)
                flops += 2 * c_in * c * k * k * size * size
            else:
                params += c_in * k * k + bias * c_in + _norm_params(layer.norm, c_in)
                params += c_in * c + bias * c + _norm_params(layer.norm, c)
                flops += 2 * (c_in * k * k + c_in * c) * size * size
            if layer.residual and (c_in != c or s != 1):
                params += c_in * c + bias * c + _norm_params(layer.norm, c)
                flops += 2 * c_in * c * size * size
            c_in = c
        elif layer.type == "pool":
            size = max(1, size // layer.kernel)
    width = c_in
    for hidden in [*spec.head.hidden, num_classes]:
        params += width * hidden + hidden
        flops += 2 * width * hidden
        width = hidden
    return {"params": params, "flops": flops}


def check_budgets(cost: dict[str, int], choices: Choices, image_size: int) -> list[SpecIssue]:
    """The parameter and FLOPs budget problems of a spec whose cost is ``cost``."""
    issues = []
    if choices.max_params is not None and cost["params"] > choices.max_params:
        msg = (
            f"the network has {cost['params']:,} parameters, over the budget of {choices.max_params:,}; "
            "use fewer channels, smaller kernels, sepconv or fewer layers"
        )
        issues.append(SpecIssue("$", msg))
    if choices.max_flops is not None and cost["flops"] > choices.max_flops:
        msg = (
            f"the network needs {cost['flops']:,} FLOPs per image at input size {image_size}, over the "
            f"budget of {choices.max_flops:,}; downsample earlier or use fewer channels"
        )
        issues.append(SpecIssue("$", msg))
    return issues
