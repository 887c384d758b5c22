"""Training speed of the evaluator in fp32, bf16 autocast, and either with channels_last; bf16's accuracy cost.

Speed: for the conv specs of ``bench/evaluator_throughput.py`` (small, medium, resnet_like), the settings
table of ``bench/_training.py`` (the one evaluator_throughput.py prints too): ``train_model`` alone on random
uint8 images, warm-up epoch per setting, order alternating over the repeats, best repeat kept; images/s,
speed-up over fp32, fraction of the measured peak of the setting's arithmetic (``_training.measured_peak``).

``--accuracy`` also trains each spec with the evaluator (class-weighted loss, early stopping on the
validation loss) in fp32 and in bf16 from each of ``--seeds`` (both precisions from the same seed), on the
embedded synthetic set or ``--data`` (e.g. the ISIC subset, ``--subset`` for a balanced subset), and
reports per seed: the validation (and test) balanced accuracy with its percentile-bootstrap 95% interval,
the paired bootstrap interval of bf16 - fp32 on the same images, the epochs trained, and the speed of
those very runs (training images per second of an epoch, fp32 validation included) as a bf16/fp32 ratio;
then, over the seeds, each precision's mean and sd and the mean difference. The bootstrap covers only the
sampling of validation images: a different arithmetic sends training down another path, so the seed-to-
seed spread of fp32 itself is the yardstick for a "cost".

Prints the CPU's bf16 flags (``avx512_bf16``, ``amx_bf16``): without them bf16 is emulated and slower, and
``--precision auto`` picks fp32.

    .venv/bin/python bench/precision.py --threads 1 --image-size 64     # BENCHMARKS.md
    .venv/bin/python bench/precision.py --threads 1 --image-size 32 --settings fp32,bf16 --accuracy \\
        --data ../shared/data/isic2019_subset --subset 1500 --specs small,medium,resnet_like,example,four_conv \\
        --accuracy-epochs 15 --seeds 0,1,2
    .venv/bin/python bench/precision.py --threads 1 --image-size 32 --layout-check   # channels_last's default
    .venv/bin/python bench/precision.py --quick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_json, load_average, machine_info, print_machine, set_threads, table  # noqa: E402
from _training import SETTINGS, SPECS, _conv, parse_settings, precision_table  # noqa: E402


def _example() -> dict[str, Any]:
    from flnas.space import example_spec

    return example_spec().model_dump(mode="json")


def _four_conv() -> dict[str, Any]:
    """The issue's "4-conv CNN": plain conv-BN-ReLU, three stride-2 stages, no head layer."""
    return {"layers": [_conv(32), _conv(64, 2), _conv(128, 2), _conv(128, 2)], "head": {"pool": "avg", "hidden": []}}


