"""Search quality of each designer at an equal budget: hypervolume, speed to random's level, selected model.

For every designer (random, evolution, heuristic, fahana-rl, tpe, nsga2, gp, and llm only when an endpoint
is configured)
and every repeat r = 0..R-1, ``flnas.study.loop.run_search`` runs N iterations (N evaluated candidates;
invalid proposals are re-designed and do not count) in a fresh SQLite study, on the same prepared data,
with search seed r and training seed r, the same TrainConfig and the same Choices. Then:

- hypervolume after each evaluation of the front of (val accuracy up, val unfairness down, params down),
  computed on the minimised point (1 - val accuracy, val unfairness, params / max_params) against the
  reference point (1, 1, 1): the unit cube, so 1.0 would be a perfect, fair, free network. The accuracy
  is the study's accuracy of record (``--accuracy``: balanced by default, as for a new study; ``plain``
  with ``--no-class-weighted`` is the paper's preset). An undefined unfairness counts as 1 (the study's
  convention); failed and degenerate candidates add nothing. Computed with Optuna's
  exact WFG implementation (``optuna._hypervolume.compute_hypervolume``; Optuna 5 has no public one);
- evaluations needed to reach random search's final hypervolume of the same repeat (">N" when never);
- the candidate chosen by GetBestMetrics (``flnas.study.selection.get_best``, the ``--selection`` rule,
  default "fair", validation metrics only) and its *test* accuracy, balanced accuracy, unfairness and
  params, and whether it is degenerate (it never is: degenerate candidates are never selected; a search
  with no other candidate selects none). The rule, tolerance and accuracy are also what every designer is
  given as "best so far", so they steer the searches.

For the llm designer it also reads every reply back from the study: the validity rate per reply (and what
the invalid ones were: unparseable, outside the Template/Choices, failing the shape/budget checks, or a
repeat of a tried spec), replies per valid architecture, seconds per proposal, and the prompt's size in
tokens per iteration. ``--local-llm`` starts the offline model of the ``local-llm`` extra
(``flnas.designers.local.LocalServer``: llama-cpp-python's server with SmolLM2-135M-Instruct) for it.

The default (synthetic data, 600 records at 32x32, N=10 as the paper's IterMax, R=5, 3 epochs, Choices
capped at 300K params and 20 MFLOPs so that every candidate trains in seconds) is sized to finish in under
15 minutes on 2 idle cores (about 6 minutes measured; a loaded machine is several times slower).

    .venv/bin/python bench/search_quality.py
    .venv/bin/python bench/search_quality.py --data ../shared/data/isic2019_subset --subset 1500
    .venv/bin/python bench/search_quality.py --designers random,llm --local-llm --repeats 2
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_json, fmt, load_average, machine_info, print_machine, set_threads, table  # noqa: E402

DESIGNERS = ["random", "evolution", "heuristic", "fahana-rl", "tpe", "nsga2", "gp", "llm"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--designers", default=None, help=f"comma list (default {','.join(DESIGNERS)}; llm only when configured)"
    )
    p.add_argument("--iters", type=int, default=10, help="N: evaluated candidates per search")
    p.add_argument("--repeats", type=int, default=5, help="R: searches per designer (seeds 0..R-1)")
    p.add_argument("--data", type=Path, default=None, help="dataset root (default: synthetic, written to a temp dir)")
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--synthetic-n", type=int, default=600)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--max-params", type=int, default=300_000, help="Choices' parameter budget (and normaliser)")
    p.add_argument("--max-flops", type=int, default=20_000_000, help="Choices' FLOPs budget per image")
    p.add_argument("--max-train-seconds", type=float, default=None, help="per candidate; over it: failed")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--hardware", action="store_true", help="measure latency/ONNX per candidate (slower)")
    p.add_argument(
        "--class-weighted",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="inverse-class-frequency loss (default on, as for a new study)",
    )
    p.add_argument(
        "--accuracy", default="balanced", choices=["balanced", "plain"], help="the accuracy of record (balanced)"
    )
    p.add_argument("--selection", default="fair", help="GetBestMetrics rule (flnas search --help lists them)")
    p.add_argument("--tolerance", type=float, default=0.02, help="accuracy tolerance of the rule")
    p.add_argument("--llm-model", default=None, help="chat model of the llm designer (default: its own)")
    p.add_argument("--llm-base-url", default=None, help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL)")
    p.add_argument("--llm-structured", default=None, help="auto | json_schema | json_object | off")
    p.add_argument(
        "--local-llm", action="store_true", help="serve SmolLM2-135M locally for the llm designer (local-llm extra)"
    )
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    args = p.parse_args(argv)
    if args.quick:
        args.designers, args.iters, args.repeats = args.designers or "random,heuristic", 2, 1
        args.synthetic_n, args.image_size, args.epochs, args.max_params, args.max_flops = (
            120,
            16,
            1,
            50_000,
            2_000_000,
        )
    args.designers = args.designers or ",".join(DESIGNERS)
    from flnas.errors import FlnasError
    from flnas.study.selection import check_rule

    try:
        check_rule(args.selection, args.tolerance, args.accuracy)
    except FlnasError as exc:
        p.error(str(exc))
    return args


def hypervolume(points: np.ndarray) -> float:
    """Hypervolume of minimised points in the unit cube against the reference point (1, 1, 1)."""
    if points.size == 0:
        return 0.0
    points = np.clip(points, 0.0, 1.0)
    try:
        from optuna._hypervolume import compute_hypervolume
    except ImportError:  # private module: fall back to the exact grid method
        return hypervolume_grid(points)
    return float(compute_hypervolume(points, np.ones(points.shape[1])))


def hypervolume_grid(points: np.ndarray) -> float:
    """Exact hypervolume by the grid of the points' coordinates (O(n^4); fine for a few dozen points)."""
    if points.size == 0:
        return 0.0
    axes = [np.unique(np.append(points[:, d], 1.0)) for d in range(points.shape[1])]
    total = 0.0
    for i in range(len(axes[0]) - 1):
        for j in range(len(axes[1]) - 1):
            for k in range(len(axes[2]) - 1):
                lo = (axes[0][i], axes[1][j], axes[2][k])
                if np.any(np.all(points <= np.array(lo), axis=1)):
                    total += (axes[0][i + 1] - lo[0]) * (axes[1][j + 1] - lo[1]) * (axes[2][k + 1] - lo[2])
    return total


