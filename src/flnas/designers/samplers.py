"""Optuna's model-based samplers as designers: ``tpe``, ``nsga2`` and ``gp``.

Each proposal is one ``ask`` of an in-memory Optuna study whose sampler has been told every earlier
result of this designer's search (``optuna.trial.create_trial`` + ``add_trial``), rebuilt from the design
context on every call, so a resumed search continues with the same knowledge. The architecture is decoded
from the trial by the one define-by-run encoding of the Choices, :func:`flnas.space.sampler.suggest_spec`.

The objectives are the study's own, in its accuracy of record (``context.selection.accuracy``): val
accuracy (balanced or plain) up, val unfairness down (undefined: 1.0), log10(params) down. A failed or
degenerate candidate, and a proposal over the Choices' budgets, is told the worst values (accuracy 0,
unfairness 1, the budget's params), so the sampler learns to avoid it. A proposal that decodes to an
architecture already evaluated is told that architecture's values and asked again (never proposed twice).

- ``tpe``: multi-objective TPE (Optuna's ``TPESampler``), random for the first ``startup`` (4) trials;
- ``nsga2``: NSGA-II (``NSGAIISampler``) with a population of ``population`` (6): smaller than Optuna's
  default 50 so that a search of 10 to 30 evaluations gets past its random first generation;
- ``gp``: Gaussian-process Bayesian optimisation (``GPSampler``), random for the first ``startup`` (4);
  it models the parameters every architecture has (depth, the first ``min_layers`` layers, the head) and
  draws the others with its independent sampler.

CMA-ES is not offered: it models only numeric parameters, and most of this space is categorical.
"""

from __future__ import annotations

import math
from typing import Any

from flnas.designers.base import DesignContext, Designer, Proposal
from flnas.designers.common import avoid_keys, checked, random_candidates
from flnas.designers.registry import register_designer
from flnas.records import Candidate, is_evaluated

DIRECTIONS = ["maximize", "minimize", "minimize"]
MAX_ASKS = 60  # asks per proposal before falling back to a random architecture
WORST_LOG_PARAMS = 8.0  # log10(params) told for a failure when the Choices set no params budget


class OptunaDesigner(Designer):
    """Base of the sampler designers: subclasses say which Optuna sampler to use."""

    name = "optuna"

    def make_sampler(self, seed: int) -> Any:  # pragma: no cover - abstract in practice
        raise NotImplementedError

    # -- telling the sampler what the study knows ------------------------------------------------------------

    def _worst(self, context: DesignContext) -> list[float]:
        budget = getattr(context.choices, "max_params", None)
        return [0.0, 1.0, math.log10(budget) if budget else WORST_LOG_PARAMS]

    def _values(self, candidate: Candidate, context: DesignContext) -> list[float]:
        from flnas.records import is_ok, objectives

        if not is_ok(candidate):
            return self._worst(context)
        acc, unfairness, params = objectives(candidate, context.selection.accuracy)
        return [acc, unfairness, math.log10(max(params, 1.0)) if math.isfinite(params) else WORST_LOG_PARAMS]

    def _study(self, context: DesignContext) -> tuple[Any, dict[str, list[float]]]:
        """An in-memory study told every evaluated candidate of the history; spec_key -> told values."""
        import optuna

        from flnas.space import spec_key
        from flnas.space.sampler import distributions, encode_spec

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        seed = int(context.rng.integers(2**31 - 1))
        study = optuna.create_study(directions=DIRECTIONS, sampler=self.make_sampler(seed))
        known: dict[str, list[float]] = {}
        size = context.task.image_size
        for candidate in context.history:
            if candidate.spec is None or not is_evaluated(candidate):
                continue
            params = encode_spec(candidate.spec, context.choices, image_size=size)
            if params is None:  # not of this encoding's form (e.g. an --init-spec): nothing to tell
                continue
            values = self._values(candidate, context)
            known[spec_key(candidate.spec)] = values
            dists = distributions(params, context.choices, image_size=size)
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, values=values))
        return study, known

    # -- proposing --------------------------------------------------------------------------------------------

    def propose(self, context: DesignContext, k: int = 1) -> list[Proposal]:
        import warnings

        from flnas.space.sampler import suggest_spec

        avoid = avoid_keys(context)
        with warnings.catch_warnings():  # optuna marks some samplers/arguments experimental
            warnings.simplefilter("ignore")
            study, known = self._study(context)
            out: list[Proposal] = []
            for _ in range(k):
                got, asked = None, 0
                while got is None and asked < MAX_ASKS:
                    asked += 1
                    trial = study.ask()
                    spec = suggest_spec(trial, context.choices, image_size=context.task.image_size)
                    valid = checked(spec, context)
                    if valid is None:  # over a budget (params, FLOPs) or otherwise invalid
                        study.tell(trial, self._worst(context))
                    elif valid[1] in avoid:  # already evaluated (or proposed in this call)
                        study.tell(trial, known.get(valid[1], self._worst(context)))
                    else:  # left RUNNING: its result is told next iteration, from the study
                        got = valid
                record: dict[str, Any] = {"method": self.name, "asks": asked, "told": len(known)}
                if got is None:
                    got = next(random_candidates(context, avoid), None)
                    record["fallback"] = "random"
                if got is None:
                    out.append(Proposal(spec=None, error=f"{self.name} found no new valid architecture"))
                    continue
                avoid.add(got[1])
                out.append(Proposal(spec=got[0], record=record))
        return out


@register_designer("tpe")
class TPEDesigner(OptunaDesigner):
    """Multi-objective TPE over the Choices (Optuna's ``TPESampler``)."""

    def __init__(self, *, startup: int = 4) -> None:
        self.startup = startup

    def make_sampler(self, seed: int) -> Any:
        import optuna

        return optuna.samplers.TPESampler(n_startup_trials=self.startup, seed=seed)


@register_designer("nsga2")
class NSGA2Designer(OptunaDesigner):
    """NSGA-II over the Choices (Optuna's ``NSGAIISampler``) with a small population."""

    def __init__(self, *, population: int = 6) -> None:
        if population < 2:
            raise ValueError("nsga2 needs a population of at least 2")
        self.population = population

    def make_sampler(self, seed: int) -> Any:
        import optuna

        return optuna.samplers.NSGAIISampler(population_size=self.population, seed=seed)


@register_designer("gp")
class GPDesigner(OptunaDesigner):
    """Gaussian-process Bayesian optimisation over the Choices (Optuna's ``GPSampler``)."""

    def __init__(self, *, startup: int = 4) -> None:
        self.startup = startup

    def make_sampler(self, seed: int) -> Any:
        import optuna

        return optuna.samplers.GPSampler(n_startup_trials=self.startup, seed=seed, warn_independent_sampling=False)
