"""The training loop every candidate goes through: same hyperparameters, early stopping, best weights kept.

Batches come straight from the in-memory uint8 tensors of :class:`flnas.data.dataset.Split` (no
DataLoader, no PIL): each epoch draws a seeded permutation, slices it, augments on the uint8 tensor
(a random element of the square's symmetry group per sample: flips and 90-degree rotations, since a
lesion has no "up"), then converts to float and normalises on the device. Losses and correct counts are
accumulated on the device and read once per epoch, so the loop adds almost nothing to a hand-written one.

``precision="bf16"`` runs the forward pass and the loss under bfloat16 autocast (master weights, gradients
and the optimizer stay fp32); ``"fp16"`` does the same in float16 (CUDA; the evaluator refuses it on a CPU)
with a :class:`torch.amp.GradScaler`, which scales the loss so small gradients survive float16's range and
skips a step whose gradients overflowed (the epoch log records its ``loss_scale``). On a CPU, bf16 keeps
depthwise convolutions in fp32 (:func:`depthwise_in_fp32`: oneDNN's bf16 depthwise kernel is slow).
``channels_last`` trains in the NHWC memory format. Validation, predictions, latency and export always run
in fp32 and the usual layout.

A NaN/inf loss or a time budget overrun ends training with :class:`TrainingFailed`; the evaluator turns
that into a failed evaluation with the reason recorded.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flnas.evaluate.config import EvaluatorConfig
from flnas.evaluate.device import tune_cpu_allocator

OPTIMIZERS = ("adamw", "adam", "sgd")
EVAL_BATCH_SIZE = 256

EpochCallback = Callable[[int, dict[str, Any]], None]

# The clock the time budget and the epoch timings are read from. Tests replace it with a fake one, so the
# budget is tested by behaviour (it stops at the first check past the deadline), not by how busy the machine is.
clock: Callable[[], float] = time.monotonic


class TrainingFailed(Exception):
    """Training of a candidate could not finish; ``kind`` is "nan" or "timeout", ``reason`` one sentence."""

    def __init__(self, kind: str, reason: str, history: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.history = history or []


@dataclass
class Normalizer:
    """Per-channel mean and std of the training images (0-255 scale), applied on the device."""

    mean: list[float]
    std: list[float]
    _cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_images(cls, images: torch.Tensor, chunk: int = 1024) -> Normalizer:
        """Exact mean/std over all pixels, in chunks so a large split does not need a float copy."""
        total = torch.zeros(3, dtype=torch.float64)
        total_sq = torch.zeros(3, dtype=torch.float64)
        count = 0
        for start in range(0, images.shape[0], chunk):
            x = images[start : start + chunk].to(torch.float64)
            total += x.sum(dim=(0, 2, 3))
            total_sq += (x * x).sum(dim=(0, 2, 3))
            count += x.shape[0] * x.shape[2] * x.shape[3]
        if count == 0:
            return cls([127.5] * 3, [64.0] * 3)
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(1.0).sqrt()  # never divide by ~0 (flat images)
        return cls([float(v) for v in mean], [float(v) for v in std])

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N,3,H,W) -> normalised float32 on the images' device."""
        mean, inv_std = self.tensors(images.device)
        return (images.float() - mean) * inv_std

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, 1/std) shaped (1, 3, 1, 1) on ``device``, made once per device."""
        cached = self._cache.get(device)
        if cached is None:
            mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
            inv_std = 1.0 / torch.tensor(self.std, device=device).view(1, 3, 1, 1)
            cached = self._cache[device] = (mean, inv_std)
        return cached

    def to_dict(self) -> dict[str, Any]:
        return {"scale": "0-255", "mean": self.mean, "std": self.std}


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per sample, one of the 8 symmetries of the square (h-flip, v-flip, transpose combined) on uint8."""
    bits = torch.randint(0, 8, (images.shape[0], 1, 1, 1), generator=generator, device=images.device)
    images = torch.where((bits & 1).bool(), images.flip(3), images)
    images = torch.where((bits & 2).bool(), images.flip(2), images)
    if images.shape[2] == images.shape[3]:
        images = torch.where((bits & 4).bool(), images.transpose(2, 3), images)
    return images


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse class frequency, scaled so a balanced set gets weight 1 everywhere (absent classes: 0)."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).to(torch.float32)
    weights = torch.zeros(num_classes)
    present = counts > 0
    weights[present] = labels.numel() / (int(present.sum()) * counts[present])
    return weights


