"""Random search: architectures drawn uniformly over Choices (the usual NAS baseline at equal budget)."""

from __future__ import annotations

from flnas.designers.base import DesignContext, Designer, Proposal
from flnas.designers.common import MAX_DRAWS, avoid_keys, random_candidates
from flnas.designers.registry import register_designer


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
