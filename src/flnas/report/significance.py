"""The paired test behind Table I's up/down marks: is one model better than another on the same test images?

A difference of one or two points between two models on a few hundred test images is often noise. Each
model's test predictions are stored in its metrics (``metrics["test"]["predictions"]``, see
:mod:`flnas.evaluate.stored`); two models scored on the same images are resampled with the same indices
(:func:`flnas.evaluate.bootstrap.paired_difference`), and a model is called better in a metric only when
the 95% interval of the per-resample difference lies wholly on the better side of 0.

Hardware columns (params, memory, latency) are not resampled over images and keep a plain comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flnas.evaluate.bootstrap import (
    CI_METRICS,
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Bootstrap,
    Difference,
    bootstrap,
    paired_difference,
)
from flnas.evaluate.stored import StoredPredictions, unpack_predictions

if TYPE_CHECKING:
    from flnas.records import Candidate

#: Table I columns whose values are measured on the test images (a mark needs the paired test)
RESAMPLED = frozenset(CI_METRICS)


@dataclass
class Comparison:
    """One paired test done for a mark: ``label`` against ``other`` in ``key``."""

    label: str
    other: str
    key: str
    difference: Difference | None  # None: no paired test was possible
    why_not: str | None = None  # the reason when ``difference`` is None


@dataclass
class PairedTests:
    """Paired bootstraps of the rows of one Table I, computed once per model and cached.

    ``seed`` should be the study's training seed, so that the intervals match those the evaluator stored.
    """

    split: str = "test"
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    level: float = DEFAULT_LEVEL
    comparisons: list[Comparison] = field(default_factory=list)
    _boots: dict[int, tuple[StoredPredictions | None, Bootstrap | None]] = field(
        default_factory=dict, init=False, repr=False
    )

    def _bootstrap(self, candidate: Candidate) -> tuple[StoredPredictions | None, Bootstrap | None]:
        key = candidate.number
        if key not in self._boots:
            split = (candidate.metrics or {}).get(self.split) or {}
            stored = unpack_predictions(split.get("predictions"))
            boot = None
            if stored is not None:
                boot = bootstrap(
                    stored.y_true,
                    stored.y_pred,
                    classes=stored.num_classes,
                    groups=stored.groups,
                    attributes=stored.attributes,
                    resamples=self.resamples,
                    seed=self.seed,
                    level=self.level,
                )
            self._boots[key] = (stored, boot)
        return self._boots[key]

    def compare(self, a: Candidate, b: Candidate, key: str, *, labels: tuple[str, str]) -> Comparison:
        """The paired bootstrap of ``a - b`` in ``key`` (recorded in :attr:`comparisons`)."""
        (stored_a, boot_a), (stored_b, boot_b) = self._bootstrap(a), self._bootstrap(b)
        why = None
        if boot_a is None or boot_b is None:
            missing = labels[0] if boot_a is None else labels[1]
            why = f"{missing} has no stored {self.split} predictions"
        elif not stored_a.same_images(stored_b):  # type: ignore[union-attr]
            why = f"{labels[0]} and {labels[1]} were not scored on the same {self.split} images"
        diff = paired_difference(boot_a, boot_b, key) if why is None else None  # type: ignore[arg-type]
        comparison = Comparison(labels[0], labels[1], key, diff, why)
        self.comparisons.append(comparison)
        return comparison

    def better(self, a: Candidate, b: Candidate, key: str, *, higher_better: bool, labels: tuple[str, str]) -> bool:
        """True when the paired interval of ``a - b`` in ``key`` lies wholly on the better side of 0."""
        diff = self.compare(a, b, key, labels=labels).difference
        if diff is None or diff.interval is None:
            return False
        return diff.interval[0] > 0 if higher_better else diff.interval[1] < 0

    def interval(self, candidate: Candidate, key: str) -> list[float] | None:
        """The candidate's own interval for ``key``: as stored by the evaluator, else from its predictions."""
        split = (candidate.metrics or {}).get(self.split) or {}
        ci = split.get("ci")
        if isinstance(ci, dict) and key in ci:
            value = ci[key]
            return [float(value[0]), float(value[1])] if isinstance(value, list) and len(value) == 2 else None
        _, boot = self._bootstrap(candidate)
        return boot.interval(key)[0] if boot is not None else None

    def notes(self, headers: dict[str, str], percent: frozenset[str]) -> list[str]:
        """Sentences for the report: marks withheld by the paired test, and rows that could not be tested."""
        out: list[str] = []
        untestable = sorted({c.why_not for c in self.comparisons if c.why_not})
        for why in untestable:
            out.append(f"No paired test possible: {why}; a mark that needs this comparison is withheld.")
        for c in self.comparisons:
            d = c.difference
            if d is None or d.interval is None or d.excludes_zero() or d.estimate is None:
                continue
            scale, unit = (100, " points") if c.key in percent else (1, "")
            lo, hi = (scale * v for v in d.interval)
            out.append(
                f"{c.label} vs {c.other}, {headers.get(c.key, c.key)}: difference {scale * d.estimate:+.4g}{unit}, "
                f"paired {100 * self.level:g}% interval [{lo:+.4g}, {hi:+.4g}] includes 0: not marked."
            )
        return out


def study_seed(setup: dict[str, Any]) -> int:
    """The training seed the evaluator bootstrapped with (so the report pairs on the same indices)."""
    try:
        return int((setup.get("train") or {}).get("seed", DEFAULT_SEED))
    except (TypeError, ValueError):
        return DEFAULT_SEED
