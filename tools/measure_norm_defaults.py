"""Measure where BatchNorm should sit in the ST blocks by default: on the membrane (``norm="state"``), on the
synaptic current (``"input"``) or nowhere (``None``).

Two synthetic temporal tasks in which the order of events carries the label (a model that ignores time can
reach at most 50 %), trained by BPTT in training mode and scored in evaluation mode (BatchNorm with running
statistics), as a trained network is used:

- ``order`` (FC networks): ``T`` steps of 16 noisy features; two of three fixed patterns are shown for two
  steps each, the second 2-5 steps after the first; the class is the ordered pair (6 classes). Networks
  ``fc_liaf`` (FCLIAF(16, 64) -> FCLIAF(64, 6), mean over T) and ``fc_lif`` (FCLIF(16, 64) -> FCLIF(64, 6),
  the mean spike rate as the logits, as the DVS128 network reads out); both blocks' norm varies.
- ``motion`` (conv networks): ``T`` event frames ``2 x 16 x 16``; from a random onset a 2 x 2 blob moves one
  pixel per step for 10 steps right, left, down or up, over the same pixels either way (channel 0), with
  sparse noise events (3 %) in both channels; the class is the direction (4 classes). Networks
  ``conv_lif`` / ``conv_liaf``: ConvLIF (ConvLIAF) (2 -> 8, k3 s2 p1) -> ConvLIF (ConvLIAF) (8 -> 16, k3 s2
  p1) -> mean over T -> Linear(256 -> 4); only the conv blocks' norm varies.

Every run: fixed neuron parameters (alpha ``--alpha``, theta 0.5, hard reset, no training noise), Adam
``--lr``, ``--epochs`` epochs of batch 64, one seed for the initialisation and the batch order; the data are
the same for every run. Prints one row per network and norm: the evaluation-mode test accuracy of each seed,
their mean, and the mean training-mode accuracy over the last epoch.

Usage: ``python tools/measure_norm_defaults.py [--seeds 0 1 2] [--nets fc_liaf fc_lif conv_lif conv_liaf]``
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor, nn

from bidl import FCLIAF, FCLIF, ConvLIAF, ConvLIF, TemporalAggregation

NORMS = ("state", "input", None)
NETS = ("fc_liaf", "fc_lif", "conv_lif", "conv_liaf")
DATA_SEED = 1234


def order_task(n: int, steps: int, features: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``[n, steps, features]`` noisy features with two of three patterns in order; labels 0-5."""
    patterns = (torch.rand(3, features, generator=generator) < 0.4).float()
    pairs = [(i, j) for i in range(3) for j in range(3) if i != j]
    x = 0.3 * torch.randn(n, steps, features, generator=generator)
    y = torch.randint(0, len(pairs), (n,), generator=generator)
    first = torch.randint(0, steps - 8, (n,), generator=generator)
    gap = torch.randint(2, 6, (n,), generator=generator)
    for k in range(n):
        i, j = pairs[y[k]]
        t1, t2 = int(first[k]), int(first[k] + gap[k])
        x[k, t1 : t1 + 2] += 1.5 * patterns[i]
        x[k, t2 : t2 + 2] += 1.5 * patterns[j]
    return x, y


def motion_task(n: int, steps: int, generator: torch.Generator, size: int = 16) -> tuple[Tensor, Tensor]:
    """``[n, steps, 2, size, size]`` event frames of a blob moving in one of 4 directions; labels 0-3."""
    x = (torch.rand(n, steps, 2, size, size, generator=generator) < 0.03).float()
    y = torch.randint(0, 4, (n,), generator=generator)
    move = min(steps, size - 6)  # the blob moves for `move` steps from a random onset, over move + 1 pixels
    for k in range(n):
        onset = int(torch.randint(0, steps - move + 1, (1,), generator=generator))
        start = int(torch.randint(0, size - move, (1,), generator=generator))
        across = int(torch.randint(0, size - 1, (1,), generator=generator))
        for step in range(move):
            t = onset + step
            along = start + (step if int(y[k]) % 2 == 0 else move - 1 - step)  # 0, 2: forward; 1, 3: back
            if int(y[k]) < 2:  # horizontal
                x[k, t, 0, across : across + 2, along : along + 2] = 1.0
            else:
                x[k, t, 0, along : along + 2, across : across + 2] = 1.0
    return x, y


