"""Where a candidate runs (CUDA when present, else CPU) and how runs are made repeatable (seeds).

Every candidate of a study is trained on the same device with the same seed, so differences between
candidates come from their architectures, not from luck. On CPU a fixed-seed run is bitwise repeatable;
on CUDA, cuDNN may pick non-deterministic kernels, so repeated runs agree closely but not bit for bit.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from flnas.errors import FlnasError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: the first CUDA device when present, else the CPU; ``cpu``, ``cuda``, ``cuda:1`` as given."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise FlnasError(f"device {name!r} is not a device name; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise FlnasError(
                f"device {name!r} was asked for but CUDA is not available here; use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise FlnasError(
                f"device {name!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type != "cpu":
        raise FlnasError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


PRECISIONS = ("fp32", "bf16", "fp16")

#: why fp16 is refused off CUDA (one sentence; the CLI prints it and exits 2)
FP16_NEEDS_CUDA = (
    "precision fp16 needs a CUDA GPU and this run trains on the CPU; on a CPU use bf16 (fast where the CPU "
    "has avx512_bf16 or AMX) or fp32"
)


def native_bf16(device: torch.device) -> bool:
    """True when ``device`` computes bfloat16 natively (CUDA: Ampere or newer; CPU: AVX512-BF16 or AMX).

    Elsewhere bf16 autocast is emulated and usually slower than fp32, so ``auto`` picks fp32 there.
    """
    if device.type == "cuda":
        # torch's default also answers True where bf16 is merely emulated (pre-Ampere GPUs)
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    return cpu_has_native_bf16(cpu_flags())


def cpu_has_native_bf16(flags: set[str]) -> bool:
    """Whether a CPU with these ``lscpu`` flags has bf16 instructions (``avx512_bf16`` or AMX's ``amx_bf16``).

    With no flags at all (not Linux, /proc unreadable) torch's own probe decides.
    """
    if flags:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe()) if callable(probe) else False


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (``lscpu``'s Flags); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_precision(name: str, device: torch.device) -> str:
    """The training precision for ``device``: ``auto`` is bf16 where it is native, else fp32.

    ``fp32`` and ``bf16`` are taken as given; ``fp16`` only on CUDA (a :class:`FlnasError` elsewhere: CPUs
    emulate float16 arithmetic, and bf16 is their fast choice).
    """
    name = (name or "fp32").strip().lower()
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name not in PRECISIONS:
        raise FlnasError(f"precision {name!r} is not supported; use auto, fp32, bf16 or fp16 (CUDA only)")
    check_precision(name, device)
    return name


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision that ``device`` cannot train in (fp16 off CUDA), before anything is trained."""
    if precision == "fp16" and device.type != "cuda":
        raise FlnasError(FP16_NEEDS_CUDA)


def describe_device(device: torch.device) -> str:
    """A short name recorded with every result, e.g. ``cuda:0 (NVIDIA A10)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices): weight init and dropout then repeat from run to run."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_threads(num_threads: int | None) -> None:
    """Limit torch's CPU threads (None leaves torch's default); useful on shared machines."""
    if num_threads is not None and num_threads > 0 and torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA and CPU allocation failures, whichever exception type torch used."""
    if isinstance(exc, MemoryError):
        return True
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return "out of memory" in text or "can't allocate memory" in text or "cannot allocate memory" in text
    return False


def free_memory(device: torch.device) -> None:
    """Give cached CUDA memory back after a failed candidate so the next one starts clean."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed training buffers in the heap instead of returning them to the OS (glibc only).

    CPU training allocates and frees the same tens-of-megabyte activation buffers every batch; glibc
    serves blocks that large with mmap/munmap, so every batch pays page faults (measured: a third of the
    CPU time as system time, 1.9x slower for a 333K-param CNN at 64x64). Raising the mmap and trim
    thresholds to 1 GiB makes the buffers reusable. Process-wide, once; a no-op off glibc. Returns
    whether the setting is in effect.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    try:
        import ctypes
        import ctypes.util
        import sys

        if not sys.platform.startswith("linux"):
            return False
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 1 << 30) == 1 and libc.mallopt(m_trim_threshold, 1 << 30) == 1
    except (OSError, AttributeError):
        return False
    _ALLOCATOR_TUNED = bool(ok)
    return _ALLOCATOR_TUNED
