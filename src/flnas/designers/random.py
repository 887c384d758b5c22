"""Random search: architectures drawn uniformly over Choices (the usual NAS baseline at equal budget).

Also holds the small helpers every offline designer shares: validate a spec against the study's Choices
and input size, and the set of specs that must not be proposed again.
"""

from __future__ import annotations

from typing import Any

from flnas.designers.base import DesignContext, Designer, Proposal
from flnas.designers.registry import register_designer
from flnas.errors import SpecError

MAX_DRAWS = 200  # random draws per proposal before giving up (Choices with very few distinct specs)


def avoid_keys(context: DesignContext) -> set[str]:
    """spec_keys not to propose: every evaluated spec (interrupted ones may run again) and every pending one."""
    from flnas.space import spec_key
    from flnas.study.loop import evaluated_keys

    pending = {spec_key(c.spec) for c in context.pending if c.spec is not None}
    return set(evaluated_keys(context.history)) | pending


def checked(spec: Any, context: DesignContext) -> tuple[dict[str, Any], str] | None:
    """(spec as dict, spec_key) when ``spec`` is valid under the study's Choices and input size, else None."""
    from flnas.space import spec_key, validate_spec

    result = validate_spec(
        spec, context.choices, image_size=context.task.image_size, num_classes=len(context.task.classes)
    )
    if not result.ok or result.spec is None:
        return None
    return result.spec.model_dump(mode="json"), spec_key(result.spec)


def random_candidates(context: DesignContext, avoid: set[str], draws: int = MAX_DRAWS):
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


@register_designer("random")
class RandomDesigner(Designer):
    """Uniform over Choices (via ``flnas.space.random_spec``), never repeating an evaluated spec."""

    def propose(self, context: DesignContext, k: int = 1) -> list[Proposal]:
        avoid = avoid_keys(context)
        out: list[Proposal] = []
        for _ in range(k):
            got = next(random_candidates(context, avoid), None)
            if got is None:
                error = f"no new valid random architecture in {MAX_DRAWS} draws"
                out.append(Proposal(spec=None, error=error))
                continue
            avoid.add(got[1])
            out.append(Proposal(spec=got[0], record={"method": "random"}))
        return out
