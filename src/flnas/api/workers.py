"""An experiment's searches by several `flnas search` processes on this machine (``--workers N``).

The experiment has created the study and its setup; each worker resumes it with the stored setup, so its
command names only the study, the designer and the budget (:func:`flnas.study.launch.launch_search`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flnas.study.loop import SearchResult


def search_by_workers(
    plan: Any, designer: str, *, log: Callable[[str], None], record_settings: bool = True
) -> SearchResult:
    """Run ``designer``'s search of ``plan`` (an ``ExperimentPlan``) as ``plan.workers`` worker processes.

    ``record_settings`` False (FaHaNa's search at the same budget) puts the study's search settings back
    as the main search left them, as the in-process search does.
    """
    from flnas.records import get_best, is_evaluated
    from flnas.study.history import load_candidates
    from flnas.study.launch import launch_search
    from flnas.study.loop import SearchResult
    from flnas.study.storage import get_search_settings

    study = plan.assembly.study
    storage = study._storage  # the URL the experiment opened, for the workers
    url = getattr(getattr(storage, "_backend", storage), "url", None)
    out = plan.out / "search"
    command = [sys.executable, "-m", "flnas", "search", "--study", study.study_name, "--storage", str(url),
               "--designer", designer, "--iters", str(plan.iters), "--selection", plan.selection,
               "--tolerance", str(plan.tolerance), "--out", str(out)]
    if plan.liveness is not None:
        command += ["--heartbeat-interval", str(plan.liveness.heartbeat), "--grace-period", str(plan.liveness.grace)]
    if designer == plan.designer:
        flags = {"model": "--llm-model", "base_url": "--llm-base-url", "structured_output": "--llm-structured"}
        for key, flag in flags.items():
            if plan.designer_options.get(key):
                command += [flag, str(plan.designer_options[key])]
    kept = dict(get_search_settings(study))
    result = launch_search(command, plan.workers, device=plan.device, study_name=study.study_name, storage=str(url),
                           designer=designer, iters=plan.iters, k=1, out=out, show=log,
                           log_dir=out / f"workers-{designer}")
    if not record_settings and kept:
        study.set_user_attr("search", kept)
    candidates = [c for c in load_candidates(study) if c.designer == designer]
    evaluated = sum(1 for c in candidates if is_evaluated(c) and 1 <= c.iteration <= plan.iters)
    best = get_best(candidates, rule=plan.selection, tolerance=plan.tolerance, accuracy=plan.assembly.accuracy)
    stopped = None if result.complete else (
        f"the {designer} workers did not finish the search (their logs: {out / f'workers-{designer}'}); run the "
        "experiment again to continue")
    return SearchResult(best=best, candidates=candidates, evaluated=evaluated, target=plan.iters, stopped=stopped)