def make_optimizer(model: nn.Module, config: EvaluatorConfig) -> torch.optim.Optimizer:
    """AdamW (default), Adam (weight decay as L2) or SGD with momentum, all at a constant learning rate."""
    params = [p for p in model.parameters() if p.requires_grad]
    name = config.optimizer.lower()
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    raise ValueError(f"unknown optimizer {config.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")


@torch.inference_mode()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: Normalizer,
    device: torch.device,
    batch_size: int = EVAL_BATCH_SIZE,
) -> tuple[float | None, float | None, torch.Tensor]:
    """Plain (unweighted, unsmoothed) mean cross-entropy, accuracy and the predicted class of each image.

    The model is put in eval mode. An empty split gives (None, None, empty tensor).
    """
    model.eval()
    n = int(labels.shape[0])
    if n == 0:
        return None, None, torch.empty(0, dtype=torch.long)
    total = torch.zeros((), dtype=torch.float64, device=device)
    preds = []
    for start in range(0, n, batch_size):
        x = normalize(images[start : start + batch_size].to(device, non_blocking=True))
        y = labels[start : start + batch_size].to(device, non_blocking=True)
        logits = model(x)
        total += F.cross_entropy(logits.float(), y, reduction="sum").double()
        preds.append(logits.argmax(1))
    predicted = torch.cat(preds).cpu()
    accuracy = float((predicted == labels.cpu()).double().mean())
    return float(total) / n, accuracy, predicted


@dataclass
class TrainResult:
    """What training produced: per-epoch history and the epoch whose weights were restored."""

    history: list[dict[str, Any]]
    epochs: int  # epochs run
    best_epoch: int  # 1-based; its weights are in the model
    best_val_loss: float
    stopped_early: bool
    train_seconds: float
    train_loss: float  # running (augmented, dropout on) loss of the best epoch
    train_accuracy: float


