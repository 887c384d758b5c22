"""Inference latency (batch 2, as in the paper) and throughput of the baselines and a searched model.

Each model runs in PyTorch eager mode and under ONNX Runtime, each with 1 thread (an edge-device proxy) and
with all cores. Threads are pinned: ``torch.set_num_threads`` for eager, ``intra_op_num_threads`` (inter-op
1, sequential execution) for ONNX Runtime.

Timing. Every (model, engine, threads, batch) cell is measured in ``--rounds`` rounds that are interleaved:
round 1 visits every cell, then round 2 visits every cell, and so on, so a slow drift of the machine spreads
over all cells instead of landing on one. A visit warms up (``--warmup`` calls), then times single calls,
at least ``--samples`` of them and at least ``--min-visit-ms`` in all; the garbage collector is off while
timing. Single calls and medians, not means of many calls: on a shared VM a few calls in every second are
slowed by other tenants, and a mean carries each of them into the figure while a median ignores them.
Reported per cell:

- the figure: the median over all calls of all rounds;
- ``cv`` (the target, under 5%): the coefficient of variation (std / mean) of the per-round medians, i.e.
  how far the reported figure moves when the measurement is repeated;
- ``jitter``: the coefficient of variation over all single calls (the call-to-call noise of the machine);
- the fraction of CPU time the hypervisor reported stolen from this VM while the cell ran (``/proc/stat``).

A reference cell (a fixed pure-Python loop: no memory traffic, no threads, no libraries) is measured in
every round too; its ``cv`` is the machine's own noise floor, printed under the table.

    .venv/bin/python bench/latency.py                       # 4 baselines + the example spec, 64x64
    .venv/bin/python bench/latency.py --spec runs/best/spec.json --image-size 64
    .venv/bin/python bench/latency.py --quick               # seconds; smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    calibrate_inner,
    cpu_times,
    emit_json,
    fmt,
    load_average,
    machine_info,
    print_machine,
    set_threads,
    spread,
    table,
    time_repeats,
)

BASELINES = ["resnet18", "resnet34", "mobilenetv1_100", "mobilenetv2_100"]
SEARCHED = "searched"
CV_TARGET = 0.05


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--models",
        default=",".join([*BASELINES, SEARCHED]),
        help="comma list of timm model names and/or 'searched'",
    )
    p.add_argument(
        "--spec",
        type=Path,
        default=None,
        help="architecture JSON of the searched model (default: flnas.space.example_spec())",
    )
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--num-classes", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=2, help="latency batch size (the paper's 2)")
    p.add_argument("--throughput-batch", type=int, default=32)
    p.add_argument("--threads", default="1,all", help="comma list of thread counts; 'all' = every core")
    p.add_argument("--engines", default="eager,onnx")
    p.add_argument("--rounds", type=int, default=5, help="interleaved repeats of every measurement")
    p.add_argument("--samples", type=int, default=20, help="timed calls per cell and round, at least")
    p.add_argument("--min-visit-ms", type=float, default=300.0, help="timed milliseconds per cell and round, at least")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls at each visit of a cell")
    p.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    args = p.parse_args(argv)
    if args.quick:
        args.models = f"{SEARCHED},resnet18"
        args.image_size = 32
        args.rounds, args.samples, args.warmup, args.min_visit_ms = 2, 3, 1, 5.0
        args.throughput_batch, args.threads = 8, "1"
    if min(args.rounds, args.samples) < 1:
        p.error("--rounds and --samples must be at least 1")
    return args


def build(name: str, spec_path: Path | None, num_classes: int):
    """A model in eval mode: a timm baseline (random weights) or the searched spec."""
    if name == SEARCHED:
        from flnas.space import ArchSpec, build_model, example_spec

        spec = ArchSpec.model_validate(json.loads(spec_path.read_text())) if spec_path else example_spec()
        return build_model(spec, num_classes).eval()
    import timm

    return timm.create_model(name, pretrained=False, num_classes=num_classes).eval()


def export(model, path: Path, image_size: int) -> Path:
    """ONNX with a dynamic batch axis, exported exactly as the evaluator does (so ORT runs both batch sizes)."""
    from flnas.evaluate.hardware import export_onnx

    return export_onnx(model, path, image_size)


@dataclass
class Cell:
    """One measured configuration and its samples, round by round."""

    model: str
    engine: str
    threads: int
    batch: int
    call: Callable[[], Any]
    calls: int = 0  # timed calls per visit (calibrated at the first visit)
    rounds: list[list[float]] = field(default_factory=list)
    steal: list[int] = field(default_factory=lambda: [0, 0])  # stolen and total jiffies while measured

    def visit(self, args: argparse.Namespace) -> None:
        if self.engine == "eager":
            set_threads(self.threads)
        if not self.calls:
            for _ in range(args.warmup):
                self.call()
            self.calls = max(args.samples, calibrate_inner(self.call, min_sample_s=args.min_visit_ms / 1000))
        before = cpu_times()
        self.rounds.append(time_repeats(self.call, warmup=args.warmup, repeats=self.calls))
        after = cpu_times()
        if before and after:
            self.steal[0] += after[0] - before[0]
            self.steal[1] += after[1] - before[1]

    def summary(self) -> dict[str, float | None]:
        medians = [statistics.median(r) for r in self.rounds]
        per_round = spread(medians)
        every = spread([s for r in self.rounds for s in r])
        return {
            "median": every["median"],
            "cv": per_round["cv"] if len(medians) > 1 else None,
            "jitter": every["cv"],
            "steal": self.steal[0] / self.steal[1] if self.steal[1] else None,
        }


def reference_call() -> None:
    """A fixed pure-Python workload (about 1 ms): its spread is the machine's noise floor."""
    total = 0
    for i in range(20_000):
        total += i * i


