"""The evaluator's configuration: how every candidate and baseline is trained (the paper trains all under the
same hyperparameters) and where and how it is measured (device, precision, latency and throughput batches)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class EvaluatorConfig:
    """Evaluator settings. Every candidate of a study, and every baseline, is trained with the same values."""

    epochs: int = 30  # upper bound; early stopping usually ends sooner
    patience: int = 3  # stop after this many epochs without a lower validation loss
    batch_size: int = 64
    optimizer: str = "adamw"  # "adamw" | "sgd"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd only
    label_smoothing: float = 0.0
    augment: bool = True  # random flips and 90-degree rotations on tensors (lesions have no up)
    class_weighted_loss: bool = False  # weight the loss by inverse class frequency
    seed: int = 0
    max_train_seconds: float | None = None  # time budget per candidate; over it the evaluation fails
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1"
    num_threads: int | None = None  # torch CPU threads; None leaves torch's default
    precision: str = "fp32"  # "fp32", "bf16", "fp16" (CUDA only, with a grad scaler): training autocast
    # train in the NHWC memory format; None (not given): channels_last_default(precision), stored resolved
    channels_last: bool | None = None
    measure_hardware: bool = True  # params always; FLOPs, memory, latency, throughput, ONNX when True
    latency_batch_size: int = 2  # as in the paper
    throughput_batch_size: int = 32
    latency_repeats: int = 30

    def __post_init__(self) -> None:
        if self.channels_last is None:
            self.channels_last = channels_last_default(self.precision)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluatorConfig:
        """Build from a dict, ignoring unknown keys (older or newer studies)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def channels_last_default(precision: str) -> bool:
    """Whether to train in channels_last when it is not given: under mixed precision (bf16, fp16), not in fp32.

    Measured on a CPU with native bf16 (BENCHMARKS.md section 5): channels_last made bf16 training 1.1-1.7x
    faster for every benchmark spec; PyTorch's memory-format guidance names reduced precision on tensor-core
    GPUs as where it gains most. fp32 stays in the usual layout: channels_last changes the convolution kernels
    and hence the last bits of the trained weights, and fp32 (the paper preset) stays bit-for-bit as before;
    ``channels_last=True`` asks for it there (0.98-1.9x as fast in fp32 on that CPU).
    """
    return str(precision).strip().lower() in ("bf16", "fp16")
