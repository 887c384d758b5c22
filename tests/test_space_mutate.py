"""random_spec and mutate: always valid, always different, or a SpecError that says why not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flnas.errors import SpecError
from flnas.space import (
    MUTATIONS,
    ArchSpec,
    Choices,
    build_model,
    example_spec,
    mutate,
    random_spec,
    spec_cost,
    spec_key,
    validate_spec,
)

SIZE, CLASSES = 32, 8
CHOICES = Choices(max_layers=8, max_params=500_000)


def valid(spec, choices=CHOICES, *, dry_run_forward=False) -> bool:
    result = validate_spec(
        spec, choices, image_size=SIZE, num_classes=CLASSES, dry_run_forward=dry_run_forward
    )
    return result.ok


def test_random_spec_is_valid_for_many_seeds():
    keys = set()
    for seed in range(40):
        spec = random_spec(CHOICES, np.random.default_rng(seed), image_size=SIZE, num_classes=CLASSES)
        assert valid(spec), seed
        keys.add(spec_key(spec))
    assert len(keys) == 40  # uniform draws practically never repeat
    again = random_spec(CHOICES, np.random.default_rng(7), image_size=SIZE, num_classes=CLASSES)
    assert spec_key(again) == spec_key(
        random_spec(CHOICES, np.random.default_rng(7), image_size=SIZE, num_classes=CLASSES)
    )


def test_random_specs_really_run_and_cost_what_the_analysis_says():
    """The analytic shape walk and counts (used to check candidates quickly) agree with real forwards."""
    rng = np.random.default_rng(11)
    for _ in range(6):
        spec = random_spec(CHOICES, rng, image_size=SIZE, num_classes=CLASSES, dry_run_forward=True)
        model = build_model(spec, CLASSES).eval()
        with torch.no_grad():
            assert model(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, CLASSES)
        assert spec_cost(spec, CLASSES, SIZE)["params"] == model.count_params()


def test_random_spec_respects_restrictive_choices():
    choices = Choices(
        layer_types=["conv"],
        channels=[8],
        kernels=[3],
        strides=[1],
        norms=["batch"],
        activations=["relu"],
        residual=False,
        max_head_layers=0,
        min_layers=2,
        max_layers=3,
    )
    for seed in range(5):
        spec = random_spec(choices, np.random.default_rng(seed), image_size=SIZE, num_classes=CLASSES)
        assert {layer.type for layer in spec.layers} == {"conv"}
        assert all(layer.channels == 8 and not layer.residual for layer in spec.layers)
        assert spec.head.hidden == []


def test_random_spec_gives_up_with_a_reason():
    impossible = Choices(channels=[256], min_layers=6, max_layers=6, max_params=1000)
    with pytest.raises(SpecError, match=r"random_spec: no valid spec found in 5 tries .*parameters"):
        random_spec(impossible, np.random.default_rng(0), image_size=SIZE, num_classes=CLASSES, max_tries=5)


def _parents() -> list[ArchSpec]:
    rng = np.random.default_rng(100)
    return [example_spec()] + [
        random_spec(CHOICES, rng, image_size=SIZE, num_classes=CLASSES) for _ in range(5)
    ]


PARENTS = _parents()


def _differs_as_named(kind: str, parent: ArchSpec, child: ArchSpec) -> bool:
    before, after = parent.model_dump(), child.model_dump()
    if kind == "add_layer":
        return (
            child.conv_count() == parent.conv_count() + 1
            and len(after["layers"]) == len(before["layers"]) + 1
        )
    if kind == "remove_layer":
        return len(after["layers"]) == len(before["layers"]) - 1
    if kind == "change_head":
        return after["layers"] == before["layers"] and after["head"] != before["head"]
    if kind == "change_dropout":
        same_shape = [layer["type"] for layer in after["layers"]] == [
            layer["type"] for layer in before["layers"]
        ]
        return same_shape
    field = {
        "change_kernel": "kernel",
        "change_channels": "channels",
        "change_norm": "norm",
        "change_activation": "activation",
        "change_stride": "stride",
        "toggle_residual": "residual",
    }[kind]
    changed = [i for i, (a, b) in enumerate(zip(before["layers"], after["layers"], strict=True)) if a != b]
    return (
        len(changed) == 1
        and after["head"] == before["head"]
        and {
            k
            for k in before["layers"][changed[0]]
            if before["layers"][changed[0]][k] != after["layers"][changed[0]][k]
        }
        == {field}
    )


@pytest.mark.parametrize("kind", MUTATIONS)
def test_mutation_is_valid_and_different(kind):
    made = 0
    for p, parent in enumerate(PARENTS):
        for seed in range(4):
            try:
                child = mutate(
                    parent,
                    CHOICES,
                    np.random.default_rng(seed),
                    image_size=SIZE,
                    num_classes=CLASSES,
                    kind=kind,
                )
            except SpecError as exc:
                assert str(exc).startswith(f"{kind}: ")  # allowed, but it must say which mutation and why
                continue
            made += 1
            assert valid(child), (kind, p, seed)
            assert spec_key(child) != spec_key(parent)
            assert _differs_as_named(kind, parent, child), (kind, parent, child)
    assert made >= 12, f"{kind} applied only {made} times out of 24"


def test_mutated_specs_pass_the_full_check_with_dry_run():
    rng = np.random.default_rng(5)
    spec = example_spec()
    for _ in range(8):
        spec = mutate(spec, CHOICES, rng, image_size=SIZE, num_classes=CLASSES, dry_run_forward=True)
        assert valid(spec, dry_run_forward=True)


def test_mutate_accepts_a_dict_and_is_reproducible():
    data = example_spec().model_dump(mode="json")
    a = mutate(data, CHOICES, np.random.default_rng(1), image_size=SIZE, num_classes=CLASSES)
    b = mutate(example_spec(), CHOICES, np.random.default_rng(1), image_size=SIZE, num_classes=CLASSES)
    assert spec_key(a) == spec_key(b) != spec_key(data)


MINIMAL = ArchSpec.model_validate(
    {"layers": [{"type": "conv", "channels": 16}, {"type": "conv", "channels": 16}]}
)


@pytest.mark.parametrize(
    ("kind", "choices", "message"),
    [
        ("remove_layer", CHOICES, "remove_layer: the spec already has the minimum of 2 conv/sepconv layers"),
        (
            "add_layer",
            Choices(max_layers=2),
            "add_layer: the spec already has the maximum of 2 conv/sepconv layers",
        ),
        ("change_kernel", Choices(kernels=[3]), "change_kernel: the Choices allow only kernel 3"),
        ("change_stride", Choices(strides=[1]), "change_stride: the Choices allow only stride 1"),
        ("toggle_residual", Choices(residual=False), "toggle_residual: the Choices do not allow residual"),
        (
            "change_dropout",
            Choices(dropout_min=0.0, dropout_max=0.0),
            "change_dropout: the Choices fix every",
        ),
        (
            "change_head",
            Choices(head_pools=["avg"], max_head_layers=0),
            "change_head: the Choices allow no other",
        ),
    ],
)
def test_impossible_mutation_says_why(kind, choices, message):
    with pytest.raises(SpecError, match=message):
        mutate(MINIMAL, choices, np.random.default_rng(0), image_size=SIZE, num_classes=CLASSES, kind=kind)


def test_unknown_mutation_and_no_applicable_mutation():
    with pytest.raises(SpecError, match="unknown mutation 'grow'; use one of add_layer, remove_layer"):
        mutate(MINIMAL, CHOICES, np.random.default_rng(0), image_size=SIZE, num_classes=CLASSES, kind="grow")
    frozen = Choices(
        layer_types=["conv"],
        channels=[16],
        kernels=[3],
        strides=[1],
        norms=["batch"],
        activations=["relu"],
        residual=False,
        dropout_min=0.0,
        dropout_max=0.0,
        head_pools=["avg"],
        max_head_layers=0,
        min_layers=2,
        max_layers=2,
    )
    with pytest.raises(SpecError, match="no mutation gives a valid spec: .*remove_layer: .*change_kernel: "):
        mutate(MINIMAL, frozen, np.random.default_rng(0), image_size=SIZE, num_classes=CLASSES)
