"""Regularized evolution (Real et al., AAAI 2019) over the same Choices, at the LLM's budget.

The population is the ``population`` most recent ok candidates of the study, so the oldest member ages
out as each child arrives, exactly as in aging evolution, and a resumed search rebuilds it from the study.
Each child: sample ``sample`` members at random, take the fittest by
:func:`flnas.records.fitness` (accuracy, minus twice the unfairness, minus a small cost per
decade of params: the paper's priorities as one number; the accuracy is the study's accuracy of record),
and mutate it with ``flnas.space.mutate``.
Until the population is full, children are random architectures (the warm start).
"""

from __future__ import annotations

from typing import Any

from flnas.designers.base import DesignContext, Designer, Proposal
from flnas.designers.common import avoid_keys, checked, random_candidates
from flnas.designers.registry import register_designer
from flnas.errors import SpecError

MUTATION_TRIES = 30


@register_designer("evolution")
class EvolutionDesigner(Designer):
    """Aging evolution: tournament of ``sample`` out of the last ``population`` ok candidates, then mutate."""

    def __init__(self, *, population: int = 5, sample: int = 2) -> None:
        if population < 1 or not 1 <= sample <= population:
            raise ValueError("evolution needs population >= 1 and 1 <= sample <= population")
        self.population = population
        self.sample = sample

    def propose(self, context: DesignContext, k: int = 1) -> list[Proposal]:
        from flnas.records import fitness, is_ok

        alive = [c for c in context.history if is_ok(c) and c.spec is not None][-self.population :]
        avoid = avoid_keys(context)
        out: list[Proposal] = []
        for _ in range(k):
            got: tuple[dict[str, Any], str] | None = None
            record: dict[str, Any] = {"method": "evolution", "population": [c.number for c in alive]}
            if len(alive) >= self.population:
                picks = context.rng.choice(len(alive), size=self.sample, replace=False)
                contestants = [alive[int(i)] for i in picks]
                accuracy = context.selection.accuracy  # the study's accuracy of record
                parent = max(contestants, key=lambda c: (fitness(c, accuracy=accuracy), -c.number))
                record.update(sample=[c.number for c in contestants], parent=parent.number)
                got, kind = self._mutate(parent.spec, context, avoid)
                record["mutation"] = kind
            if got is None:
                got = next(random_candidates(context, avoid), None)
                record["warm_start" if len(alive) < self.population else "fallback"] = "random"
            if got is None:
                out.append(Proposal(spec=None, error="evolution found no new valid architecture"))
                continue
            avoid.add(got[1])
            out.append(Proposal(spec=got[0], record=record))
        return out

    def _mutate(self, spec: dict[str, Any], context: DesignContext, avoid: set[str]):
        """A valid, new child of ``spec`` and the mutation's name (None, None when none was found)."""
        from flnas.space import MUTATIONS, ArchSpec, mutate

        parent = ArchSpec.model_validate(spec)
        for _ in range(MUTATION_TRIES):
            kind = MUTATIONS[int(context.rng.integers(len(MUTATIONS)))]
            try:
                child = mutate(
                    parent,
                    context.choices,
                    context.rng,
                    image_size=context.task.image_size,
                    num_classes=len(context.task.classes),
                    kind=kind,
                )
            except SpecError:  # this mutation cannot apply to this parent: draw another
                continue
            got = checked(child, context)
            if got is not None and got[1] not in avoid:
                return got, kind
        return None, None