def make_cells(name: str, model, onnx_path: Path | None, threads: list[int], args) -> list[Cell]:
    import torch

    cells = []
    size = args.image_size
    for engine in args.engines.split(","):
        for t in threads:
            if engine == "eager":

                def run(batch: int):
                    x = torch.randn(batch, 3, size, size)

                    def call():
                        with torch.inference_mode():
                            model(x)

                    return call
            elif engine == "onnx":
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads, opts.inter_op_num_threads = t, 1
                opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

                def run(batch: int, session=session):
                    feed = {"input": torch.randn(batch, 3, size, size).numpy()}
                    return lambda: session.run(None, feed)
            else:
                raise SystemExit(f"error: unknown engine {engine!r}; use eager and/or onnx")
            for batch in (args.batch_size, args.throughput_batch):
                cells.append(Cell(name, engine, t, batch, run(batch)))
    return cells


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    cores = os.cpu_count() or 1
    threads = sorted({cores if t.strip() == "all" else int(t) for t in args.threads.split(",")})
    machine = machine_info()
    print_machine(machine)
    print(
        f"image {args.image_size}x{args.image_size}, latency batch {args.batch_size}, throughput batch "
        f"{args.throughput_batch}, threads {threads}; {args.rounds} interleaved rounds, per cell and round "
        f">= {args.samples} single calls and >= {args.min_visit_ms:g} ms"
    )
    cells: list[Cell] = []
    params: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="flnas-latency-") as tmp:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            model = build(name, args.spec, args.num_classes)
            params[name] = sum(p.numel() for p in model.parameters())
            onnx_path = export(model, Path(tmp) / f"{name}.onnx", args.image_size) if "onnx" in args.engines else None
            cells += make_cells(name, model, onnx_path, threads, args)
        reference = Cell("reference", "python", 1, 1, reference_call)
        for r in range(args.rounds):
            for cell in [reference, *cells]:
                cell.visit(args)
            print(f"  round {r + 1}/{args.rounds} done, load {load_average()}", flush=True)
    set_threads(None)

    rows: list[dict[str, Any]] = []
    for lat, tput in zip(cells[0::2], cells[1::2], strict=True):
        a, b = lat.summary(), tput.summary()
        rows.append(
            {
                "model": lat.model,
                "engine": lat.engine,
                "threads": lat.threads,
                "latency_ms": 1000 * a["median"],
                "latency_cv": a["cv"],
                "latency_jitter": a["jitter"],
                "throughput": tput.batch / b["median"],
                "throughput_cv": b["cv"],
                "throughput_jitter": b["jitter"],
                "steal": max((s for s in (a["steal"], b["steal"]) if s is not None), default=None),
            }
        )
    header = [
        "model",
        "params",
        "engine",
        "threads",
        f"latency b{args.batch_size} (ms)",
        "cv",
        "jitter",
        "throughput (img/s)",
        "cv",
        "jitter",
        "steal",
    ]
    print()
    print(
        table(
            [
                [
                    r["model"],
                    f"{params[r['model']]:,}",
                    r["engine"],
                    str(r["threads"]),
                    fmt(r["latency_ms"]),
                    _pct(r["latency_cv"]),
                    _pct(r["latency_jitter"]),
                    f"{r['throughput']:.1f}",
                    _pct(r["throughput_cv"]),
                    _pct(r["throughput_jitter"]),
                    _pct(r["steal"]),
                ]
                for r in rows
            ],
            header,
        )
    )
    cvs = [r[k] for r in rows for k in ("latency_cv", "throughput_cv") if r[k] is not None]
    max_cv = max(cvs) if cvs else None
    max_jitter = max(max(r["latency_jitter"], r["throughput_jitter"]) for r in rows)
    verdict = "n/a (one round)" if max_cv is None else ("met" if max_cv < CV_TARGET else "NOT met")
    floor = reference.summary()
    print(
        f"\nlargest cv over rounds: {_pct(max_cv)} (target < {100 * CV_TARGET:.0f}%: {verdict}); "
        f"largest single-call jitter {_pct(max_jitter)}\n"
        f"machine noise floor (pure-Python reference loop, {1000 * floor['median']:.3f} ms): cv {_pct(floor['cv'])}, "
        f"jitter {_pct(floor['jitter'])}"
    )

    def key(r):
        return f"{r['engine']}_{r['threads']}t"

    def per_model(field_name: str) -> dict[str, dict[str, Any]]:
        return {m: {key(r): r[field_name] for r in rows if r["model"] == m} for m in params}

    figures = {
        "image_size": args.image_size,
        "params": params,
        **{
            name: per_model(name)
            for name in (
                "latency_ms",
                "latency_cv",
                "latency_jitter",
                "throughput",
                "throughput_cv",
                "throughput_jitter",
                "steal",
            )
        },
        "max_cv": max_cv,
        "max_jitter": max_jitter,
        "noise_floor": {"ms": 1000 * floor["median"], "cv": floor["cv"], "jitter": floor["jitter"]},
        "cv_target_met": None if max_cv is None else max_cv < CV_TARGET,
        "settings": {
            "rounds": args.rounds,
            "samples": args.samples,
            "min_visit_ms": args.min_visit_ms,
            "warmup": args.warmup,
            "threads": threads,
        },
    }
    emit_json("latency", figures, machine=machine)
    return figures


if __name__ == "__main__":
    main()
