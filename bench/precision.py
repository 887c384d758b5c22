"""Training speed of the evaluator in fp32, bf16 autocast, and either with channels_last; bf16's accuracy cost.

For the conv specs of ``bench/evaluator_throughput.py`` (small, medium, resnet_like), this trains the same
initial weights on the same in-memory uint8 tensors with ``flnas.evaluate.train.train_model`` (patience 0,
no validation split, so only training is timed) under each setting, after an untimed warm-up epoch per
setting; the settings alternate their order from repeat to repeat, and the best of the repeats is kept
(interference from other processes only ever slows a run down). Reported: training images per second of
each setting and its speed-up over fp32.

``--accuracy`` also trains each spec on the embedded synthetic dataset (or ``--data``) with the evaluator,
fp32 and bf16 from the same seed, and reports the validation balanced accuracy of both: what bf16 costs.

Prints the CPU's bf16 flags (``avx512_bf16``, ``amx_bf16``): without them bf16 is emulated and slower, and
``--precision auto`` picks fp32.

    .venv/bin/python bench/precision.py --threads 1 --image-size 64     # BENCHMARKS.md
    .venv/bin/python bench/precision.py --quick
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_json, load_average, machine_info, print_machine, set_threads, table  # noqa: E402
from evaluator_throughput import SPECS  # noqa: E402

SETTINGS = {  # name -> (precision, channels_last)
    "fp32": ("fp32", False),
    "fp32+cl": ("fp32", True),
    "bf16": ("bf16", False),
    "bf16+cl": ("bf16", True),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--specs", default=",".join(SPECS), help=f"comma list of {', '.join(SPECS)}")
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"comma list of {', '.join(SETTINGS)}")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--n", type=int, default=512, help="training images (rounded down to a batch multiple)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--accuracy", action="store_true", help="also train on data, fp32 vs bf16 (same seed)")
    p.add_argument("--data", type=Path, default=None, help="ISIC directory for --accuracy (default: synthetic)")
    p.add_argument("--accuracy-epochs", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    args = p.parse_args(argv)
    if args.quick:
        args.image_size, args.n, args.batch_size, args.epochs, args.repeats = 16, 64, 32, 1, 1
        args.threads = args.threads or 1
        args.accuracy_epochs = 1
    args.n = max(args.batch_size, args.n // args.batch_size * args.batch_size)
    return args


def speed(name: str, args: argparse.Namespace, images, labels, settings: list[str]) -> dict[str, float]:
    """Training images per second of each setting (best of the repeats)."""
    import torch

    from flnas.evaluate.config import EvaluatorConfig
    from flnas.evaluate.train import Normalizer, train_model
    from flnas.space import ArchSpec, build_model

    torch.manual_seed(0)
    init = build_model(ArchSpec.model_validate(SPECS[name]), 8)
    normalize = Normalizer.from_images(images)

    def run(setting: str, epochs: int) -> float:
        precision, channels_last = SETTINGS[setting]
        config = EvaluatorConfig(epochs=epochs, patience=0, batch_size=args.batch_size, augment=False,
                             measure_hardware=False, device="cpu", seed=0, precision=precision,
                             channels_last=channels_last)
        model = copy.deepcopy(init)
        start = time.perf_counter()
        train_model(model, images, labels, images[:0], labels[:0], config, device=torch.device("cpu"),
                    normalize=normalize, num_classes=8)
        return time.perf_counter() - start

    for setting in settings:  # warm-up: allocator, oneDNN primitives of each format and type
        run(setting, 1)
    best = {setting: float("inf") for setting in settings}
    for r in range(args.repeats):
        for setting in settings if r % 2 == 0 else settings[::-1]:
            best[setting] = min(best[setting], run(setting, args.epochs))
    return {setting: args.n * args.epochs / seconds for setting, seconds in best.items()}


def accuracy(name: str, args: argparse.Namespace, prepared) -> dict[str, float | None]:
    """Validation balanced accuracy of ``name`` trained fp32 and bf16 from the same seed."""
    from flnas.evaluate import Evaluator
    from flnas.evaluate.config import EvaluatorConfig

    out: dict[str, float | None] = {}
    for precision in ("fp32", "bf16"):
        config = EvaluatorConfig(epochs=args.accuracy_epochs, patience=3, batch_size=args.batch_size, device="cpu",
                             seed=0, measure_hardware=False, class_weighted_loss=True, precision=precision)
        result = Evaluator(prepared, config).evaluate(SPECS[name], name=f"{name}-{precision}")
        out[precision] = ((result.metrics or {}).get("val") or {}).get("balanced_accuracy")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    from flnas.evaluate.device import cpu_flags, native_bf16, resolve_precision

    threads = set_threads(args.threads)
    machine = machine_info()
    print_machine(machine)
    flags = sorted(f for f in cpu_flags() if "bf16" in f or f.startswith("amx") or f == "avx512f")
    cpu = torch.device("cpu")
    print(f"CPU flags: {', '.join(flags) or 'none of avx512f/avx512_bf16/amx'}; native bf16: {native_bf16(cpu)}; "
          f"--precision auto picks {resolve_precision('auto', cpu)}")
    print(f"{args.n} images {args.image_size}x{args.image_size}, batch {args.batch_size}, {args.epochs} epoch(s), "
          f"best of {args.repeats} repeats, {threads} torch thread(s)")
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.n, 3, args.image_size, args.image_size), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 8, (args.n,), generator=gen)
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    if "fp32" not in settings or any(s not in SETTINGS for s in settings):
        raise SystemExit(f"error: --settings must include fp32 and be among {', '.join(SETTINGS)}")
    names = [s.strip() for s in args.specs.split(",") if s.strip()]
    if any(name not in SPECS for name in names):
        raise SystemExit(f"error: --specs must be among {', '.join(SPECS)}")
    ips = {}
    for name in names:
        ips[name] = speed(name, args, images, labels, settings)
        print(f"  {name}: " + ", ".join(f"{s} {v:.1f} img/s" for s, v in ips[name].items())
              + f", load {load_average()}", flush=True)
    rows = [[name, *(f"{ips[name][s]:.1f}" for s in settings),
             *(f"{ips[name][s] / ips[name]['fp32']:.2f}x" for s in settings if s != "fp32")] for name in names]
    print()
    print(table(rows, ["spec", *(f"{s} img/s" for s in settings), *(f"{s} vs fp32" for s in settings if s != "fp32")]))
    figures: dict[str, Any] = {
        "images_per_s": ips,
        "speedup_vs_fp32": {n: {s: ips[n][s] / ips[n]["fp32"] for s in settings if s != "fp32"} for n in names},
        "native_bf16": native_bf16(cpu),
        "cpu_flags": flags,
        "settings": {"image_size": args.image_size, "n": args.n, "batch_size": args.batch_size,
                     "epochs": args.epochs, "repeats": args.repeats, "threads": threads},
    }
    if args.accuracy:
        from flnas.data import prepare_data
        from flnas.data.synthetic import default_synthetic_dir

        prepared = prepare_data(args.data or default_synthetic_dir(), image_size=args.image_size, seed=0,
                                progress=False)
        acc = {name: accuracy(name, args, prepared) for name in names}
        print()
        print(table([[n, f"{100 * (a['fp32'] or 0):.2f}%", f"{100 * (a['bf16'] or 0):.2f}%"] for n, a in acc.items()],
                    ["spec", "fp32 val bal. acc", "bf16 val bal. acc"]))
        figures["val_balanced_accuracy"] = acc
    emit_json("precision", figures, machine=machine)
    return figures


if __name__ == "__main__":
    main()
