"""What bench/evaluator_throughput.py and bench/precision.py share: the benchmark's specs, the training
settings (precision x memory format), the measured peak, training FLOPs per image, and the settings' speed table.

:func:`setting_speeds` trains ``flnas.evaluate.train.train_model`` (patience 0, no validation split,
augmentation and hardware off, so only training is timed) on the same initial weights and in-memory uint8
tensors under each setting, after an untimed warm-up epoch per setting; the settings' order alternates from
repeat to repeat and the best repeat is kept (interference from other processes only ever slows a run down).
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

from _common import load_average, table


def _conv(ch: int, stride: int = 1, residual: bool = False) -> dict[str, Any]:
    return {
        "type": "conv",
        "channels": ch,
        "kernel": 3,
        "stride": stride,
        "norm": "batch",
        "activation": "relu",
        "residual": residual,
    }


def _sep(ch: int, stride: int = 1) -> dict[str, Any]:
    return {
        "type": "sepconv",
        "channels": ch,
        "kernel": 3,
        "stride": stride,
        "norm": "batch",
        "activation": "relu",
    }


POOL = {"type": "pool", "mode": "max", "kernel": 2}
SPECS: dict[str, dict[str, Any]] = {
    # about 52K params
    "small": {
        "layers": [_conv(16), _conv(32, 2), _sep(64), POOL, _sep(128, 2), _sep(128)],
        "head": {"pool": "avg", "hidden": [128], "dropout": 0.1},
    },
    # about 333K params
    "medium": {
        "layers": [_conv(32), _conv(48, 2), _conv(64), POOL, _conv(96), _conv(128, 2), _conv(96)],
        "head": {"pool": "avg", "hidden": [128], "dropout": 0.2},
    },
    # about 308K params, six residual conv layers (two with a 1x1 projection)
    "resnet_like": {
        "layers": [
            _conv(32),
            _conv(32, 1, True),
            _conv(32, 1, True),
            _conv(64, 2, True),
            _conv(64, 1, True),
            _conv(128, 2, True),
            _conv(128, 1, True),
        ],
        "head": {"pool": "avg", "hidden": [], "dropout": 0.0},
    },
}

SETTINGS = {  # name -> (precision, channels_last)
    "fp32": ("fp32", False),
    "fp32+cl": ("fp32", True),
    "bf16": ("bf16", False),
    "bf16+cl": ("bf16", True),
}


def parse_settings(text: str) -> list[str]:
    """The comma list of ``--settings``: known names, fp32 among them (the reference)."""
    settings = [s.strip() for s in text.split(",") if s.strip()]
    if "fp32" not in settings or any(s not in SETTINGS for s in settings):
        raise SystemExit(f"error: --settings must include fp32 and be among {', '.join(SETTINGS)}")
    return settings


def measured_peak(size: int, repeats: int, dtype: str = "fp32") -> dict[str, float]:
    """The machine's measured dense-arithmetic peak in float32 or bfloat16 (FLOP/s), after a warm-up.

    ``mm``: the best time of ``torch.mm`` on two ``size`` x ``size`` matrices (2 n^3 FLOPs); ``conv``: of a
    3x3 convolution, ``size // 8`` channels (32 to 256) in and out, batch 8, 32x32, padding 1 (oneDNN).
    ``peak`` is the larger: on AMD CPUs MKL's float32 GEMM stays far below what oneDNN's convolutions
    reach (measured 37 vs 193 GFLOP/s on one core), so a GEMM-only peak would put candidates above 100%.
    """
    import torch

    kind = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(size, size).to(kind), torch.randn(size, size).to(kind)
    ch = min(256, max(32, size // 8))
    x, w = torch.randn(8, ch, 32, 32).to(kind), torch.randn(ch, ch, 3, 3).to(kind)
    work = {
        "mm": (lambda: torch.mm(a, b), 2 * size**3),
        "conv": (lambda: torch.nn.functional.conv2d(x, w, padding=1), 2 * 8 * ch * ch * 9 * 32 * 32),
    }
    out: dict[str, float] = {}
    for name, (fn, flops) in work.items():
        for _ in range(3):
            fn()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        out[name] = flops / best
    out["peak"] = max(out.values())
    return out


def describe_peak(dtype: str, peak: dict[str, float], size: int, repeats: int) -> str:
    ch = min(256, max(32, size // 8))
    return (f"peak {dtype}: {peak['peak'] / 1e9:.1f} GFLOP/s (best of {repeats}: torch.mm {size}x{size} "
            f"{peak['mm'] / 1e9:.1f}, 3x3 conv {ch}->{ch} ch 8x32x32 {peak['conv'] / 1e9:.1f})")


def train_flops_per_image(model, image_size: int, batch: int = 8) -> float:
    """Forward + backward FLOPs per image in train mode, counted by FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(model).train()
    x = torch.randn(batch, 3, image_size, image_size)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x).sum().backward()
    return counter.get_total_flops() / batch


