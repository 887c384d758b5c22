"""The designer interface: something that reads the search history and proposes new architectures.

Algorithm 1 of the paper calls the LLM (``LLMDesigner``); flnas puts every designer behind one small base
class so that the LLM can be compared at equal budget with random search, evolution, an offline heuristic
and FaHaNa-style reinforcement learning.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flnas.records import Candidate, Selection, TaskInfo


@dataclass
class DesignContext:
    """Everything a designer may read to propose the next architectures."""

    history: list[Candidate]  # all earlier candidates of this study, oldest first (baselines excluded)
    best: Candidate | None  # GetBestMetrics over the history (validation metrics only)
    choices: Any  # flnas.space.choices.Choices
    task: TaskInfo
    iteration: int  # the 1-based iteration being designed
    rng: np.random.Generator
    log: Callable[[str], None] = print  # progress messages for the user
    selection: Selection = field(default_factory=Selection)  # the study's rule, tolerance, accuracy
    # candidates other workers of the study are training right now: not in the history yet, not to propose
    pending: list[Candidate] = field(default_factory=list)


@dataclass
class Proposal:
    """A proposed architecture plus what the study should record about how it was obtained."""

    spec: dict[str, Any] | None  # valid architecture JSON, or None when the designer failed
    record: dict[str, Any] = field(default_factory=dict)  # prompt, raw reply, retries, errors, tokens, ...
    error: str | None = None  # set when no valid spec could be obtained (the iteration is recorded as failed)


class Designer(abc.ABC):
    """Base class: ``propose`` returns ``k`` proposals; ``observe`` is told each result (for learning designers)."""

    name: str = "designer"

    @abc.abstractmethod
    def propose(self, context: DesignContext, k: int = 1) -> list[Proposal]:
        """Return k proposals for this iteration. Must not raise for bad LLM output: return Proposal(error=...)."""

    def observe(self, candidate: Candidate) -> None:  # noqa: B027 - optional hook
        """Called with each finished candidate (learning designers update their state here)."""

    def usage(self) -> dict[str, int]:
        """Token usage so far (LLM designers); empty for others."""
        return {}
