"""Trains the small network of tests/test_distributed.py with bidl.training.train: run directly (one
process) or under torchrun (data-parallel). Arguments: out_dir epochs [backend].

In float64: a spiking network's gradient is discontinuous (a membrane on a threshold or on the edge of
the surrogate's window), so two float32 runs that sum in different orders can part by a whole spike; in
float64 the same runs agree to ~1e-13 (measured on the DVS128 network: float32 one process against two
parted by 1e-2 in one step, float64 by 1e-13), and a DDP bug cannot hide behind float noise."""

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from bidl import FCLIF, TemporalAggregation
from bidl.training import Recipe, seed_everything, train

N_TRAIN, N_VAL, T, FEATURES, CLASSES = 36, 10, 6, 12, 3


def data() -> tuple[TensorDataset, TensorDataset]:
    generator = torch.Generator().manual_seed(123)
    x = torch.rand(N_TRAIN + N_VAL, T, FEATURES, generator=generator, dtype=torch.float64)
    y = torch.randint(0, CLASSES, (N_TRAIN + N_VAL,), generator=generator)
    return TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), TensorDataset(x[N_TRAIN:], y[N_TRAIN:])


def model() -> nn.Module:
    """BatchNorm on the synaptic current (first layer) and on the membrane (second), learnable neurons."""
    seed_everything(7)
    return nn.Sequential(
        FCLIF(FEATURES, 16, norm="input", alpha=0.5, theta=0.3, learnable=True),
        FCLIF(16, CLASSES, norm="state", alpha=0.5, theta=0.3),
        TemporalAggregation("mean"),
    ).double()


RECIPE = dict(
    optimizer="sgd", lr=0.5, momentum=0.9, batch_size=8, schedule="none", bn_recalibration_batches=2
)


def run(out_dir: Path, epochs: int, backend: str = "auto") -> None:
    torch.set_num_threads(1)
    train_set, val_set = data()
    recipe = Recipe.from_mapping({**RECIPE, "epochs": epochs})
    train(model(), train_set, val_set, recipe, out_dir, seed=3, device="cpu", backend=backend)


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:])