def train_model(
    model: nn.Module,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    val_images: torch.Tensor,
    val_labels: torch.Tensor,
    config: EvaluatorConfig,
    *,
    device: torch.device,
    normalize: Normalizer,
    num_classes: int,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train ``model`` in place; on return it holds the weights of the epoch with the lowest validation loss.

    Raises :class:`TrainingFailed` for a NaN/inf loss or when ``config.max_train_seconds`` is exceeded.
    Out-of-memory and other errors propagate (the evaluator classifies them).
    """
    if device.type == "cpu":
        tune_cpu_allocator()
    start = clock()
    deadline = start + config.max_train_seconds if config.max_train_seconds else None
    model.to(device)
    images = train_images.to(device)
    labels = train_labels.to(device)
    val_x, val_y = val_images.to(device), val_labels.to(device)
    n = int(labels.shape[0])
    bs = max(1, int(config.batch_size))
    num_batches = math.ceil(n / bs)
    if num_batches > 1 and n % bs == 1:
        num_batches -= 1  # a final batch of one sample cannot train batch norm; skip it
    if num_batches == 0:
        raise ValueError("the training split is empty")
    batch_sizes = torch.tensor([min(bs, n - b * bs) for b in range(num_batches)], dtype=torch.float64)

    weight = class_weights(train_labels, num_classes).to(device) if config.class_weighted_loss else None
    criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
    optimizer = make_optimizer(model, config)
    generator = torch.Generator(device=device).manual_seed(int(config.seed))
    mean, inv_std = normalize.tensors(images.device)
    channels_last = bool(config.channels_last)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    scaler = grad_scaler(device, config.precision)

    history: list[dict[str, Any]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_val, best_epoch, bad_epochs, stopped_early = math.inf, 0, 0, False
    best_train = (math.nan, math.nan)
    epoch = 0
    # CPU bf16: depthwise convs run in fp32 (oneDNN's bf16 depthwise kernel is slow); undone on exit or failure
    with depthwise_in_fp32(model, device, config.precision):
        for epoch in range(1, int(config.epochs) + 1):
            epoch_start = clock()
            model.train()
            perm = torch.randperm(n, generator=generator, device=device)
            losses = torch.zeros(num_batches, device=device)
            correct = torch.zeros((), dtype=torch.long, device=device)
            for b in range(num_batches):
                idx = perm[b * bs : (b + 1) * bs]
                x = images[idx]
                if config.augment:
                    x = augment(x, generator)
                y = labels[idx]
                x = (x.float() - mean) * inv_std
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(device, config.precision):
                    logits = model(x)
                    loss = criterion(logits, y)
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:  # fp16: backward on the scaled loss; the step is skipped when a gradient overflowed
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                losses[b] = loss.detach()
                correct += (logits.detach().argmax(1) == y).sum()
                if deadline is not None and clock() > deadline:
                    raise TrainingFailed("timeout", _over_budget(config, epoch, b + 1), history)
            batch_losses = losses.double().cpu()
            finite = torch.isfinite(batch_losses)
            if not bool(finite.all()):
                first = int((~finite).nonzero()[0, 0])
                what = "nan" if math.isnan(float(batch_losses[first])) else "inf"
                raise TrainingFailed("nan", f"loss became {what} at epoch {epoch}, batch {first + 1}", history)
            train_loss = float((batch_losses * batch_sizes).sum() / batch_sizes.sum())
            train_acc = int(correct) / float(batch_sizes.sum())

            val_loss, val_acc, _ = predict(model, val_x, val_y, normalize, device)
            if val_loss is None:  # no validation split: the last epoch is the best one
                val_loss = math.nan
            elif not math.isfinite(val_loss):
                what = "nan" if math.isnan(val_loss) else "inf"
                raise TrainingFailed("nan", f"validation loss became {what} at epoch {epoch}", history)
            improved = math.isnan(val_loss) or val_loss < best_val
            if improved:
                best_val, best_epoch, bad_epochs = val_loss, epoch, 0
                best_train = (train_loss, train_acc)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            logs = {
                "epoch": epoch,
                "epochs": int(config.epochs),
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "val_loss": None if math.isnan(val_loss) else val_loss,
                "val_accuracy": val_acc,
                "best_epoch": best_epoch,
                "seconds": clock() - epoch_start,
            }
            if scaler is not None:
                logs["loss_scale"] = float(scaler.get_scale())
            history.append(logs)
            if on_epoch is not None:
                on_epoch(epoch, dict(logs))
            if deadline is not None and clock() > deadline:
                raise TrainingFailed("timeout", _over_budget(config, epoch, num_batches), history)
            if config.patience and config.patience > 0 and bad_epochs >= config.patience:
                stopped_early = True
                break

    if best_state is not None:
        model.load_state_dict(best_state)
    if channels_last:  # measured, exported and saved in the usual layout (latency stays comparable)
        model.to(memory_format=torch.contiguous_format)
    return TrainResult(
        history=history,
        epochs=epoch,
        best_epoch=best_epoch,
        best_val_loss=best_val,
        stopped_early=stopped_early,
        train_seconds=clock() - start,
        train_loss=best_train[0],
        train_accuracy=best_train[1],
    )


#: autocast dtype of each precision (fp32: no autocast)
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: the gradient scaler's first scale (torch's default); it halves on an overflow and doubles after
#: ``growth_interval`` clean steps
INIT_LOSS_SCALE = 2.0**16


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 / float16 autocast for "bf16" / "fp16" (weights, gradients, optimizer stay fp32), else nothing."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def is_depthwise(module: nn.Module) -> bool:
    """A depthwise convolution: a ``Conv2d`` with one group per input channel (and more than one channel)."""
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


@contextlib.contextmanager
def depthwise_in_fp32(model: nn.Module, device: torch.device, precision: str) -> Iterator[None]:
    """Under CPU bf16 autocast, run ``model``'s depthwise convolutions in float32 while the context is open.

    oneDNN has no fast bfloat16 depthwise kernel on CPUs with avx512_bf16 and no AMX: a bf16 depthwise
    convolution there trains several times slower than in fp32 (BENCHMARKS.md section 5), which made bf16
    slower than fp32 for separable-conv candidates. Each depthwise conv gets its input cast to float32 and
    autocast switched off around its own forward (its output stays float32; the next op autocasts again).
    The override is an instance attribute removed on exit, so validation, export and saved models see the
    module unchanged. Any other device or precision: nothing is changed.
    """
    convs = [m for m in model.modules() if is_depthwise(m)] if device.type == "cpu" and precision == "bf16" else []
    for conv in convs:
        conv.forward = _fp32_forward(conv.forward)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for conv in convs:
            del conv.forward


def _fp32_forward(forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type="cpu", enabled=False):
            return forward(x.float())

    return run


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A loss scaler for "fp16" (float16 gradients underflow without one), None otherwise.

    bf16 has fp32's exponent range, so it needs none.
    """
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type, init_scale=INIT_LOSS_SCALE)


def _over_budget(config: EvaluatorConfig, epoch: int, batch: int) -> str:
    return (
        f"training exceeded its time budget of {config.max_train_seconds:g} s "
        f"(stopped at epoch {epoch}, batch {batch})"
    )
