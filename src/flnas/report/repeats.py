"""``flnas report --repeats R``: re-train every Table I row with R other seeds, so its cells show mean +/- std.

The report chooses the rows (baselines, FaHaNa, Search-1..top); :mod:`flnas.study.repeats` trains them under
the study's own setup and records each re-run in the study.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flnas.errors import StudyError
from flnas.report.table import build_table
from flnas.study.repeats import rerun

if TYPE_CHECKING:
    import optuna


def run_repeats(
    study: optuna.Study,
    repeats: int,
    *,
    top: int = 3,
    data: Any = None,
    evaluator_for_seed: Callable[[int], Any] | None = None,
    out_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Re-train every Table I row (baselines, FaHaNa, Search-1..top) ``repeats`` times; return how many ran.

    The other arguments are :func:`flnas.study.repeats.rerun`'s.
    """
    if repeats < 1:
        return 0
    if not study.user_attrs.get("setup") and evaluator_for_seed is None:
        raise StudyError(
            f"study {study.study_name!r} has no setup to re-train with; it was not made by flnas"
        )
    rows = [(row.label, row.candidate) for row in build_table(study, top=top).rows]
    return rerun(study, rows, repeats, data=data, evaluator_for_seed=evaluator_for_seed, out_dir=out_dir, log=log)
