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


@dataclass
class Candidate:
    """One evaluated (or failed) proposal as stored in the study."""

    number: int  # Optuna trial number
    iteration: int  # 1-based FL-NAS iteration
    designer: str
    spec: dict[str, Any] | None  # the architecture JSON (None when no valid spec was obtained)
    status: str  # "ok" | "degenerate" | "failed" | "invalid" | "running"
    metrics: dict[str, Any] | None = None  # the evaluator's JSON object (see `flnas evaluate --json`)
    reason: str | None = None  # why it failed, when it did
    baseline: str | None = None  # baseline model name (e.g. "resnet18") for baseline rows


@dataclass
class TaskInfo:
    """What the network is for: shown to LLMs and used to size the output layer."""

    dataset: str  # e.g. "ISIC 2019"
    classes: list[str]
    groups: dict[str, list[str]]  # attribute -> groups, e.g. {"sex": ["male", "female"], "age": [...]}
    image_size: int
    env: str  # target device, e.g. "Raspberry Pi 4"


ACCURACIES = ("balanced", "plain")  # the study's accuracy of record (DESIGN.md): balanced is the default


@dataclass(frozen=True)
class Selection:
    """How a study compares candidates: GetBestMetrics' rule and tolerance, and the accuracy of record.

    ``accuracy`` is "balanced" (mean per-class recall; the default for new studies) or "plain" (the paper's
    preset). It travels in every :class:`DesignContext` so that each designer and the prompt generator
    rank with the study's own settings (see :mod:`flnas.study.selection`).
    """

    rule: str = "fair"
    tolerance: float = 0.02
    accuracy: str = "balanced"

    def as_kwargs(self) -> dict[str, Any]:
        """``rule``, ``tolerance`` and ``accuracy`` as keyword arguments of the selection functions."""
        return {"rule": self.rule, "tolerance": self.tolerance, "accuracy": self.accuracy}


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
