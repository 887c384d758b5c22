"""Training throughput of the evaluator against a minimal PyTorch loop and against the machine's peak.

For three fixed specs (small ~50K params, medium ~300K, ResNet-like with residual layers), built with
``flnas.space.build_model``, this trains the same initial weights on the same in-memory uint8 tensors with:

- flnas: ``flnas.evaluate.train.train_model`` (the evaluator's training function) with ``patience=0`` (no
  early stop), an empty validation split (so only training is timed; the loop still keeps a best-weights
  copy per epoch, which counts against flnas), hardware measurement off;
- minimal: a hand-written loop: seeded permutation, slice, the same augmentation function when
  ``--augment`` (off by default, in both), ``(x.float() - mean) / std``, forward, cross-entropy,
  ``zero_grad``/``backward``/``step`` with the same optimizer (``make_optimizer``: AdamW, same lr/decay).

Same batch size, epochs, thread count; ``n`` is a multiple of the batch size so both see the same images.
Each repeat runs both (order alternating) after an untimed warm-up epoch; the best of the repeats is
used (interference from other processes only ever slows a run down). Target: ratio >= 0.95.

Peak: the best FLOP/s of ``torch.mm`` on large float32 matrices or of a large 3x3 convolution, whichever is
higher (warmed up, best of N; see ``_training.measured_peak``: MKL's GEMM on AMD CPUs is far below what
oneDNN's convolutions reach). Training FLOPs per
image: ``FlopCounterMode`` over one forward + backward pass of a batch in train mode (conv/linear only; a
multiply-add = 2 FLOPs), also shown against 3x the forward FLOPs of ``count_flops``.

Precision and memory format (``--settings``, default all four; ``--settings fp32`` for fp32 only):
``train_model`` in fp32, fp32 + channels_last, bf16 autocast and bf16 + channels_last on the same initial
weights, an untimed warm-up epoch per setting, the settings' order alternating over the repeats, best repeat
kept; each setting's images/s, speed-up over fp32, and fraction of the peak of its own arithmetic (the
fp32 peak for fp32, the bfloat16 one for bf16; the same training FLOPs per image).
``bench/precision.py`` prints the same comparison (it calls :func:`setting_speeds`) plus bf16's accuracy cost.

    .venv/bin/python bench/evaluator_throughput.py                # 32x32, 512 images, 2 epochs, 3 repeats
    .venv/bin/python bench/evaluator_throughput.py --image-size 64 --augment
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_json, fmt, load_average, machine_info, print_machine, set_threads, table  # noqa: E402
from _training import (  # noqa: E402
    SETTINGS,
    SPECS,
    describe_peak,
    measured_peak,
    parse_settings,
    precision_table,
    train_flops_per_image,
)

RATIO_TARGET = 0.95


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--specs", default=",".join(SPECS), help=f"comma list of {', '.join(SPECS)}")
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"comma list of {', '.join(SETTINGS)}")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--n", type=int, default=512, help="training images (rounded down to a batch multiple)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--augment", action="store_true", help="flip/rotate augmentation in both loops")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--matmul-size", type=int, default=2048, help="peak: matrix size (conv channels: size // 8)")
    p.add_argument("--matmul-repeats", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    args = p.parse_args(argv)
    if args.quick:
        args.image_size, args.n, args.batch_size, args.epochs, args.repeats = 16, 64, 32, 1, 1
        args.matmul_size, args.matmul_repeats = 256, 3
        args.threads = args.threads or 1  # steady on a busy machine
    args.n = max(args.batch_size, args.n // args.batch_size * args.batch_size)
    args.settings = parse_settings(args.settings)
    return args


def minimal_loop(model, images, labels, *, mean, std, config, augment_fn) -> None:
    """The hand-written reference: what any PyTorch user would write for the same training."""
    import torch
    from torch import nn

    from flnas.evaluate.train import make_optimizer

    optimizer = make_optimizer(model, config)
    criterion = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(config.seed)
    n, bs = labels.shape[0], config.batch_size
    model.train()
    for _ in range(config.epochs):
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            x = images[idx]
            if augment_fn is not None:
                x = augment_fn(x, generator)
            x = (x.float() - mean) / std
            loss = criterion(model(x), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def run_spec(name: str, args: argparse.Namespace, images, labels) -> dict[str, Any]:
    import torch

    from flnas.evaluate.config import EvaluatorConfig
    from flnas.evaluate.hardware import count_flops
    from flnas.evaluate.train import Normalizer, augment, train_model
    from flnas.space import ArchSpec, build_model

    torch.manual_seed(0)
    init = build_model(ArchSpec.model_validate(SPECS[name]), 8)
    params = sum(p.numel() for p in init.parameters())
    normalize = Normalizer.from_images(images)
    mean = torch.tensor(normalize.mean).view(1, 3, 1, 1)
    std = torch.tensor(normalize.std).view(1, 3, 1, 1)
    device = torch.device("cpu")

    def config(epochs: int) -> EvaluatorConfig:
        return EvaluatorConfig(
            epochs=epochs,
            patience=0,
            batch_size=args.batch_size,
            augment=args.augment,
            measure_hardware=False,
            device="cpu",
            seed=0,
        )

    def flnas_run(epochs: int) -> float:
        model = copy.deepcopy(init)
        start = time.perf_counter()
        train_model(
            model,
            images,
            labels,
            images[:0],
            labels[:0],
            config(epochs),
            device=device,
            normalize=normalize,
            num_classes=8,
        )
        return time.perf_counter() - start

    def minimal_run(epochs: int) -> float:
        model = copy.deepcopy(init)
        start = time.perf_counter()
        minimal_loop(
            model,
            images,
            labels,
            mean=mean,
            std=std,
            config=config(epochs),
            augment_fn=augment if args.augment else None,
        )
        return time.perf_counter() - start

    flnas_run(1), minimal_run(1)  # warm-up: allocator, oneDNN primitives
    times: dict[str, list[float]] = {"flnas": [], "minimal": []}
    for r in range(args.repeats):
        order = [("flnas", flnas_run), ("minimal", minimal_run)]
        for label, fn in order if r % 2 == 0 else order[::-1]:
            times[label].append(fn(args.epochs))
    seen = args.n * args.epochs
    ips = {k: seen / min(v) for k, v in times.items()}
    ips_median = {k: seen / sorted(v)[len(v) // 2] for k, v in times.items()}
    train_flops = train_flops_per_image(init, args.image_size)
    fwd_flops = count_flops(init, args.image_size)
    return {
        "params": params,
        "flnas_ips": ips["flnas"],
        "minimal_ips": ips["minimal"],
        "ratio": ips["flnas"] / ips["minimal"],
        "ratio_median": ips_median["flnas"] / ips_median["minimal"],
        "train_flops_per_image": train_flops,
        "forward_flops_per_image": fwd_flops,
        "times": times,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    threads = set_threads(args.threads)
    machine = machine_info()
    print_machine(machine)
    print(
        f"{args.n} images {args.image_size}x{args.image_size}, batch {args.batch_size}, "
        f"{args.epochs} epochs, "
        f"best of {args.repeats} repeats, augment {'on' if args.augment else 'off'} (both loops), "
        f"{threads} torch threads"
    )
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.n, 3, args.image_size, args.image_size), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 8, (args.n,), generator=gen)

    measured = measured_peak(args.matmul_size, args.matmul_repeats)
    print(describe_peak("fp32", measured, args.matmul_size, args.matmul_repeats))
    peak = measured["peak"]
    results: dict[str, dict[str, Any]] = {}
    for name in [s.strip() for s in args.specs.split(",") if s.strip()]:
        if name not in SPECS:
            raise SystemExit(f"error: unknown spec {name!r}; choose from {', '.join(SPECS)}")
        results[name] = r = run_spec(name, args, images, labels)
        r["fraction_of_peak"] = r["train_flops_per_image"] * r["flnas_ips"] / peak
        print(
            f"  {name}: flnas {r['flnas_ips']:.1f} img/s, minimal {r['minimal_ips']:.1f} img/s, ratio "
            f"{r['ratio']:.3f} (median-based {r['ratio_median']:.3f}), load {load_average()}",
            flush=True,
        )

    rows = [
        [
            name,
            f"{r['params']:,}",
            f"{r['train_flops_per_image'] / 1e6:.1f}",
            f"{3 * r['forward_flops_per_image'] / 1e6:.1f}",
            f"{r['flnas_ips']:.1f}",
            f"{r['minimal_ips']:.1f}",
            fmt(r["ratio"]),
            f"{r['train_flops_per_image'] * r['flnas_ips'] / 1e9:.2f}",
            f"{100 * r['fraction_of_peak']:.1f}%",
        ]
        for name, r in results.items()
    ]
    print()
    print(
        table(
            rows,
            [
                "spec",
                "params",
                "train MFLOP/img",
                "3x fwd MFLOP/img",
                "flnas img/s",
                "minimal img/s",
                "ratio",
                "GFLOP/s",
                "of peak",
            ],
        )
    )
    met = all(r["ratio"] >= RATIO_TARGET for r in results.values())
    print(f"\npeak {peak / 1e9:.1f} GFLOP/s; target ratio >= {RATIO_TARGET}: {'met' if met else 'NOT met'}")
    print("\nprecision and memory format (train_model alone, best of the repeats):")
    speeds = precision_table(args, {name: SPECS[name] for name in results}, images, labels, fp32_peak=peak)
    settings_figures = {
        "settings_images_per_s": speeds["images_per_s"],
        "speedup_vs_fp32": speeds["speedup_vs_fp32"],
        "settings_fraction_of_peak": speeds["fraction_of_peak"],
        "peak_flops_by_dtype": speeds["peak_flops"],
    }
    figures = {
        "ratio_vs_minimal_loop": {k: r["ratio"] for k, r in results.items()},
        "fraction_of_peak": {k: r["fraction_of_peak"] for k, r in results.items()},
        "images_per_s": {k: {"flnas": r["flnas_ips"], "minimal": r["minimal_ips"]} for k, r in results.items()},
        "ratio_median": {k: r["ratio_median"] for k, r in results.items()},
        "params": {k: r["params"] for k, r in results.items()},
        "train_flops_per_image": {k: r["train_flops_per_image"] for k, r in results.items()},
        "peak_flops": peak,
        "peak_flops_measured": measured,
        "target_met": met,
        **settings_figures,
        "settings": {
            "image_size": args.image_size,
            "n": args.n,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "repeats": args.repeats,
            "augment": args.augment,
            "threads": threads,
            "settings": args.settings,
        },
    }
    emit_json("evaluator_throughput", figures, machine=machine)
    return figures


if __name__ == "__main__":
    main()
