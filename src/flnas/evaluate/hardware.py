"""Hardware metrics of a model: params, FLOPs, peak inference memory, latency, throughput, ONNX latency.

These are the paper's efficiency figures (Table I: # params, memory, latency at batch size 2 on a GPU and on
a Raspberry Pi). flnas measures them the same way for every candidate and baseline (see docs/metrics.md):

- params: every parameter element, counted once (shared tensors once).
- FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one forward pass, divided by the batch size
  (forward FLOPs per image; a multiply-add counts 2, bias/activations/normalisation are not counted).
- peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` after a reset, over one forward pass of a
  batch, counted from the allocation level before the input was made plus the model's weights; on CPU,
  the bytes of the weights (parameters + buffers) plus the peak of the live tensor storages that the
  forward pass allocates (the input included), traced op by op with a ``TorchDispatchMode``. Both are
  deterministic for a given model and input size.
- latency: median seconds per batch (batch 2 as in the paper) after warm-up, CUDA synchronised, with the
  coefficient of variation of the repeats; throughput: images per second at a larger batch.
- ONNX latency: the exported model under ONNX Runtime on the CPU with 1 intra-op thread (edge proxy).

Models are measured in eval mode under ``torch.inference_mode`` and left in the mode they came in.
"""

from __future__ import annotations

import contextlib
import copy
import io
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

ImageSize = int | tuple[int, int]


def _hw(image_size: ImageSize) -> tuple[int, int]:
    return (
        (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
    )


def _device_of(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _example(model: nn.Module, image_size: ImageSize, batch_size: int, device: Any = None) -> torch.Tensor:
    """A deterministic input batch (N, 3, H, W) on the model's device."""
    h, w = _hw(image_size)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, 3, h, w, generator=gen)
    return x.to(device if device is not None else _device_of(model))


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode for the block, then restore each one's own mode."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def _on_device(model: nn.Module, device: Any) -> Iterator[nn.Module]:
    """The model on ``device``: itself when already there, else a copy (the caller's model never moves)."""
    device = torch.device(device)
    current = _device_of(model)
    same = current.type == device.type and (device.index is None or current.index == device.index)
    yield model if same else copy.deepcopy(model).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_params(model: nn.Module) -> int:
    """Number of parameter elements (each shared tensor once), trainable or not."""
    return sum(p.numel() for p in model.parameters())


def _weight_bytes(model: nn.Module) -> int:
    seen: dict[int, int] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        seen[id(t)] = t.numel() * t.element_size()
    return sum(seen.values())


def count_flops(model: nn.Module, image_size: ImageSize, batch_size: int = 1) -> int:
    """Forward FLOPs per image (``FlopCounterMode``; a multiply-add = 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    with eval_mode(model), torch.inference_mode():
        x = _example(model, image_size, batch_size)
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
    return int(counter.get_total_flops() // batch_size)


# --------------------------------------------------------------------------------------------------
# memory


class _LiveTensorTracker(TorchDispatchMode):
    """Sums the bytes of tensor storages that are alive after each op of a forward pass; keeps the peak."""

    def __init__(self) -> None:
        super().__init__()
        from torch.multiprocessing.reductions import StorageWeakRef

        self._weakref = StorageWeakRef
        self.live: dict[int, tuple[Any, int]] = {}  # data_ptr -> (weak ref, bytes)
        self.current = 0
        self.peak = 0

    def track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        ptr, nbytes = storage.data_ptr(), storage.nbytes()
        old = self.live.get(ptr)
        if old is not None and not old[0].expired():
            return  # a view or an in-place result: no new memory
        if old is not None:
            self.current -= old[1]
        self.live[ptr] = (self._weakref(storage), nbytes)
        self.current += nbytes

    def _collect(self) -> None:
        for ptr in [p for p, (ref, _) in self.live.items() if ref.expired()]:
            self.current -= self.live.pop(ptr)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._collect()
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self.track(t)
        self.peak = max(self.peak, self.current)
        return out


def peak_memory_mb(model: nn.Module, image_size: ImageSize, device: Any, batch_size: int = 2) -> float:
    """Peak inference memory in MB (2**20 bytes) of one forward pass; see the module docstring for how."""
    device = torch.device(device)
    with eval_mode(model), torch.inference_mode(), _on_device(model, device) as m:
        weights = _weight_bytes(m)
        if device.type == "cuda":
            _sync(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            x = _example(m, image_size, batch_size, device)
            m(x)
            _sync(device)
            peak = torch.cuda.max_memory_allocated(device) - base
            del x
        else:
            tracker = _LiveTensorTracker()
            with tracker:
                x = _example(m, image_size, batch_size, device)
                tracker.track(x)
                tracker.peak = max(tracker.peak, tracker.current)
                m(x)
            peak = tracker.peak
    return (weights + peak) / 2**20


def memory_method(device: Any) -> str:
    """One line saying how :func:`peak_memory_mb` measured on this device (stored with the metrics)."""
    if torch.device(device).type == "cuda":
        return "cuda max_memory_allocated over one forward pass (from before the input) + weights"
    return "cpu weights (params+buffers) + peak live tensor storages of one forward pass (dispatch trace)"


# --------------------------------------------------------------------------------------------------
# timing


def _timed(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _summary(times: list[float], batch_size: int) -> dict[str, float]:
    median = statistics.median(times)
    mean = statistics.fmean(times)
    cv = statistics.pstdev(times) / mean if mean > 0 else 0.0
    return {
        "median_s": median,
        "per_image_s": median / batch_size,
        "cv": cv,
        "min_s": min(times),
        "batch_size": batch_size,
        "repeats": len(times),
    }


def latency(
    model: nn.Module,
    image_size: ImageSize,
    device: Any,
    batch_size: int = 2,
    warmup: int = 5,
    repeats: int = 30,
) -> dict[str, float]:
    """Seconds per batch: ``median_s`` of ``repeats`` after ``warmup``, ``per_image_s``, ``cv``, ``min_s``."""
    device = torch.device(device)
    with eval_mode(model), torch.inference_mode(), _on_device(model, device) as m:
        x = _example(m, image_size, batch_size, device)
        times = _timed(lambda: m(x), device, warmup, repeats)
    return _summary(times, batch_size)


def throughput(
    model: nn.Module,
    image_size: ImageSize,
    device: Any,
    batch_size: int = 32,
    warmup: int = 2,
    repeats: int = 10,
) -> float:
    """Images per second at ``batch_size`` (batch size over the median batch time)."""
    stats = latency(model, image_size, device, batch_size=batch_size, warmup=warmup, repeats=repeats)
    return batch_size / stats["median_s"]


# --------------------------------------------------------------------------------------------------
# ONNX


def export_onnx(model: nn.Module, path: Path | str, image_size: ImageSize, *, exporter: str = "auto") -> Path:
    """Export to ONNX (input ``input`` (batch, 3, H, W) with a dynamic batch axis, output ``logits``).

    ``exporter``: ``"torchscript"`` (fast, well proven on conv nets), ``"dynamo"`` (torch.export based,
    10-30x slower to export), or ``"auto"``: torchscript, falling back to dynamo if that fails. The file is
    checked with ``onnx.checker``. The model is exported from a CPU copy in eval mode.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with eval_mode(model), _on_device(model, "cpu") as m:
        x = _example(m, image_size, 2, "cpu")
        order = {"auto": ["torchscript", "dynamo"], "torchscript": ["torchscript"], "dynamo": ["dynamo"]}[
            exporter
        ]
        errors = []
        for kind in order:
            try:
                _export(m, x, path, kind)
                break
            except Exception as exc:  # try the next exporter; report all if none works
                errors.append(
                    f"{kind}: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
                )
        else:
            raise RuntimeError(f"ONNX export of {type(model).__name__} failed ({'; '.join(errors)})")
    onnx.checker.check_model(str(path))
    return path


def _export(model: nn.Module, x: torch.Tensor, path: Path, kind: str) -> None:
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        if kind == "torchscript":
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,
                do_constant_folding=True,
            )
        else:
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=True,
                verbose=False,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                external_data=False,
            )


