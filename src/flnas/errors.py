"""Errors a user can cause. The CLI prints them as one line, without a traceback."""

from __future__ import annotations


class FlnasError(Exception):
    """A problem with the user's input (file, row, field, endpoint) described in one sentence.

    The message must name what is wrong and where, e.g.
    ``"ISIC_2019_Training_GroundTruth.csv row 12: label row is not one-hot (2 classes set)"``.
    """

    exit_code = 2


class DataError(FlnasError):
    """Bad or missing dataset files."""


class SpecError(FlnasError):
    """An architecture spec or Choices file that is not valid."""


class StudyError(FlnasError):
    """A study that cannot be opened, resumed or reported."""


class LLMError(FlnasError):
    """An LLM endpoint that is not configured, unreachable, or keeps failing."""


class EvaluationError(FlnasError):
    """An architecture that could not be trained or measured (NaN loss, out of memory, time budget, invalid).

    Raised by :func:`flnas.evaluate`; ``metrics`` holds what was measured before it failed.
    """

    exit_code = 1

    def __init__(self, reason: str, *, metrics: dict | None = None) -> None:
        super().__init__(reason)
        self.metrics = metrics or {}
