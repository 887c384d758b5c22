"""Reading an architecture from JSON text safely: bounded nesting, one-sentence errors.

An architecture is shallow (object -> layers list -> layer object -> value: four levels), so anything
nested much deeper is not an architecture, and Python's recursive JSON decoder and pydantic would hit
their recursion limits on it (``[[[[...]]]]`` fifty thousand deep is a RecursionError). Both the LLM
designer's reply parsing and ``flnas space validate|params|to-pytorch`` / ``flnas evaluate`` read through
here, so such input is one clear error and never a traceback.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_DEPTH", "TooDeepError", "json_depth", "loads_bounded"]

MAX_DEPTH = 8  # a spec needs 4 levels; a little slack for wrappers such as {"architecture": {...}}


class TooDeepError(ValueError):
    """JSON nested deeper than an architecture can be."""


def json_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), counted without recursion; stops past ``limit``."""
    depth = 0
    level = [value]
    while level:
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            break
        depth += 1
        if depth > limit:
            return depth
        level = [x for c in containers for x in (c.values() if isinstance(c, dict) else c)]
    return depth


def loads_bounded(text: str | bytes, *, max_depth: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """``json.loads`` that raises TooDeepError (a ValueError) instead of RecursionError or a deep result."""
    try:
        data = json.loads(text, **kwargs)
    except RecursionError:
        raise TooDeepError(
            f"the JSON is nested too deeply to read; an architecture needs at most {max_depth} levels"
        ) from None
    if json_depth(data, max_depth) > max_depth:
        raise TooDeepError(f"the JSON is nested more than {max_depth} levels deep; an architecture needs 4")
    return data