def point(candidate, max_params: float, accuracy: str) -> np.ndarray | None:
    """The minimised objective vector of an ok candidate (never a degenerate one), None otherwise."""
    from flnas.study.selection import is_ok, objectives

    if not is_ok(candidate):
        return None
    acc, unfairness, params = objectives(candidate, accuracy)
    return np.array([1.0 - acc, unfairness, params / max_params])


def hv_curve(candidates, max_params: float, accuracy: str) -> list[float]:
    """Hypervolume after each evaluated candidate, in trial order."""
    from flnas.study.loop import is_evaluated

    pts: list[np.ndarray] = []
    curve = []
    for c in sorted(candidates, key=lambda c: c.number):
        if not is_evaluated(c):
            continue
        p = point(c, max_params, accuracy)
        if p is not None:
            pts.append(p)
        curve.append(hypervolume(np.array(pts)) if pts else 0.0)
    return curve


def load_data(args: argparse.Namespace, tmp: Path):
    from flnas.data import prepare_data, write_synthetic

    if args.data is None:
        root = write_synthetic(tmp / "synthetic", n=args.synthetic_n, seed=0, image_size=max(args.image_size, 32))
    else:
        root = args.data
        if not (root / "ISIC_2019_Training_GroundTruth.csv").is_file():
            raise SystemExit(f"error: no dataset at {root} (ISIC_2019_Training_GroundTruth.csv is missing)")
    return prepare_data(
        root, subset=args.subset, seed=0, image_size=args.image_size, progress=False, cache_dir=tmp / "cache"
    )