#: representative specs beyond the throughput benchmark's: the package's example (group norm, SiLU, a
#: 5x5 separable conv, a residual) and a plain 4-conv CNN
EXTRA_SPECS = {"example": _example, "four_conv": _four_conv}
PRECISIONS = ("fp32", "bf16")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    known = [*SPECS, *EXTRA_SPECS]
    p.add_argument("--specs", default=",".join(SPECS), help=f"comma list of {', '.join(known)}")
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"comma list of {', '.join(SETTINGS)}")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--n", type=int, default=512, help="training images (rounded down to a batch multiple)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--matmul-size", type=int, default=2048, help="peak: matrix size (conv channels: size // 8)")
    p.add_argument("--matmul-repeats", type=int, default=10)
    p.add_argument("--accuracy", action="store_true", help="also train on data, fp32 vs bf16 (same seed)")
    p.add_argument("--data", type=Path, default=None, help="ISIC directory for --accuracy (default: synthetic)")
    p.add_argument("--subset", type=int, default=None, help="balanced subset of --data (images)")
    p.add_argument("--accuracy-epochs", type=int, default=8, help="upper bound; patience 3 stops sooner")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the intervals")
    p.add_argument("--seeds", default="0", help="comma list of training seeds for --accuracy (each trains both ways)")
    p.add_argument("--layout-check", action="store_true",
                   help="also train each spec in each precision with and without channels_last from the same weights "
                   "and batches (2 epochs, 128 of the images): are the trained weights bit-identical?")
    p.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    args = p.parse_args(argv)
    if args.quick:
        args.image_size, args.n, args.batch_size, args.epochs, args.repeats = 16, 64, 32, 1, 1
        args.matmul_size, args.matmul_repeats = 256, 3
        args.threads = args.threads or 1
        args.accuracy_epochs, args.resamples = 1, 100
    args.n = max(args.batch_size, args.n // args.batch_size * args.batch_size)
    args.settings = parse_settings(args.settings)
    args.names = [s.strip() for s in args.specs.split(",") if s.strip()]
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if any(name not in known for name in args.names):
        raise SystemExit(f"error: --specs must be among {', '.join(known)}")
    return args


def spec_of(name: str) -> dict[str, Any]:
    return SPECS[name] if name in SPECS else EXTRA_SPECS[name]()


def channels_last_table(args: argparse.Namespace, speeds: dict[str, Any], images, labels) -> dict[str, Any]:
    """Per spec: channels_last's speed-up within each precision (from the speed table) and, with
    ``--layout-check``, whether it leaves the trained weights bit-identical (the default rule's evidence:
    flnas.evaluate.config.channels_last_default)."""
    import copy

    import torch

    from flnas.evaluate.config import EvaluatorConfig
    from flnas.evaluate.train import Normalizer, train_model
    from flnas.space import ArchSpec, build_model

    out: dict[str, Any] = {}
    rows = []
    for name in args.names:
        got = speeds["images_per_s"][name]
        ratio = {p: got[f"{p}+cl"] / got[p] for p in PRECISIONS if p in got and f"{p}+cl" in got}
        out[name] = {"speedup": ratio}
        row = [name, *(f"{ratio[p]:.2f}x" if p in ratio else "-" for p in PRECISIONS)]
        if args.layout_check:
            x, y = images[:128], labels[:128]
            torch.manual_seed(0)
            init = build_model(ArchSpec.model_validate(spec_of(name)), 8)
            for precision in PRECISIONS:
                trained = []
                for layout in (False, True):
                    model = copy.deepcopy(init)
                    config = EvaluatorConfig(epochs=2, patience=0, batch_size=32, device="cpu", seed=0,
                                             precision=precision, channels_last=layout, measure_hardware=False)
                    train_model(model, x, y, x[:0], y[:0], config, device=torch.device("cpu"),
                                normalize=Normalizer.from_images(x), num_classes=8)
                    trained.append(model.state_dict())
                same = all(torch.equal(trained[0][k], trained[1][k]) for k in trained[0])
                diff = max(float((trained[0][k].float() - trained[1][k].float()).abs().max())
                           for k in trained[0] if trained[0][k].is_floating_point())
                out[name][precision] = {"bit_identical": same, "max_abs_weight_difference": diff}
                row.append(f"{'yes' if same else 'no'} ({diff:.2g})")
        rows.append(row)
    header = ["spec", *(f"{p}+cl vs {p}" for p in PRECISIONS)]
    if args.layout_check:
        header += [f"{p}: same weights (max abs diff)" for p in PRECISIONS]
    print()
    print(table(rows, header))
    return out


def accuracy(name: str, args: argparse.Namespace, prepared, seed: int, order: tuple[str, ...]) -> dict[str, Any]:
    """``name`` trained by the evaluator in each precision from ``seed``: balanced accuracy, intervals, speed."""
    from flnas.evaluate import Evaluator
    from flnas.evaluate.bootstrap import bootstrap, paired_difference
    from flnas.evaluate.config import EvaluatorConfig
    from flnas.evaluate.train import predict

    runs: dict[str, dict[str, Any]] = {}
    boots: dict[str, dict[str, Any]] = {}
    for precision in order:
        config = EvaluatorConfig(epochs=args.accuracy_epochs, patience=3, batch_size=args.batch_size, device="cpu",
                             seed=seed, measure_hardware=False, class_weighted_loss=True, precision=precision,
                             channels_last=False)  # the arithmetic alone (the usual layout in both)
        evaluator = Evaluator(prepared, config)
        result = evaluator.evaluate(spec_of(name), name=f"{name}-{precision}")
        if not result.ok:
            raise SystemExit(f"error: {name} in {precision} failed: {result.reason}")
        history = result.metrics["history"]
        n_train = len(prepared.splits["train"])
        run: dict[str, Any] = {
            "epochs": result.metrics["epochs"],
            "best_epoch": result.metrics["best_epoch"],
            "epoch_images_per_s": n_train * len(history) / sum(h["seconds"] for h in history),
            "load": load_average(),
        }
        boots[precision] = {}
        for split in ("val", "test"):  # the same resampled images for both precisions: a paired comparison
            data = prepared.splits[split]
            _, _, predicted = predict(result.model, data.images, data.labels, evaluator.normalize, evaluator.device)
            boot = bootstrap(data.labels.cpu().numpy(), predicted.cpu().numpy(), classes=prepared.num_classes,
                             resamples=args.resamples, seed=0)
            boots[precision][split] = boot
            run[split] = {"balanced_accuracy": boot.point["balanced_accuracy"],
                          "ci": boot.interval("balanced_accuracy")[0]}
        runs[precision] = run
    ratio = runs["bf16"]["epoch_images_per_s"] / runs["fp32"]["epoch_images_per_s"]
    out: dict[str, Any] = {**runs, "speed_ratio": ratio}
    for split in ("val", "test"):
        diff = paired_difference(boots["bf16"][split], boots["fp32"][split], "balanced_accuracy")
        out[f"{split}_difference"] = {"estimate": diff.estimate, "ci": diff.interval}
    return out


def summarize(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Over the seeds: mean and sample sd of each precision's val balanced accuracy, the mean difference,
    how many seeds' paired intervals hold 0, and the geometric mean speed ratio."""
    import statistics

    def values(precision: str) -> list[float]:
        return [r[precision]["val"]["balanced_accuracy"] for r in per_seed.values()]

    def sd(xs: list[float]) -> float | None:
        return statistics.stdev(xs) if len(xs) > 1 else None

    diffs = [r["val_difference"]["estimate"] for r in per_seed.values()]
    cis = [r["val_difference"]["ci"] for r in per_seed.values()]
    ratios = [r["speed_ratio"] for r in per_seed.values()]
    return {
        "fp32_mean": statistics.fmean(values("fp32")), "fp32_sd": sd(values("fp32")),
        "bf16_mean": statistics.fmean(values("bf16")), "bf16_sd": sd(values("bf16")),
        "difference_mean": statistics.fmean(diffs), "difference_sd": sd(diffs),
        "seeds_ci_holds_0": sum(1 for ci in cis if ci and ci[0] <= 0 <= ci[1]),
        "speed_ratio": statistics.geometric_mean(ratios),
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _with_ci(value: float | None, ci: list[float] | None) -> str:
    return _pct(value) + ("" if not ci else f" [{_pct(ci[0])}, {_pct(ci[1])}]")


def _mean_sd(mean: float, sd: float | None) -> str:
    return _pct(mean) + ("" if sd is None else f" ± {_pct(sd)}")


def accuracy_table(args: argparse.Namespace, prepared) -> dict[str, Any]:
    """Run :func:`accuracy` for every spec and seed (the precisions' order alternating) and print the tables."""
    print(f"\naccuracy: {prepared.name}, {prepared.image_size}x{prepared.image_size}, splits "
          f"{ {k: len(v) for k, v in prepared.splits.items()} }, class-weighted loss, up to {args.accuracy_epochs} "
          f"epochs, patience 3, seeds {args.seeds}, {args.resamples} bootstrap resamples; load {load_average()}",
          flush=True)
    acc: dict[str, Any] = {}
    rows, summary_rows = [], []
    turn = 0
    for name in args.names:
        per_seed: dict[int, dict[str, Any]] = {}
        for seed in args.seeds:
            order = PRECISIONS if turn % 2 == 0 else PRECISIONS[::-1]
            turn += 1
            per_seed[seed] = a = accuracy(name, args, prepared, seed, order)
            print(f"  {name} seed {seed}: val bal. acc fp32 {_pct(a['fp32']['val']['balanced_accuracy'])}, bf16 "
                  f"{_pct(a['bf16']['val']['balanced_accuracy'])}; bf16/fp32 speed {a['speed_ratio']:.2f}x; "
                  f"load {load_average()}", flush=True)
            rows.append([name, str(seed), f"{a['fp32']['epochs']}/{a['bf16']['epochs']}",
                         _with_ci(a["fp32"]["val"]["balanced_accuracy"], a["fp32"]["val"]["ci"]),
                         _with_ci(a["bf16"]["val"]["balanced_accuracy"], a["bf16"]["val"]["ci"]),
                         _with_ci(a["val_difference"]["estimate"], a["val_difference"]["ci"]),
                         _with_ci(a["test_difference"]["estimate"], a["test_difference"]["ci"]),
                         f"{a['speed_ratio']:.2f}x"])
        summary = summarize(per_seed)
        acc[name] = {"seeds": per_seed, "summary": summary}
        summary_rows.append([name, _mean_sd(summary["fp32_mean"], summary["fp32_sd"]),
                             _mean_sd(summary["bf16_mean"], summary["bf16_sd"]),
                             _mean_sd(summary["difference_mean"], summary["difference_sd"]),
                             f"{summary['seeds_ci_holds_0']}/{len(per_seed)}", f"{summary['speed_ratio']:.2f}x"])
    print()
    print(table(rows, ["spec", "seed", "epochs fp32/bf16", "val bal. acc fp32 [95% CI]", "bf16 [95% CI]",
                       "val bf16-fp32 [paired CI]", "test bf16-fp32 [paired CI]", "bf16 vs fp32 speed"]))
    print()
    print(table(summary_rows, ["spec", "val fp32 mean ± sd", "val bf16 mean ± sd", "bf16-fp32 mean ± sd",
                               "paired CIs holding 0", "speed (geo. mean)"]))
    print("(percentage points over the seeds; a difference within the seed-to-seed spread, or whose paired "
          "interval holds 0, is not a measurable cost)")
    return acc


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
    speeds = precision_table(args, {name: spec_of(name) for name in args.names}, images, labels)
    figures: dict[str, Any] = {
        **speeds,
        "channels_last": channels_last_table(args, speeds, images, labels),
        "native_bf16": native_bf16(cpu),
        "cpu_flags": flags,
        "settings": {"image_size": args.image_size, "n": args.n, "batch_size": args.batch_size,
                     "epochs": args.epochs, "repeats": args.repeats, "threads": threads},
    }
    if args.accuracy:
        from flnas.data import prepare_data
        from flnas.data.synthetic import default_synthetic_dir

        prepared = prepare_data(args.data or default_synthetic_dir(), subset=args.subset,
                                image_size=args.image_size, seed=0, progress=False)
        acc = accuracy_table(args, prepared)
        figures["val_balanced_accuracy"] = {n: {p: a["summary"][f"{p}_mean"] for p in PRECISIONS}
                                            for n, a in acc.items()}
        figures["accuracy"] = acc
        figures["accuracy_settings"] = {"data": str(args.data or "synthetic"), "subset": args.subset,
                                        "image_size": args.image_size, "max_epochs": args.accuracy_epochs,
                                        "patience": 3, "class_weighted_loss": True, "seeds": args.seeds,
                                        "resamples": args.resamples}
    emit_json("precision", figures, machine=machine)
    return figures


if __name__ == "__main__":
    main()
