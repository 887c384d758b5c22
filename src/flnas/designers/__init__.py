"""Designers propose architectures: llm, heuristic, random, evolution, fahana-rl (see ``registry``)."""

from __future__ import annotations

from flnas.designers.base import Candidate, DesignContext, Designer, Proposal, TaskInfo

__all__ = ["Candidate", "DesignContext", "Designer", "Proposal", "TaskInfo"]
