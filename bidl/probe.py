"""Order probes: does a dataset need temporal dynamics to be solved?

Two small classifiers see the same per-timestep features of a cached split (frames average-pooled to at most
``pool x pool`` cells per channel; token ids embedded) and are trained with the same recipe:

- :class:`TemporalProbe`: FCLIF -> FCLIF -> linear readout per step -> mean over time. Its LIF membranes
  carry state across timesteps, so it can use the order of events.
- :class:`StaticProbe`: the features averaged over time (a bag of frames, or a bag of words) -> MLP. It
  cannot see order, by construction.

:func:`run_probe` reports three top-1 accuracies on the test split: the temporal probe, the same trained
probe on test inputs whose timesteps are shuffled per sample, and the static probe. On a dataset whose
classes differ in the order of what happens, the first is clearly above the other two; where classes are
spatial, the three are close. The probe is a check of the data, not a paper model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .evaluation import shuffle_time
from .models.registry import count_parameters
from .training import Recipe, seed_everything, train

__all__ = ["OrderProbe", "StaticProbe", "probe_features", "run_probe"]


class _PoolFlatten(nn.Module):
    """``[N, C, H, W] -> [N, C * ph * pw]`` by adaptive average pooling; other shapes are flattened."""

    def __init__(self, size: tuple[int, int] | None):
        super().__init__()
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        if self.size is not None:
            x = F.adaptive_avg_pool2d(x, self.size)
        return x.flatten(1)


def probe_features(sample: Tensor, *, pool: int = 8, vocab_size: int | None = None, embed_dim: int = 32):
    """The per-step feature module for inputs like ``sample`` (one item ``[T, ...]``) and its width.

    Integer samples are token ids (``vocab_size`` required); float samples ``[T, C, H, W]`` are pooled to at
    most ``pool x pool`` cells; other float samples ``[T, ...]`` are flattened per step.
    """
    if not sample.dtype.is_floating_point:
        if vocab_size is None:
            raise ValueError("vocab_size: required for token inputs")
        return nn.Embedding(vocab_size, embed_dim), embed_dim
    step = sample.shape[1:]
    if len(step) == 3:
        c, h, w = step
        size = (min(pool, h), min(pool, w))
        return _PoolFlatten(size), c * size[0] * size[1]
    return _PoolFlatten(None), int(torch.tensor(step).prod()) if len(step) else 1


class _Probe(nn.Module):
    """Shared front of the probes: per-step features of ``[B, T, ...]``, layer-normalised, ``[B, T, F]``."""

    def __init__(self, sample: Tensor, *, pool: int, vocab_size: int | None):
        super().__init__()
        self.front, self.width = probe_features(sample, pool=pool, vocab_size=vocab_size)
        self.norm = nn.LayerNorm(self.width)

    def steps(self, x: Tensor) -> Tensor:
        b, t = x.shape[:2]
        return self.norm(self.front(x.reshape(b * t, *x.shape[2:])).reshape(b, t, -1))


class OrderProbe(_Probe):
    """Per-step features -> two temporal convolutions (kernel ``kernel``, ReLU) -> max over time -> linear.

    It detects local motifs in time wherever they occur (a negation before a word, a move followed by
    another), which shuffling the timesteps destroys. Input ``[B, T, ...]``; output ``[B, n_classes]``.
    """

    def __init__(
        self,
        sample: Tensor,
        n_classes: int,
        *,
        hidden: int = 128,
        pool: int = 8,
        vocab_size: int | None = None,
        kernel: int = 5,
    ):
        super().__init__(sample, pool=pool, vocab_size=vocab_size)
        pad = kernel // 2
        self.temporal = nn.Sequential(
            nn.Conv1d(self.width, hidden, kernel, padding=pad),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel, padding=pad),
            nn.ReLU(),
        )
        self.readout = nn.Linear(hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.temporal(self.steps(x).transpose(1, 2)).amax(2))


class StaticProbe(_Probe):
    """Per-step features averaged over time -> Linear -> ReLU -> Linear: blind to order by construction.

    Input ``[B, T, ...]``; output ``[B, n_classes]``.
    """

    def __init__(
        self,
        sample: Tensor,
        n_classes: int,
        *,
        hidden: int = 128,
        pool: int = 8,
        vocab_size: int | None = None,
    ):
        super().__init__(sample, pool=pool, vocab_size=vocab_size)
        self.mlp = nn.Sequential(nn.Linear(self.width, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(self.steps(x).mean(1))


@torch.no_grad()
def _top1(
    model: nn.Module, dataset: Dataset, *, shuffle_seed: int | None = None, batch_size: int = 64
) -> float:
    model.eval()
    generator = torch.Generator().manual_seed(shuffle_seed) if shuffle_seed is not None else None
    correct = total = 0
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        if generator is not None:
            x = shuffle_time(x, generator)
        correct += int((model(x).argmax(1) == y).sum())
        total += int(y.numel())
    return round(100.0 * correct / max(total, 1), 2)


def run_probe(
    train_set: Dataset,
    test_set: Dataset,
    n_classes: int,
    out_dir: str | Path,
    *,
    epochs: int = 15,
    hidden: int = 128,
    pool: int = 8,
    kernel: int = 5,
    lr: float = 3e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> dict[str, Any]:
    """Train both probes on ``train_set`` (checkpoints under ``out_dir/{temporal,static}``, resumable) and
    return their test top-1: ``temporal``, ``temporal_time_shuffled``, ``static`` (in %), with the chance
    level, the parameter counts and the settings."""
    out_dir = Path(out_dir)
    sample = train_set[0][0]
    vocab_size = getattr(train_set, "vocab_size", None)
    recipe = Recipe(
        optimizer="adam", lr=lr, weight_decay=1e-4, schedule="cosine", epochs=epochs, batch_size=batch_size
    )
    result: dict[str, Any] = {
        "settings": {
            "epochs": epochs,
            "hidden": hidden,
            "pool": pool,
            "kernel": kernel,
            "lr": lr,
            "batch_size": batch_size,
        },
        "chance": round(100.0 / n_classes, 2),
        "n_train": len(train_set),
        "n_test": len(test_set),
    }
    for kind, cls, extra in (("order", OrderProbe, {"kernel": kernel}), ("static", StaticProbe, {})):
        seed_everything(seed)
        model = cls(sample, n_classes, hidden=hidden, pool=pool, vocab_size=vocab_size, **extra)
        fingerprint = {"probe": kind, "hidden": hidden, "pool": pool, "train_samples": len(train_set)}
        train(model, train_set, None, recipe, out_dir / kind, seed=seed, fingerprint=fingerprint)
        result[f"{kind}_parameters"] = count_parameters(model)
        result[kind] = _top1(model, test_set)
        if kind == "order":
            result["order_time_shuffled"] = _top1(model, test_set, shuffle_seed=seed)
    return result
