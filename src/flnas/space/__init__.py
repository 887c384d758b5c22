"""The search space: the architecture format (Template), its ranges (Choices), validation, and tools.

``ArchSpec`` is the JSON an LLM writes; ``validate_spec`` checks it against ``Choices`` and the input size
and lists every problem; ``build_model`` turns it into a PyTorch module and ``to_pytorch_code`` into
stand-alone source; ``random_spec`` and ``mutate`` let non-LLM designers move through the same space.
"""

from __future__ import annotations

from typing import Any

from flnas.space.choices import (
    DEFAULT_CHOICES_PATH,
    Choices,
    choices_from_dict,
    default_choices,
    load_choices,
)
from flnas.space.mutate import MUTATIONS, mutate, random_spec
from flnas.space.spec import (
    ArchSpec,
    ConvLayer,
    DropoutLayer,
    Head,
    PoolLayer,
    SepConvLayer,
    example_spec,
    read_spec_file,
    spec_key,
    spec_to_dict,
)
from flnas.space.validate import SpecIssue, ValidationResult, check_shapes, dry_run, spec_cost, validate_spec

_LAZY = {  # these need torch; import it only when they are used (keeps `flnas --help` fast)
    "FLNASNet": "flnas.space.build",
    "build_model": "flnas.space.build",
    "group_count": "flnas.space.build",
    "to_pytorch_code": "flnas.space.codegen",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flnas.space' has no attribute {name!r}")


__all__ = [
    "DEFAULT_CHOICES_PATH",
    "MUTATIONS",
    "ArchSpec",
    "Choices",
    "ConvLayer",
    "DropoutLayer",
    "FLNASNet",
    "Head",
    "PoolLayer",
    "SepConvLayer",
    "SpecIssue",
    "ValidationResult",
    "build_model",
    "check_shapes",
    "choices_from_dict",
    "default_choices",
    "dry_run",
    "example_spec",
    "group_count",
    "load_choices",
    "spec_cost",
    "mutate",
    "random_spec",
    "read_spec_file",
    "spec_key",
    "spec_to_dict",
    "to_pytorch_code",
    "validate_spec",
]
