"""Search quality of each designer at an equal budget: hypervolume, speed to random's level, selected model.

For every designer (random, evolution, heuristic, fahana-rl, tpe, nsga2, gp, and llm only when an endpoint
is configured) and every repeat r = 0..R-1, the search as `flnas search` assembles it
(``flnas.api.assembly.run``) runs N iterations (N evaluated candidates; invalid proposals are re-designed
and do not count) in a fresh SQLite study, on the same prepared data, with search seed r and training seed
r, the same EvaluatorConfig and the same Choices. Then:

- hypervolume after each evaluation of the front of (val accuracy up, val unfairness down, params down),
  computed on the minimised point (1 - val accuracy, val unfairness, params / max_params) against the
  reference point (1, 1, 1): the unit cube, so 1.0 would be a perfect, fair, free network. The accuracy
  is the study's accuracy of record (``--accuracy``: balanced by default, as for a new study; ``plain``
  with ``--no-class-weighted`` is the paper's preset). An undefined unfairness counts as 1 (the study's
  convention); failed and degenerate candidates add nothing. Computed with Optuna's
  exact WFG implementation (``optuna._hypervolume.compute_hypervolume``; Optuna 5 has no public one);
- evaluations needed to reach random search's final hypervolume of the same repeat (">N" when never);
- the candidate chosen by GetBestMetrics (``flnas.records.get_best``, the ``--selection`` rule,
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

A long measurement can be split and cut short without losing what finished: ``--seeds 0,2`` and
``--seeds 1,3`` in two processes, each with ``--runs-out FILE`` (one JSON line per search), then
``--summarize FILE1 FILE2`` for the tables; only repeats that every designer finished are counted.
``--iters 30 --also-at 10`` reports N = 30 and N = 10 from the same searches (their first 10 evaluations;
a designer's proposals do not depend on N, see tests/test_sampler_designers.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_json, load_average, machine_info, print_machine, set_threads, table  # noqa: E402
from _search_summary import (  # noqa: E402,F401  (re-exported: the tests and readers use them from here)
    _mean,
    evals_to_reach,
    hv_curve,
    hypervolume,
    hypervolume_grid,
    median_reach,
)

DESIGNERS = ["random", "evolution", "heuristic", "fahana-rl", "tpe", "nsga2", "gp", "llm"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from flnas.api import defaults

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--designers", default=None, help=f"comma list (default {','.join(DESIGNERS)}; llm only when configured)"
    )
    p.add_argument("--iters", type=int, default=10, help="N: evaluated candidates per search")
    p.add_argument("--repeats", type=int, default=5, help="R: searches per designer (seeds 0..R-1)")
    p.add_argument("--seeds", default=None, help="comma list of seeds instead of 0..R-1 (to split a run)")
    p.add_argument(
        "--also-at",
        default="",
        help="comma list of N' < N also reported, from the first N' evaluations of each search (a designer's "
        "proposals do not depend on N, so this equals a search with --iters N')",
    )
    p.add_argument("--runs-out", type=Path, default=None, help="append each search as a JSON line to this file")
    p.add_argument("--summarize", type=Path, nargs="+", default=None, help="only report runs from these files")
    p.add_argument("--max-seconds", type=float, default=None, help="start no new repeat after this many seconds")
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
    p.add_argument(
        "--selection", default=defaults.SELECTION, help="GetBestMetrics rule (flnas search --help lists them)"
    )
    p.add_argument("--tolerance", type=float, default=defaults.TOLERANCE, help="accuracy tolerance of the rule")
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
    args.seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else list(range(args.repeats))
    args.also_at = [int(x) for x in args.also_at.split(",") if x.strip() and int(x) < args.iters]
    from flnas.errors import FlnasError
    from flnas.records import check_rule

    try:
        check_rule(args.selection, args.tolerance, args.accuracy)
    except FlnasError as exc:
        p.error(str(exc))
    return args


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
    from flnas.api.assembly import attach, make_designer, run
    from flnas.evaluate.config import EvaluatorConfig
    from flnas.study.storage import open_study

    config = EvaluatorConfig(
        epochs=args.epochs,
        patience=args.patience,
        seed=seed,
        device="cpu",
        measure_hardware=args.hardware,
        max_train_seconds=args.max_train_seconds,
        num_threads=args.threads,
        class_weighted_loss=args.class_weighted,
    )
    study = open_study(f"{designer_name}-{seed}", f"sqlite:///{tmp / f'{designer_name}-{seed}.db'}")
    # the search as `flnas search` assembles it, on the data prepared once for every search
    assembly = attach(study, data=data, config=config, choices=choices, accuracy=args.accuracy)
    log = print if args.verbose else (lambda _msg: None)
    start = time.perf_counter()
    result = run(
        assembly,
        make_designer(designer_name, **designer_options(designer_name, args)),
        iters=args.iters,
        selection=args.selection,
        tolerance=args.tolerance,
        seed=seed,
        log=log,
    )
    seconds = time.perf_counter() - start
    from flnas.records import is_evaluated

    return {
        "designer": designer_name,
        "seed": seed,
        "iters": args.iters,
        "llm": llm_stats(study) if designer_name == "llm" else None,
        "evaluated": result.evaluated,
        "stopped": result.stopped,
        "seconds": seconds,
        "invalid": sum(1 for c in result.candidates if c.status == "invalid"),
        # every evaluated candidate in trial order, with what the summary at any N <= iters needs
        "candidates": [_slim(c) for c in sorted(result.candidates, key=lambda c: c.number) if is_evaluated(c)],
    }


def _slim(c) -> dict[str, Any]:
    """A candidate's status and the metrics the summary reads (validation for selection, test for report)."""
    metrics = c.metrics or {}
    keep = ("accuracy", "balanced_accuracy", "unfairness")
    return {
        "number": c.number,
        "iteration": c.iteration,
        "status": c.status,
        "params": metrics.get("params"),
        "val": {k: (metrics.get("val") or {}).get(k) for k in keep},
        "test": {k: (metrics.get("test") or {}).get(k) for k in keep},
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from flnas.designers.llm import is_configured
    from flnas.space import load_choices

    threads = set_threads(args.threads)
    machine = machine_info()
    print_machine(machine)
    warnings.filterwarnings("ignore", message=".*experimental.*")  # optuna's set_metric_names notice
    if args.summarize:
        runs = [json.loads(line) for path in args.summarize for line in path.read_text().splitlines() if line]
        return report(runs, args, machine, total_s=sum(r["seconds"] for r in runs))
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
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flnas-bench-search-") as tmp_name, _stopping(server):
        tmp = Path(tmp_name)
        data = load_data(args, tmp)
        print(
            f"data: {data.name}, {data.image_size}x{data.image_size}, sizes "
            f"{ {k: len(v) for k, v in data.splits.items()} }; N={args.iters}, seeds {args.seeds}, "
            f"{args.epochs} epochs (patience {args.patience}), max params {args.max_params:,}, "
            f"max FLOPs {args.max_flops:,}, {threads} threads, {args.accuracy} accuracy, "
            f"class-weighted {args.class_weighted}"
        )
        for seed in args.seeds:
            if args.max_seconds and time.perf_counter() - started > args.max_seconds:
                print(f"--max-seconds {args.max_seconds:g} reached: no new repeat started", flush=True)
                break
            for name in designers:
                run = run_one(name, seed, data, choices, args, tmp)
                runs.append(run)
                if args.runs_out is not None:
                    with args.runs_out.open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(run) + "\n")
                curve = hv_curve(run["candidates"], float(args.max_params), args.accuracy)
                print(
                    f"  {name} seed {seed}: final HV {curve[-1] if curve else 0:.4f}, {run['evaluated']} evaluated "
                    f"({sum(c['status'] == 'degenerate' for c in run['candidates'])} degenerate, "
                    f"{sum(c['status'] == 'failed' for c in run['candidates'])} failed, {run['invalid']} invalid), "
                    f"{run['seconds']:.0f} s, load {load_average()}",
                    flush=True,
                )
                if run["llm"]:
                    print(f"    llm: {run['llm']}", flush=True)
    return report(runs, args, machine, total_s=time.perf_counter() - started)


