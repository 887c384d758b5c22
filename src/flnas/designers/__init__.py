"""Designers propose architectures: llm, heuristic, random, evolution, fahana-rl (see ``registry``).

The records they read (``Candidate``, ``TaskInfo``, ``Selection``) live in :mod:`flnas.records`.
"""

from __future__ import annotations

from flnas.designers.base import DesignContext, Designer, Proposal

__all__ = ["DesignContext", "Designer", "Proposal"]
