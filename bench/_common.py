"""Helpers shared by the bench/ scripts: machine description, load, timers, spread, and the final JSON line.

Every benchmark prints human-readable figures and ends with ONE JSON line (the last line of stdout) that
holds its key figures plus the machine and the load average while it ran, so results can be compared and
pasted into BENCHMARKS.md without retyping numbers.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
ISIC_SUBSET = REPO_ROOT.parent / "shared" / "data" / "isic2019_subset"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """What a figure was measured on: CPU, cores, library versions, torch threads, load now."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load": load_average(),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # optional for most benchmarks
        info["onnxruntime"] = None
    return info


def print_machine(info: dict[str, Any]) -> None:
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
        f"({info['torch_threads']} threads), python {info['python']}, load {info['load']}"
    )


def set_threads(threads: int | None) -> int:
    """Pin torch's intra-op threads (None: all cores) and return the number in use."""
    import torch

    n = threads if threads and threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return torch.get_num_threads()


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """``with timer() as t: ...`` then ``t["s"]`` holds the elapsed wall-clock seconds."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - start


def spread(samples: list[float]) -> dict[str, float]:
    """Median, mean, min and coefficient of variation (population std / mean) of timing samples."""
    mean = statistics.fmean(samples)
    std = statistics.pstdev(samples) if len(samples) > 1 else 0.0
    return {
        "median": statistics.median(samples),
        "mean": mean,
        "min": min(samples),
        "cv": std / mean if mean > 0 else math.nan,
        "n": len(samples),
    }


def time_repeats(fn: Callable[[], Any], *, warmup: int, repeats: int, inner: int = 1) -> list[float]:
    """Seconds per call of ``fn``: warm up, then ``repeats`` samples, each the mean of ``inner`` calls.

    The garbage collector is off while timing (as ``timeit`` does), so a collection triggered by the
    benchmark's own allocations does not land in one sample.
    """
    for _ in range(warmup):
        fn()
    samples = []
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter() - start) / inner)
    finally:
        if was_enabled:
            gc.enable()
    return samples


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) CPU jiffies of the whole machine from /proc/stat (None where there is none).

    Steal is time the hypervisor gave this VM's virtual CPUs to someone else. The benchmarks report it
    beside their spreads, to tell that noise apart from a VM whose speed varies without any steal.
    """
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if fields[0] != "cpu" or len(fields) < 9:
        return None
    values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return values[7], sum(values)


def calibrate_inner(fn: Callable[[], Any], *, min_sample_s: float) -> int:
    """How many calls one timing sample needs to last at least ``min_sample_s`` (steadier samples)."""
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    return max(1, math.ceil(min_sample_s / once))


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value


def emit_json(benchmark: str, figures: dict[str, Any], *, machine: dict[str, Any], extra: dict | None = None) -> None:
    """Print the final JSON line: the key figures first, then the machine and the load at the end."""
    obj = {"benchmark": benchmark, **figures, **(extra or {}), "machine": machine, "load_end": load_average()}
    sys.stdout.write(json.dumps(_clean(obj), sort_keys=False) + "\n")
    sys.stdout.flush()


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain fixed-width text table (also valid Markdown), for pasting into BENCHMARKS.md."""
    cells = [header, *rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing, not finite, or the denominator is not > 0.

    Benchmarks divide by measured durations; a very fast step can measure as 0 on a coarse clock, and a
    ratio over it means nothing, so it is reported as missing ("n/a") instead of raising or being infinite.
    """
    if numerator is None or denominator is None:
        return None
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0:
        return None
    return numerator / denominator


def fmt(value: float | None, digits: int = 3) -> str:
    """A figure for a table; missing or non-finite figures print as "n/a"."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"
