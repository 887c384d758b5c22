"""One conversion to JSON-safe values, used wherever flnas writes JSON (CLI output, artifacts, the study)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def json_safe(value: Any, *, stringify: bool = False) -> Any:
    """A JSON-safe copy: NaN/inf become null, tuples lists, numpy/torch scalars plain numbers, paths strings.

    With ``stringify`` any other object becomes its ``str`` (the study's user attributes must always serialise).
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v, stringify=stringify) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, stringify=stringify) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if stringify and not (value is None or isinstance(value, (str, int, float, bool))):
        return str(value)
    return value
