"""What every offline designer shares: check a spec against the study's Choices and input size, the specs
that must not be proposed again, and valid random specs (the fallback of every designer).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flnas.designers.base import DesignContext
from flnas.errors import SpecError
from flnas.records import is_evaluated

MAX_DRAWS = 200  # random draws per proposal before giving up (Choices with very few distinct specs)


def avoid_keys(context: DesignContext) -> set[str]:
    """spec_keys not to propose: every evaluated spec (interrupted ones may run again) and every pending one."""
    from flnas.space import spec_key

    evaluated = {spec_key(c.spec) for c in context.history if c.spec is not None and is_evaluated(c)}
    return evaluated | {spec_key(c.spec) for c in context.pending if c.spec is not None}


def checked(spec: Any, context: DesignContext) -> tuple[dict[str, Any], str] | None:
    """(spec as dict, spec_key) when ``spec`` is valid under the study's Choices and input size, else None."""
    from flnas.space import spec_key, validate_spec

    result = validate_spec(
        spec, context.choices, image_size=context.task.image_size, num_classes=len(context.task.classes)
    )
    if not result.ok or result.spec is None:
        return None
    return result.spec.model_dump(mode="json"), spec_key(result.spec)


def random_candidates(
    context: DesignContext, avoid: set[str], draws: int = MAX_DRAWS
) -> Iterator[tuple[dict[str, Any], str]]:
    """Yield (spec dict, key) of valid random specs not in ``avoid`` (the caller adds what it keeps)."""
    from flnas.space import random_spec

    for _ in range(draws):
        try:
            spec = random_spec(
                context.choices,
                context.rng,
                image_size=context.task.image_size,
                num_classes=len(context.task.classes),
            )
        except SpecError:  # Choices under which random_spec finds nothing valid
            return
        got = checked(spec, context)
        if got is not None and got[1] not in avoid:
            yield got