def report(runs: list[dict[str, Any]], args: argparse.Namespace, machine: dict[str, Any], *, total_s: float):
    """Print the tables at N (and at each --also-at N') and emit the JSON line; only complete repeats count."""
    from _search_summary import complete_repeats, summary

    runs = complete_repeats(runs)
    figures: dict[str, Any] = {"seconds": total_s}
    for n in sorted({args.iters, *args.also_at}, reverse=True):
        rows, header, figs = summary(runs, n, args)
        print(f"\nN = {n} ({len({r['seed'] for r in runs})} repeats)")
        print(table(rows, header))
        figures[f"N={n}"] = figs
    print(
        f"\nHV reference point (1, 1, 1) on (1 - val {args.accuracy} accuracy, val unfairness, params / "
        f"{args.max_params:,}); evals to random's final HV: median over repeats of the evaluations a "
        f"designer needed to reach the final HV of random search with the same seed and N (never = more "
        f"than N); total {total_s:.0f} s"
    )
    figures["settings"] = {
        "iters": args.iters,
        "also_at": args.also_at,
        "seeds": sorted({r["seed"] for r in runs}),
        "image_size": args.image_size,
        "epochs": args.epochs,
        "patience": args.patience,
        "max_params": args.max_params,
        "max_flops": args.max_flops,
        "data": str(args.data) if args.data else f"synthetic n={args.synthetic_n}",
        "class_weighted": args.class_weighted,
        "accuracy": args.accuracy,
        "selection": {"rule": args.selection, "tolerance": args.tolerance},
        "reference_point": [1.0, 1.0, 1.0],
    }
    llm_runs = [r for r in runs if r["designer"] == "llm"]
    if llm_runs:
        figures["llm"] = llm_summary(llm_runs, args.iters)
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