def run_one(designer_name: str, seed: int, data, choices, args, tmp: Path) -> dict[str, Any]:
    from flnas.data.groups import AGE_GROUPS, SEX_GROUPS
    from flnas.designers.base import TaskInfo
    from flnas.designers.registry import create_designer
    from flnas.evaluate import Evaluator
    from flnas.evaluate.config import TrainConfig
    from flnas.study.loop import run_search
    from flnas.study.storage import open_study

    config = TrainConfig(
        epochs=args.epochs,
        patience=args.patience,
        seed=seed,
        device="cpu",
        measure_hardware=args.hardware,
        max_train_seconds=args.max_train_seconds,
        num_threads=args.threads,
        class_weighted_loss=args.class_weighted,
    )
    evaluator = Evaluator(data, config, choices=choices)
    task = TaskInfo(
        dataset=data.name,
        classes=list(data.classes),
        groups={"sex": list(SEX_GROUPS), "age": list(AGE_GROUPS)},
        image_size=args.image_size,
        env="Raspberry Pi 4",
    )
    study = open_study(f"{designer_name}-{seed}", f"sqlite:///{tmp / f'{designer_name}-{seed}.db'}")
    log = print if args.verbose else (lambda _msg: None)
    start = time.perf_counter()
    result = run_search(
        study,
        designer=create_designer(designer_name, **designer_options(designer_name, args)),
        evaluator=evaluator,
        task=task,
        choices=choices,
        iters=args.iters,
        rule=args.selection,
        tolerance=args.tolerance,
        accuracy=args.accuracy,
        seed=seed,
        log=log,
    )
    seconds = time.perf_counter() - start
    best = result.best
    test = ((best.metrics or {}).get("test") or {}) if best else {}
    llm = llm_stats(study) if designer_name == "llm" else None
    return {
        "llm": llm,
        "curve": hv_curve(result.candidates, float(args.max_params), args.accuracy),
        "evaluated": result.evaluated,
        "degenerate": sum(1 for c in result.candidates if c.status == "degenerate"),
        "stopped": result.stopped,
        "seconds": seconds,
        "failed": sum(1 for c in result.candidates if c.status == "failed"),
        "invalid": sum(1 for c in result.candidates if c.status == "invalid"),
        "selected": None
        if best is None
        else {
            "trial": best.number,
            "params": (best.metrics or {}).get("params"),
            "val_accuracy": ((best.metrics or {}).get("val") or {}).get("accuracy"),
            "val_balanced_accuracy": ((best.metrics or {}).get("val") or {}).get("balanced_accuracy"),
            "degenerate": best.status == "degenerate",
            "test_accuracy": test.get("accuracy"),
            "test_balanced_accuracy": test.get("balanced_accuracy"),
            "test_unfairness": test.get("unfairness"),
        },
    }