def setting_speeds(spec: dict[str, Any], args: argparse.Namespace, images, labels) -> dict[str, float]:
    """Training images per second of ``train_model`` on ``spec`` under each of ``args.settings`` (best repeat)."""
    import torch

    from flnas.evaluate.config import EvaluatorConfig
    from flnas.evaluate.train import Normalizer, train_model
    from flnas.space import ArchSpec, build_model

    torch.manual_seed(0)
    init = build_model(ArchSpec.model_validate(spec), 8)
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

    settings = args.settings
    for setting in settings:  # warm-up: allocator, oneDNN primitives of each format and type
        run(setting, 1)
    best = {setting: float("inf") for setting in settings}
    for r in range(args.repeats):
        for setting in settings if r % 2 == 0 else settings[::-1]:
            best[setting] = min(best[setting], run(setting, args.epochs))
    return {setting: args.n * args.epochs / seconds for setting, seconds in best.items()}


def precision_table(args: argparse.Namespace, specs: dict[str, dict[str, Any]], images, labels,
                    fp32_peak: float | None = None) -> dict[str, Any]:
    """Each setting's images/s, speed-up over fp32 and fraction of its own arithmetic's measured peak.

    ``args`` carries ``settings``, ``batch_size``, ``epochs``, ``repeats``, ``n``, ``image_size``,
    ``matmul_size`` and ``matmul_repeats``. The fraction of peak uses the fp32 :func:`measured_peak` (or
    ``fp32_peak`` when given) for fp32 settings and the bfloat16 one for bf16 settings, with the same
    training FLOPs per image.
    """
    import torch

    from flnas.space import ArchSpec, build_model

    dtypes = ["fp32"] + (["bf16"] if any(SETTINGS[s][0] == "bf16" for s in args.settings) else [])
    todo = [d for d in dtypes if d != "fp32" or not fp32_peak]
    measured = {d: measured_peak(args.matmul_size, args.matmul_repeats, d) for d in todo}
    for d, m in measured.items():
        print(describe_peak(d, m, args.matmul_size, args.matmul_repeats))
    peaks = {d: fp32_peak if d == "fp32" and fp32_peak else measured[d]["peak"] for d in dtypes}
    ips: dict[str, dict[str, float]] = {}
    of_peak: dict[str, dict[str, float]] = {}
    rows = []
    for name, spec in specs.items():
        torch.manual_seed(0)
        flops_per_image = train_flops_per_image(build_model(ArchSpec.model_validate(spec), 8), args.image_size)
        ips[name] = setting_speeds(spec, args, images, labels)
        of_peak[name] = {s: flops_per_image * v / peaks[SETTINGS[s][0]] for s, v in ips[name].items()}
        print(f"  {name}: " + ", ".join(f"{s} {v:.1f} img/s" for s, v in ips[name].items())
              + f", load {load_average()}", flush=True)
        rows += [[name, s, f"{v:.1f}", f"{v / ips[name]['fp32']:.2f}x", f"{flops_per_image * v / 1e9:.2f}",
                  f"{100 * of_peak[name][s]:.1f}%"] for s, v in ips[name].items()]
    print()
    print(table(rows, ["spec", "setting", "img/s", "vs fp32", "GFLOP/s", "of its peak"]))
    return {
        "images_per_s": ips,
        "speedup_vs_fp32": {n: {s: v[s] / v["fp32"] for s in v if s != "fp32"} for n, v in ips.items()},
        "fraction_of_peak": of_peak,
        "peak_flops": peaks,
    }