def onnx_latency(
    path: Path | str,
    image_size: ImageSize,
    batch_size: int = 2,
    threads: int = 1,
    warmup: int = 5,
    repeats: int = 30,
) -> dict[str, float]:
    """ONNX Runtime (CPU, ``threads`` intra-op threads, 1 inter-op) seconds per batch: median_s, cv, ..."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    h, w = _hw(image_size)
    x = np.random.default_rng(0).random((batch_size, 3, h, w), dtype=np.float32)
    feed = {session.get_inputs()[0].name: x}
    times = _timed(lambda: session.run(None, feed), torch.device("cpu"), warmup, repeats)
    return {**_summary(times, batch_size), "threads": threads}


def measure_hardware(
    model: nn.Module,
    image_size: ImageSize,
    device: Any,
    *,
    latency_batch_size: int = 2,
    throughput_batch_size: int = 32,
    repeats: int = 30,
    onnx_path: Path | str | None = None,
) -> dict[str, Any]:
    """Every hardware metric of the Evaluator in one dict.

    Keys: params, flops, peak_memory_mb, memory_method, latency_s (median per batch of
    ``latency_batch_size``), latency_per_image_s, latency_cv, throughput (images/s), onnx_latency_s
    (1 thread, same batch), onnx_latency_cv, device. The ONNX model is written to ``onnx_path`` when
    given (kept), else to a temporary file. An ONNX export that fails leaves onnx_latency_s None and
    says why in ``onnx_error``; the other metrics stand.
    """
    device = torch.device(device)
    warmup = max(1, min(5, repeats // 3))
    lat = latency(model, image_size, device, batch_size=latency_batch_size, warmup=warmup, repeats=repeats)
    result: dict[str, Any] = {
        "params": count_params(model),
        "flops": count_flops(model, image_size),
        "peak_memory_mb": peak_memory_mb(model, image_size, device, batch_size=latency_batch_size),
        "memory_method": memory_method(device),
        "latency_s": lat["median_s"],
        "latency_per_image_s": lat["per_image_s"],
        "latency_cv": lat["cv"],
        "throughput": throughput(
            model, image_size, device, batch_size=throughput_batch_size, repeats=max(3, repeats // 3)
        ),
        "onnx_latency_s": None,
        "onnx_latency_cv": None,
        "device": str(device),
    }
    with tempfile.TemporaryDirectory(prefix="flnas-onnx-") as tmp:
        path = Path(onnx_path) if onnx_path is not None else Path(tmp) / "model.onnx"
        try:
            export_onnx(model, path, image_size)
        except Exception as exc:  # a model ONNX cannot express keeps its other metrics
            result["onnx_error"] = str(exc)
        else:
            onnx_stats = onnx_latency(
                path, image_size, batch_size=latency_batch_size, threads=1, warmup=warmup, repeats=repeats
            )
            result["onnx_latency_s"] = onnx_stats["median_s"]
            result["onnx_latency_cv"] = onnx_stats["cv"]
    return result