class FCNet(nn.Module):
    def __init__(self, block: type[FCLIF], features: int, hidden: int, classes: int, norm, **neuron):
        super().__init__()
        self.fc1 = block(features, hidden, norm=norm, **neuron)
        self.fc2 = block(hidden, classes, norm=norm, **neuron)
        self.aggregate = TemporalAggregation("mean")

    def forward(self, x: Tensor) -> Tensor:
        return self.aggregate(self.fc2(self.fc1(x)))


class ConvNet(nn.Module):
    def __init__(self, block: type[ConvLIF], classes: int, norm, **neuron):
        super().__init__()
        self.conv1 = block(2, 8, 3, stride=2, padding=1, norm=norm, **neuron)
        self.conv2 = block(8, 16, 3, stride=2, padding=1, norm=norm, **neuron)
        self.aggregate = TemporalAggregation("mean")
        self.head = nn.Linear(16 * 4 * 4, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.aggregate(self.conv2(self.conv1(x))).flatten(1))


def build(net: str, norm, alpha: float) -> nn.Module:
    neuron = dict(alpha=alpha, theta=0.5, noise=0.0)
    if net == "fc_liaf":
        return FCNet(FCLIAF, 16, 64, 6, norm, **neuron)
    if net == "fc_lif":
        return FCNet(FCLIF, 16, 64, 6, norm, **neuron)
    if net == "conv_lif":
        return ConvNet(ConvLIF, 4, norm, **neuron)
    if net == "conv_liaf":
        return ConvNet(ConvLIAF, 4, norm, **neuron)
    raise ValueError(f"--nets: unknown network {net!r}; choose from {NETS}")


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int = 256) -> float:
    with torch.no_grad():
        hits = sum(
            (model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item()
            for i in range(0, len(x), batch)
        )
    return 100.0 * hits / len(x)


def run(net: str, norm, seed: int, data: dict, args: argparse.Namespace) -> tuple[float, float]:
    """Train one network; return (evaluation-mode test accuracy, training-mode accuracy of the last epoch)."""
    x_train, y_train, x_test, y_test = data["conv" if net.startswith("conv") else "fc"]
    torch.manual_seed(seed)
    model = build(net, norm, args.alpha)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        hits = 0
        for i in range(0, len(order), 64):
            index = order[i : i + 64]
            out = model(x_train[index])
            loss = nn.functional.cross_entropy(out, y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            hits += (out.argmax(1) == y_train[index]).sum().item()
    model.eval()
    return accuracy(model, x_test, y_test), 100.0 * hits / len(x_train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--alpha", type=float, default=0.8)
    parser.add_argument("--train", type=int, default=1024, help="training samples per task")
    parser.add_argument("--test", type=int, default=512, help="test samples per task")
    parser.add_argument("--steps", type=int, default=16, help="timesteps T")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(DATA_SEED)
    n = args.train + args.test
    fc_x, fc_y = order_task(n, args.steps, 16, generator)
    conv_x, conv_y = motion_task(n, args.steps, generator)
    split = args.train
    data = {
        "fc": (fc_x[:split], fc_y[:split], fc_x[split:], fc_y[split:]),
        "conv": (conv_x[:split], conv_y[:split], conv_x[split:], conv_y[split:]),
    }
    seeds = " ".join(f"seed {s:>2}" for s in args.seeds)
    print(f"{'network':<10} {'norm':<6} {seeds}  {'mean':>6}  {'train':>6}  {'s/run':>6}")
    for net in args.nets:
        for norm in NORMS:
            tests, trains, start = [], [], time.perf_counter()
            for seed in args.seeds:
                test, train = run(net, norm, seed, data, args)
                tests.append(test)
                trains.append(train)
            per_run = (time.perf_counter() - start) / len(args.seeds)
            cells = " ".join(f"{a:7.1f}" for a in tests)
            mean, train_mean = sum(tests) / len(tests), sum(trains) / len(trains)
            print(
                f"{net:<10} {str(norm):<6} {cells}  {mean:6.1f}  {train_mean:6.1f}  {per_run:6.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