def designer_options(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Constructor options from the flags: the endpoint and model for the llm designer, none for the rest."""
    if name != "llm":
        return {}
    return {"model": args.llm_model, "base_url": args.llm_base_url, "structured_output": args.llm_structured}


def reply_kind(errors: list[str]) -> str:
    """What an LLM reply was: valid, or why not (by its first problem)."""
    if not errors:
        return "valid"
    first = errors[0]
    if first.startswith("(reply)"):
        return "unparseable"
    if "already tried" in first or "already proposed" in first:
        return "repeat"
    if first.startswith("$:") or (first.startswith("layers:") and "layers" in first.split(":", 1)[1]):
        return "shape/budget/count"
    return "template/choices"


def llm_stats(study) -> dict[str, Any]:
    """Replies, their validity and kinds, tokens and seconds of an llm search, read back from its study."""
    kinds: dict[str, int] = {}
    examples: dict[str, str] = {}
    proposals = valid = 0
    design_seconds, prompt_tokens, completion_tokens = [], {}, 0
    modes = set()
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        record = t.user_attrs.get("record") or {}
        if t.user_attrs.get("kind") != "search" or record.get("designer") != "llm":
            continue
        proposals += 1
        valid += t.user_attrs.get("spec") is not None
        modes.add(record.get("structured_output"))
        if record.get("design_seconds") is not None:
            design_seconds.append(record["design_seconds"])
        size = (record.get("prompt_size") or {}).get("tokens")
        if size:
            prompt_tokens.setdefault(t.user_attrs.get("iteration"), []).append(size)
        completion_tokens += (record.get("usage") or {}).get("completion_tokens") or 0
        for attempt in record.get("attempts") or []:
            if attempt.get("raw") is None:  # an HTTP failure, not a reply
                continue
            kind = reply_kind(attempt.get("errors") or [])
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind != "valid":
                examples.setdefault(kind, (attempt.get("errors") or [""])[0][:160])
    replies = sum(kinds.values())
    return {
        "replies": replies,
        "kinds": kinds,
        "examples": examples,
        "valid_architectures": valid,
        "proposals": proposals,
        "seconds_per_proposal": _mean(design_seconds),
        "prompt_tokens_per_iteration": {i: max(v) for i, v in sorted(prompt_tokens.items())},
        "completion_tokens": completion_tokens,
        "modes": sorted(m for m in modes if m),
    }


def evals_to_reach(curve: list[float], target: float) -> int | None:
    """1-based number of evaluations after which the hypervolume first reaches ``target`` (None: never)."""
    return next((i + 1 for i, hv in enumerate(curve) if hv >= target - 1e-12), None)


def median_reach(values: list[int | None]) -> float | None:
    """Median over repeats of the evaluations to reach random's final HV; a repeat that never did counts as
    more than any number, so the median is None (more than N) when half or more never reached it."""
    if not values:
        return None
    ordered = sorted(values, key=lambda v: math.inf if v is None else v)
    n = len(ordered)
    mid = ordered[(n - 1) // 2 : n // 2 + 1]
    if any(v is None for v in mid):
        return None
    return float(statistics.fmean(mid))


def _mean(values: list[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def _pm(values: list[Any], digits: int = 3) -> str:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return "n/a"
    std = statistics.pstdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.fmean(vals):.{digits}f} +/- {std:.{digits}f}" if len(vals) > 1 else f"{vals[0]:.{digits}f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from flnas.designers.llm import is_configured
    from flnas.space import load_choices

    threads = set_threads(args.threads)
    machine = machine_info()
    print_machine(machine)
    warnings.filterwarnings("ignore", message=".*experimental.*")  # optuna's set_metric_names notice
    designers = [d.strip() for d in args.designers.split(",") if d.strip()]
    server = None
    if args.local_llm:
        from flnas.designers.local import LocalServer

        server = LocalServer(threads=args.threads).start()
        args.llm_base_url, args.llm_model = server.base_url, args.llm_model or server.model
        print(f"local LLM: {server.command[server.command.index('--model') + 1]} at {server.base_url}")
        if "llm" not in designers:
            designers.append("llm")
    if "llm" in designers and not is_configured(args.llm_base_url):
        print("llm: no endpoint configured (OPENAI_BASE_URL / OPENAI_API_KEY); left out")
        designers.remove("llm")
    if "random" not in designers:
        designers.insert(0, "random")  # the reference for "evaluations to random's final hypervolume"
    choices = load_choices(None).model_copy(update={"max_params": args.max_params, "max_flops": args.max_flops})
    runs: dict[str, list[dict[str, Any]]] = {d: [] for d in designers}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flnas-bench-search-") as tmp_name, _stopping(server):
        tmp = Path(tmp_name)
        data = load_data(args, tmp)
        print(
            f"data: {data.name}, {data.image_size}x{data.image_size}, sizes "
            f"{ {k: len(v) for k, v in data.splits.items()} }; N={args.iters}, R={args.repeats}, "
            f"{args.epochs} epochs (patience {args.patience}), max params {args.max_params:,}, "
            f"max FLOPs {args.max_flops:,}, {threads} threads"
        )
        for seed in range(args.repeats):
            for name in designers:
                run = run_one(name, seed, data, choices, args, tmp)
                runs[name].append(run)
                print(
                    f"  {name} seed {seed}: final HV {run['curve'][-1] if run['curve'] else 0:.4f}, "
                    f"{run['evaluated']} evaluated ({run['degenerate']} degenerate, {run['failed']} failed, "
                    f"{run['invalid']} invalid), "
                    f"{run['seconds']:.0f} s, load {load_average()}",
                    flush=True,
                )
                if run["llm"]:
                    print(f"    llm: {run['llm']}", flush=True)
    total_s = time.perf_counter() - started

    def final(run: dict[str, Any]) -> float:
        return run["curve"][-1] if run["curve"] else 0.0

    reach: dict[str, list[int | None]] = {
        name: [evals_to_reach(run["curve"], final(runs["random"][r])) for r, run in enumerate(runs[name])]
        for name in designers
    }
    rows, figures_sel = [], {}
    for name in designers:
        sel = [run["selected"] or {} for run in runs[name]]
        hits = [n for n in reach[name] if n is not None]
        median = median_reach(reach[name])
        shown = f">{args.iters}" if median is None else f"{median:g}"
        reached = f"{shown} ({len(hits)}/{len(reach[name])})"
        rows.append(
            [
                name,
                f"{sum(r['evaluated'] for r in runs[name])}/{args.iters * len(runs[name])}",
                str(sum(r["degenerate"] for r in runs[name])),
                _pm([final(r) for r in runs[name]], 4),
                reached,
                f"{sum(1 for s in sel if s)}/{len(sel)}",
                _pm([s.get("val_balanced_accuracy") for s in sel]),
                _pm([s.get("test_accuracy") for s in sel]),
                _pm([s.get("test_balanced_accuracy") for s in sel]),
                _pm([s.get("test_unfairness") for s in sel]),
                fmt(_mean([s.get("params") for s in sel]), 0),
                f"{_mean([r['seconds'] for r in runs[name]]):.0f}",
            ]
        )
        figures_sel[name] = {
            k: _mean([s.get(k) for s in sel])
            for k in (
                "val_accuracy",
                "val_balanced_accuracy",
                "test_accuracy",
                "test_balanced_accuracy",
                "test_unfairness",
                "params",
            )
        }
        figures_sel[name]["selected"] = sum(1 for s in sel if s)
        figures_sel[name]["degenerate_selected"] = sum(1 for s in sel if s.get("degenerate"))
    print()
    print(
        table(
            rows,
            [
                "designer",
                "evaluated",
                "degenerate",
                "final HV",
                "evals to random's final HV (median, reached)",
                "selected",
                "selected val bal. acc",
                "test acc",
                "test bal. acc",
                "test unfairness",
                "params",
                "s/search",
            ],
        )
    )
    print(
        f"\nHV reference point (1, 1, 1) on (1 - val {args.accuracy} accuracy, val unfairness, params / "
        f"{args.max_params:,}); evals to random's final HV: median over repeats (never = more than N); "
        f"total {total_s:.0f} s"
    )
    curves = {
        name: [
            _mean([run["curve"][i] for run in runs[name] if i < len(run["curve"])])
            for i in range(max((len(run["curve"]) for run in runs[name]), default=0))
        ]
        for name in designers
    }
    figures = {
        "hypervolume_final": {name: _mean([final(r) for r in runs[name]]) for name in designers},
        "hypervolume_curve": curves,
        "evals_to_random_final": {name: reach[name] for name in designers},
        "evals_to_random_final_median": {name: median_reach(reach[name]) for name in designers},
        "degenerate": {name: [r["degenerate"] for r in runs[name]] for name in designers},
        "evaluated": {name: [r["evaluated"] for r in runs[name]] for name in designers},
        "selected_test": figures_sel,
        "seconds": total_s,
        "settings": {
            "iters": args.iters,
            "repeats": args.repeats,
            "image_size": args.image_size,
            "epochs": args.epochs,
            "patience": args.patience,
            "max_params": args.max_params,
            "max_flops": args.max_flops,
            "data": str(args.data) if args.data else f"synthetic n={args.synthetic_n}",
            "threads": threads,
            "class_weighted": args.class_weighted,
            "accuracy": args.accuracy,
            "selection": {"rule": args.selection, "tolerance": args.tolerance},
            "reference_point": [1.0, 1.0, 1.0],
        },
    }
    if "llm" in runs and runs["llm"]:
        figures["llm"] = llm_summary(runs["llm"], args.iters)
    emit_json("search_quality", figures, machine=machine)
    return figures


def _stopping(server):
    """A context that stops the local LLM server (if one was started) when the benchmark ends."""
    import contextlib

    return contextlib.closing(server) if server is not None else contextlib.nullcontext()


def llm_summary(llm_runs: list[dict[str, Any]], iters: int) -> dict[str, Any]:
    """The llm row: validity per reply, replies per valid architecture, seconds and tokens (all repeats)."""
    stats = [r["llm"] for r in llm_runs if r.get("llm")]
    kinds: dict[str, int] = {}
    examples: dict[str, str] = {}
    for s in stats:
        for kind, n in s["kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + n
        for kind, text in s["examples"].items():
            examples.setdefault(kind, text)
    replies = sum(kinds.values())
    valid_archs = sum(s["valid_architectures"] for s in stats)
    per_iteration: dict[int, list[int]] = {}
    for s in stats:
        for i, n in s["prompt_tokens_per_iteration"].items():
            per_iteration.setdefault(int(i), []).append(n)
    summary = {
        "replies": replies,
        "valid_replies": kinds.get("valid", 0),
        "validity_per_reply": kinds.get("valid", 0) / replies if replies else None,
        "validity_per_reply_counting_repeats_as_valid": (
            (kinds.get("valid", 0) + kinds.get("repeat", 0)) / replies if replies else None
        ),
        "kinds": kinds,
        "examples": examples,
        "replies_per_valid_architecture": replies / valid_archs if valid_archs else None,
        "seconds_per_proposal": _mean([s["seconds_per_proposal"] for s in stats]),
        "prompt_tokens_per_iteration": {i: _mean(v) for i, v in sorted(per_iteration.items())},
        "completion_tokens_per_iteration": _mean([s["completion_tokens"] / iters for s in stats]),
        "modes": sorted({m for s in stats for m in s["modes"]}),
    }
    print("\nllm designer (all repeats):")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return summary


if __name__ == "__main__":
    main()
