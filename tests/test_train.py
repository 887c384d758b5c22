"""The training loop: augmentation, early stopping, best-weight restore, NaN/inf, time budget, seeds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flnas.evaluate import EvaluatorConfig
from flnas.evaluate import train as train_mod
from flnas.evaluate.train import Normalizer, TrainingFailed, augment, class_weights, predict, train_model

CPU = torch.device("cpu")


def tiny_tensors(n: int, size: int = 16, seed: int = 0, classes: int = 3):
    """Learnable images: channel 0 encodes the label, the rest is noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    images[:, 0] = (labels * (255 // max(1, classes - 1))).to(torch.uint8)[:, None, None]
    return images, labels


def tiny_model(classes: int = 3) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(8, classes),
    )


def run(config: EvaluatorConfig, model: nn.Module | None = None, n_train: int = 64, **kwargs):
    x, y = tiny_tensors(n_train, seed=1)
    vx, vy = tiny_tensors(32, seed=2)
    torch.manual_seed(config.seed)
    model = model or tiny_model()
    result = train_model(
        model, x, y, vx, vy, config, device=CPU, normalize=Normalizer.from_images(x), num_classes=3, **kwargs
    )
    return model, result


def test_augment_applies_one_square_symmetry_per_sample():
    x = torch.arange(5 * 3 * 4 * 4, dtype=torch.int64).reshape(5, 3, 4, 4).to(torch.uint8)
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    seen = set()
    for i in range(5):
        candidates = []
        for t in (False, True):
            base = x[i].transpose(1, 2) if t else x[i]
            for dims in ((), (2,), (1,), (1, 2)):
                candidates.append(base.flip(dims) if dims else base)
        matches = [k for k, c in enumerate(candidates) if torch.equal(out[i], c)]
        assert matches, f"sample {i} is not a flip/rotation of its input"
        seen.add(matches[0])
    big = augment(torch.randint(0, 255, (64, 3, 4, 4), dtype=torch.uint8), torch.Generator().manual_seed(1))
    assert big.shape == (64, 3, 4, 4)
    assert len(seen) > 1  # not the same transform for every sample


def test_normalizer_matches_channel_mean_and_std():
    x, _ = tiny_tensors(40)
    norm = Normalizer.from_images(x, chunk=7)
    xf = x.double()
    assert torch.allclose(torch.tensor(norm.mean, dtype=torch.float64), xf.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(
        torch.tensor(norm.std, dtype=torch.float64), xf.std(dim=(0, 2, 3), unbiased=False), atol=1e-4
    )
    out = norm(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)


def test_class_weights_are_inverse_frequency_and_zero_for_absent():
    w = class_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert torch.allclose(w, torch.tensor([4 / (2 * 3), 4 / (2 * 1), 0.0]))


def test_early_stopping_restores_the_best_val_loss_weights(monkeypatch):
    """Scripted val losses fall until epoch 2 then rise: stop after `patience` bad epochs, keep epoch 2."""
    scripted = iter([1.0, 0.5, 0.7, 0.8, 0.9, 1.0])
    real_predict = train_mod.predict

    def fake_predict(model, images, labels, normalize, device, batch_size=256):
        _, acc, pred = real_predict(model, images, labels, normalize, device, batch_size)
        return next(scripted), acc, pred

    monkeypatch.setattr(train_mod, "predict", fake_predict)
    snapshots = {}
    model = tiny_model()

    def on_epoch(epoch, logs):
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    _, result = run(EvaluatorConfig(epochs=10, patience=2, batch_size=16), model=model, on_epoch=on_epoch)
    assert result.epochs == 4 and result.stopped_early
    assert result.best_epoch == 2 and result.best_val_loss == 0.5
    assert [h["best_epoch"] for h in result.history] == [1, 2, 2, 2]
    final = model.state_dict()
    assert all(torch.equal(final[k], snapshots[2][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[4][k]) for k in final)
    assert result.train_loss == result.history[1]["train_loss"]


def test_restored_model_reproduces_its_best_validation_loss():
    model, result = run(EvaluatorConfig(epochs=4, patience=1, batch_size=16, lr=0.05))
    vx, vy = tiny_tensors(32, seed=2)
    x, _ = tiny_tensors(64, seed=1)
    loss, _, _ = predict(model, vx, vy, Normalizer.from_images(x), CPU)
    assert loss == pytest.approx(result.history[result.best_epoch - 1]["val_loss"], rel=1e-6)
    assert loss == min(h["val_loss"] for h in result.history)


def test_training_learns_the_easy_task():
    _, result = run(EvaluatorConfig(epochs=6, patience=6, batch_size=16, lr=0.03, augment=False))
    assert result.history[-1]["val_accuracy"] > 0.6
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


class NaNAt(nn.Module):
    """Returns NaN (or inf) logits from the given training call on: the loss becomes non-finite there."""

    def __init__(self, call: int, value: float = float("nan")) -> None:
        super().__init__()
        self.inner = tiny_model()
        self.call, self.calls, self.value = call, 0, value

    def forward(self, x):
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.call:
                out = out * self.value
        return out


def test_nan_loss_fails_with_epoch_and_batch():
    # 64 samples / batch 16 = 4 batches per epoch; call 11 is epoch 3, batch 3
    with pytest.raises(TrainingFailed) as info:
        run(EvaluatorConfig(epochs=5, patience=5, batch_size=16), model=NaNAt(11))
    assert info.value.kind == "nan"
    assert info.value.reason == "loss became nan at epoch 3, batch 3"
    assert len(info.value.history) == 2


def test_inf_loss_is_reported_as_inf():
    with pytest.raises(TrainingFailed) as info:
        run(EvaluatorConfig(epochs=2, batch_size=16), model=NaNAt(2, float("inf")))
    assert info.value.reason.startswith("loss became ")
    assert info.value.reason.endswith("at epoch 1, batch 2")


def test_huge_learning_rate_ends_as_nan_not_a_crash():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3))
    with pytest.raises(TrainingFailed) as info:
        run(
            EvaluatorConfig(
                epochs=20, patience=20, batch_size=16, lr=1e30, optimizer="sgd", momentum=0.0, augment=False
            ),
            model=model,
        )
    assert info.value.kind == "nan"


class FakeClock:
    """A clock that moves ``step`` seconds each time it is read: the budget is tested by what training does
    at each check, not by how fast (or how busy) the machine is."""

    def __init__(self, step: float = 1.0) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        now = self.now
        self.now += self.step
        return now


def test_time_budget_stops_training_at_the_first_check_past_the_deadline(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(train_mod, "clock", clock)
    with pytest.raises(TrainingFailed) as info:
        run(EvaluatorConfig(epochs=50, patience=50, batch_size=16, max_train_seconds=10), model=tiny_model())
    # reads: start 0 (deadline 10); epoch 1: its start 1, batches 2-5, its seconds 6, end check 7;
    # epoch 2: its start 8, batches 9, 10, 11 -> 11 > 10 stops it at once
    assert info.value.kind == "timeout"
    assert info.value.reason == "training exceeded its time budget of 10 s (stopped at epoch 2, batch 3)"
    assert len(info.value.history) == 1 and info.value.history[0]["seconds"] == 5.0


def test_no_time_budget_never_stops_training(monkeypatch):
    monkeypatch.setattr(train_mod, "clock", FakeClock(step=1e6))  # every read is "much later"
    _, result = run(EvaluatorConfig(epochs=2, patience=2, batch_size=16, max_train_seconds=None))
    assert result.epochs == 2 and result.train_seconds > 0


def test_fixed_seed_runs_are_identical():
    config = EvaluatorConfig(epochs=3, patience=3, batch_size=16, seed=7)
    model_a, a = run(config)
    model_b, b = run(config)
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    assert all(torch.equal(model_a.state_dict()[k], model_b.state_dict()[k]) for k in model_a.state_dict())
    _, c = run(EvaluatorConfig(epochs=3, patience=3, batch_size=16, seed=8))
    assert [h["val_loss"] for h in c.history] != [h["val_loss"] for h in a.history]


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_each_optimizer_trains_with_smoothing_and_class_weights(optimizer):
    config = EvaluatorConfig(
        epochs=1, batch_size=16, optimizer=optimizer, label_smoothing=0.1, class_weighted_loss=True
    )
    _, result = run(config, n_train=33)  # 33 = 2 batches of 16 + one sample, which is skipped
    assert result.epochs == 1 and result.history[0]["train_loss"] > 0
