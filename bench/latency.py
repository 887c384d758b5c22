"""Inference latency (batch 2, as in the paper) and throughput of the baselines and a searched model.

Each model runs in PyTorch eager mode and under ONNX Runtime, each with 1 thread (an edge-device proxy) and
with all cores. Timing: warm up, then ``--repeats`` samples, each the mean of enough calls to last at least
``--min-sample-ms`` (short calls are noisy on their own); the median is reported with the coefficient of
variation (std / mean) over the samples. Target: CV under 5%. Threads are pinned: ``torch.set_num_threads``
for eager, ``intra_op_num_threads`` (inter-op 1, sequential execution) for ONNX Runtime.

    .venv/bin/python bench/latency.py                       # 4 baselines + the example spec, 64x64
    .venv/bin/python bench/latency.py --spec runs/best/spec.json --image-size 64
    .venv/bin/python bench/latency.py --quick               # seconds; smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    calibrate_inner,
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
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--min-sample-ms", type=float, default=40.0)
    p.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    args = p.parse_args(argv)
    if args.quick:
        args.models = f"{SEARCHED},resnet18"
        args.image_size = 32
        args.repeats, args.warmup, args.min_sample_ms = 5, 2, 5.0
        args.throughput_batch, args.threads = 8, "1"
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


def measure(fn, args: argparse.Namespace) -> dict[str, float]:
    inner = calibrate_inner(fn, min_sample_s=args.min_sample_ms / 1000)
    return spread(time_repeats(fn, warmup=args.warmup, repeats=args.repeats, inner=inner))


def bench_model(name: str, model, onnx_path: Path | None, threads: list[int], args) -> list[dict[str, Any]]:
    import torch

    rows = []
    size = args.image_size
    for engine in args.engines.split(","):
        for t in threads:
            set_threads(t)
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
            lat = measure(run(args.batch_size), args)
            tput = measure(run(args.throughput_batch), args)
            rows.append(
                {
                    "model": name,
                    "engine": engine,
                    "threads": t,
                    "latency_ms": 1000 * lat["median"],
                    "latency_cv": lat["cv"],
                    "throughput": args.throughput_batch / tput["median"],
                    "throughput_cv": tput["cv"],
                    "load": load_average(),
                }
            )
            r = rows[-1]
            print(
                f"  {name:18s} {engine:5s} {t} thr: latency {r['latency_ms']:.3f} ms "
                f"(cv {100 * r['latency_cv']:.1f}%),"
                f" throughput {r['throughput']:.1f} img/s (cv {100 * r['throughput_cv']:.1f}%)",
                f" load {r['load']}",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    cores = os.cpu_count() or 1
    threads = sorted({cores if t.strip() == "all" else int(t) for t in args.threads.split(",")})
    machine = machine_info()
    print_machine(machine)
    print(
        f"image {args.image_size}x{args.image_size}, latency batch {args.batch_size}, throughput batch "
        f"{args.throughput_batch}, threads {threads}, {args.repeats} samples of >= {args.min_sample_ms} ms"
    )
    rows: list[dict[str, Any]] = []
    params: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="flnas-latency-") as tmp:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            model = build(name, args.spec, args.num_classes)
            params[name] = sum(p.numel() for p in model.parameters())
            onnx_path = export(model, Path(tmp) / f"{name}.onnx", args.image_size) if "onnx" in args.engines else None
            rows += bench_model(name, model, onnx_path, threads, args)
    set_threads(None)

    header = ["model", "params", "engine", "threads", "latency b2 (ms)", "cv", "throughput (img/s)", "cv"]
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
                    f"{100 * r['latency_cv']:.1f}%",
                    f"{r['throughput']:.1f}",
                    f"{100 * r['throughput_cv']:.1f}%",
                ]
                for r in rows
            ],
            header,
        )
    )
    max_cv = max(max(r["latency_cv"], r["throughput_cv"]) for r in rows)
    print(
        f"\nlargest coefficient of variation: {100 * max_cv:.1f}% (target < {100 * CV_TARGET:.0f}%: "
        f"{'met' if max_cv < CV_TARGET else 'NOT met'})"
    )

    def key(r):
        return f"{r['engine']}_{r['threads']}t"

    figures = {
        "image_size": args.image_size,
        "params": params,
        "latency_ms": {m: {key(r): r["latency_ms"] for r in rows if r["model"] == m} for m in params},
        "latency_cv": {m: {key(r): r["latency_cv"] for r in rows if r["model"] == m} for m in params},
        "throughput": {m: {key(r): r["throughput"] for r in rows if r["model"] == m} for m in params},
        "throughput_cv": {m: {key(r): r["throughput_cv"] for r in rows if r["model"] == m} for m in params},
        "max_cv": max_cv,
        "cv_target_met": max_cv < CV_TARGET,
    }
    emit_json("latency", figures, machine=machine)
    return figures


if __name__ == "__main__":
    main()
