r"""Global-local co-learning and the anti-noise study (paper sections 3.2.2 and 5.3, Fig. 11).

- :func:`add_salt_noise`: the paper's background noise. For a noise ratio :math:`a`, in every frame and every
  channel of a sample, :math:`n = \mathrm{round}(a W H)` distinct random pixels are set to 1.
- :func:`signal_density`: the share of pixels that hold an event in a dataset's planes, so that a noise ratio
  can be read relative to the signal (``relative_to="events"``: :math:`a` noise pixels per active pixel).
- :func:`with_population_head`: the network with its last ST block replaced by ``n_classes * P`` neurons
  (population coding, paper: 11 classes x 7) read out by :class:`PopulationDecode` (the mean rate of each
  class's population). The new head starts as ``P`` copies of the trained head (its BatchNorm on the synaptic
  current folded into the weights), each perturbed by a little noise so that the copies can diverge.
- :func:`local_epoch`: R-STDP (or any rule) on the head, streamed in EIM per timestep with batch 1, the reward
  of each step from the head's spikes and the label (:func:`bidl.plasticity.population_reward`).
- :func:`interleaved_epoch`: the paper's unified flow: per batch, one BPTT step (IIM) on the trainable
  modules, then local updates streamed over the batch's samples (EIM).
- :func:`noise_sweep`: top-1 of several networks on the same noisy copies of a dataset, ratio by ratio.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from .io import load_checkpoint
from .layers import STBlock
from .plasticity import Plasticity, population_decode, population_reward
from .state import iteration_mode, reset_states, set_iteration_mode

__all__ = [
    "PopulationDecode",
    "add_salt_noise",
    "population_copy",
    "with_population_head",
    "local_epoch",
    "interleaved_epoch",
    "train_local",
    "noise_sweep",
    "study_networks",
]


class PopulationDecode(nn.Module):
    """``[B, n_classes * P] -> [B, n_classes]``: each class's ``P`` neurons averaged (population coding)."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes

    def forward(self, x: Tensor) -> Tensor:
        return population_decode(x, self.n_classes)

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}"


def add_salt_noise(frames: Tensor, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    r"""The paper's validation noise: in every ``[H, W]`` plane of ``frames`` ``[..., H, W]`` (each frame,
    each channel), ``round(ratio * H * W)`` distinct random pixels are set to 1. Returns a new tensor."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"noise ratio: {ratio} is outside [0, 1]")
    h, w = frames.shape[-2:]
    n = round(ratio * h * w)
    if n == 0:
        return frames.clone()
    planes = frames.reshape(-1, h * w).clone()
    scores = torch.rand(planes.shape, generator=generator).to(planes.device)
    chosen = scores.topk(n, dim=1).indices
    planes.scatter_(1, chosen, 1.0)
    return planes.view_as(frames)


def _repeat_rows(tensor: Tensor, population: int) -> Tensor:
    return tensor.repeat_interleave(population, dim=0)


@torch.no_grad()
def population_copy(
    block: STBlock, population: int, *, jitter: float = 0.1, generator: torch.Generator | None = None
) -> STBlock:
    """A linear ST block with ``out * population`` neurons whose group ``c`` starts as copies of ``block``'s
    neuron ``c``; in eval mode it computes exactly what ``block`` computes, copied, when ``jitter`` is 0.

    The block's BatchNorm on the synaptic current (if any) is folded into the new linear weights, so that the
    head is a plain ``Linear -> neuron`` that local rules act on directly; a BatchNorm on the membrane and
    per-channel neuron parameters are repeated. ``jitter`` adds ``jitter * std(W) * N(0, 1)`` to every new
    weight.
    """
    if not isinstance(block.synapse, nn.Linear):
        raise TypeError(
            f"block: population heads replace a linear ST block, got {type(block.synapse).__name__}"
        )
    if population < 1:
        raise ValueError(f"population: {population} must be >= 1")
    weight = block.synapse.weight.detach().clone()
    bias = (
        block.synapse.bias.detach().clone()
        if block.synapse.bias is not None
        else torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    )
    if block.input_norm is not None:
        bn = block.input_norm
        scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(
            bn.running_var + bn.eps
        )
        shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
        weight = scale[:, None] * weight
        bias = scale * (bias - bn.running_mean) + shift
    new = copy.deepcopy(block)
    new.input_norm = None
    new.plasticity = None
    out = weight.shape[0] * population
    new.synapse = nn.Linear(weight.shape[1], out).to(weight.device)
    noise = torch.randn(out, weight.shape[1], generator=generator).to(weight.device)
    new.synapse.weight.copy_(_repeat_rows(weight, population) + jitter * weight.std() * noise)
    new.synapse.bias.copy_(_repeat_rows(bias, population))
    neuron = new.neuron
    if neuron.sharing == "channel":
        neuron.channels = out
        for name in ("alpha", "beta", "theta", "v_reset"):
            value = getattr(neuron, name)
            repeated = _repeat_rows(value.detach(), population)
            if isinstance(value, nn.Parameter):
                setattr(neuron, name, nn.Parameter(repeated, requires_grad=value.requires_grad))
            else:
                setattr(neuron, name, repeated)
    if isinstance(neuron.norm, nn.modules.batchnorm._BatchNorm):
        old = neuron.norm
        norm = type(old)(out, eps=old.eps, momentum=old.momentum, affine=old.affine).to(weight.device)
        for name in ("running_mean", "running_var", "weight", "bias"):
            if getattr(old, name, None) is not None:
                getattr(norm, name).copy_(_repeat_rows(getattr(old, name), population))
        neuron.norm = norm
    elif neuron.norm is not None:
        raise TypeError(f"block: cannot repeat the neuron's norm {type(neuron.norm).__name__}")
    return new


def with_population_head(
    model: nn.Module,
    *,
    head: str,
    n_classes: int,
    population: int,
    jitter: float = 0.1,
    seed: int = 0,
) -> nn.Module:
    """A copy of ``model`` whose ST block ``head`` (e.g. ``"fc2"``) is replaced by a population-coded one
    (:func:`population_copy`) and whose ``readout`` decodes it (:class:`PopulationDecode`).

    ``model`` must run ``readout(aggregate(head(...)))`` as its last steps, as
    :class:`~bidl.models.dvs128.DVS128GestureNet` does (its ``readout`` is the identity by default).
    """
    if not isinstance(getattr(model, head, None), STBlock):
        raise KeyError(f"head: {type(model).__name__} has no ST block named {head!r}")
    if not hasattr(model, "readout"):
        raise TypeError(f"model: {type(model).__name__} has no readout to replace")
    new = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    setattr(new, head, population_copy(getattr(model, head), population, jitter=jitter, generator=generator))
    new.readout = PopulationDecode(n_classes)
    return new


_BACKBONE_CHUNK = 16
"""Samples whose backbone outputs :func:`local_epoch` computes in one IIM pass."""


def _stream_sample(model: nn.Module, frames: Tensor) -> Tensor:
    """Run one ``[T, ...]`` sample through an EIM network, batch 1; the output after the last step."""
    reset_states(model)
    out = None
    for t in range(frames.shape[0]):
        out = model(frames[t : t + 1])
    return out


def _split_at_backbone(model: nn.Module, plasticity: Plasticity) -> bool:
    """Whether ``model`` splits into a backbone it runs by ``features`` and a ``tail`` (the names in its
    ``backbone`` attribute), with every plastic block in the tail: then the backbone, which local learning
    leaves unchanged, can run in IIM (batched, its fused kernels) and only the tail streams step by step."""
    names = getattr(model, "backbone", None)
    if not names or not all(callable(getattr(model, name, None)) for name in ("features", "tail")):
        return False
    backbone = [getattr(model, name) for name in names]
    inside = {id(m) for part in backbone for m in part.modules()}
    plastic = [m for m in model.modules() if getattr(m, "plasticity", None) is plasticity]
    return bool(plastic) and not any(id(m) in inside for m in plastic)


def _same_backbone(a: nn.Module, b: nn.Module) -> bool:
    """Whether two networks have the same backbone (:func:`_split_at_backbone`'s ``backbone`` modules): the
    same class, module structure and settings, and equal parameters and buffers."""
    names = getattr(a, "backbone", None)
    if type(a) is not type(b) or not names or names != getattr(b, "backbone", None):
        return False
    for name in names:
        part_a, part_b = getattr(a, name), getattr(b, name)
        if repr(part_a) != repr(part_b):
            return False
        state_a, state_b = part_a.state_dict(), part_b.state_dict()
        if state_a.keys() != state_b.keys() or not all(torch.equal(state_a[k], state_b[k]) for k in state_a):
            return False
    return True


def _backbone_groups(models: Mapping[str, nn.Module]) -> list[list[str]]:
    """The names of ``models`` grouped by shared backbone (:func:`_same_backbone`), in order; a network
    without ``features`` and ``tail`` is a group of its own."""
    groups: list[list[str]] = []
    for name, model in models.items():
        splits = all(callable(getattr(model, method, None)) for method in ("features", "tail"))
        for group in groups:
            if splits and _same_backbone(models[group[0]], model):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def _stream_tail(model: nn.Module, hidden: Tensor) -> Tensor:
    """Run one sample's backbone output ``[T, ...]`` through the EIM tail, batch 1; the last output."""
    reset_states(model)
    out = None
    for t in range(hidden.shape[0]):
        out = model.tail(hidden[t : t + 1])
    return out


@torch.no_grad()
def local_epoch(
    model: nn.Module,
    dataset: Dataset,
    plasticity: Plasticity,
    *,
    n_classes: int,
    order: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
) -> float:
    """One epoch of local learning: every sample streamed through ``model`` in EIM, batch 1, one timestep per
    call; after each step ``plasticity`` updates its synapse with the population reward of that step.

    The network runs in eval mode (no BatchNorm updates, no training noise). Returns the top-1 (%) of the
    streamed predictions, each read after its sample's last step (with the weights of that moment).
    """
    device = torch.device(device)
    model.eval().to(device)
    correct = 0
    indices = list(order) if order is not None else list(range(len(dataset)))
    split = _split_at_backbone(model, plasticity)
    plasticity.active = True
    # with a backbone that local learning leaves unchanged, its outputs come from IIM, a chunk of samples at a
    # time (IIM and EIM give the same values); the samples then stream through the tail one by one, in order
    chunk = _BACKBONE_CHUNK if split else 1
    for start in range(0, len(indices), chunk):
        samples = [dataset[i] for i in indices[start : start + chunk]]
        if split:
            with iteration_mode(model, "internal"):
                inputs = torch.stack([frames for frames, _ in samples]).to(device)
                hidden = model.features(inputs)
        with iteration_mode(model, "external"):
            for k, (frames, label) in enumerate(samples):
                labels = torch.tensor([int(label)], device=device)
                plasticity.reward = lambda post, labels=labels: population_reward(post, labels, n_classes)
                out = _stream_tail(model, hidden[k]) if split else _stream_sample(model, frames.to(device))
                correct += int(out.argmax(1).item() == int(label))
    plasticity.reward = None
    return 100.0 * correct / max(len(indices), 1)


def interleaved_epoch(
    model: nn.Module,
    loader: DataLoader,
    plasticity: Plasticity,
    *,
    optimizer: torch.optim.Optimizer,
    n_classes: int,
    criterion: nn.Module | None = None,
    frozen: Sequence[nn.Module] = (),
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """One epoch of the unified flow: for every batch, one BPTT step in IIM (the plasticity module detached),
    then the batch's samples streamed in EIM with local updates. Returns (mean BPTT loss, BPTT-step top-1 %).
    """
    from .training import set_training

    device = torch.device(device)
    criterion = criterion or nn.CrossEntropyLoss()
    model.to(device)
    total, correct, seen = 0.0, 0, 0
    for frames, labels in loader:
        frames, labels = frames.to(device), labels.to(device)
        set_iteration_mode(model, "internal")
        set_training(model, True, list(frozen))
        outputs = model(frames)
        loss = criterion(outputs, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * labels.numel()
        correct += (outputs.argmax(1) == labels).sum().item()
        seen += labels.numel()
        local_epoch(
            model,
            list(zip(frames.cpu(), labels.cpu(), strict=True)),
            plasticity,
            n_classes=n_classes,
            device=device,
        )
    set_iteration_mode(model, "internal")
    return total / max(seen, 1), 100.0 * correct / max(seen, 1)


def train_local(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    plasticity: Plasticity,
    out_dir: str | Path,
    *,
    epochs: int,
    n_classes: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    fingerprint: dict[str, Any] | None = None,
    interleave: Any | None = None,
) -> list[dict[str, Any]]:
    """Local learning for ``epochs`` epochs (:func:`local_epoch`, samples in a seeded order per epoch),
    checkpointed and resumed by the same loop as :func:`bidl.training.train` (:func:`bidl.training.fit`):
    ``checkpoint.pt`` after every epoch (the epoch before kept as a backup, the RNG state saved),
    ``history.csv`` (the same columns; ``train_top1`` is the streamed top-1, ``val_top1`` the clean
    validation top-1 in IIM) and ``model.pt`` at the end. A checkpoint of another configuration
    (``fingerprint``) is kept aside as ``checkpoint.stale-<n>.pt`` and learning starts afresh; an epoch that
    leaves a weight NaN or infinite stops the run with the last good checkpoint kept.

    With ``interleave`` (a :class:`~bidl.training.Recipe`: its optimizer, lr, weight decay, batch size and
    ``train_only``) every epoch is an :func:`interleaved_epoch` instead: per batch a BPTT step, then the
    batch's samples streamed with local updates (``train_loss`` and ``train_top1`` are the BPTT steps').
    """
    from .training import RunFolder, _epoch_order, fit, freeze_except, make_optimizer, validate_epoch

    device = torch.device(device)
    model.to(device)
    # a constant learning rate: a finished run extends to more epochs as a fresh longer run would train
    run = RunFolder(
        out_dir,
        {"seed": seed, "rule": plasticity.rule_name, "interleave": repr(interleave), **(fingerprint or {})},
        epochs=epochs,
        lr_factor=lambda epoch: 1.0,
    )
    frozen = freeze_except(model, interleave.train_only) if interleave is not None else []
    optimizer = make_optimizer(model, interleave) if interleave is not None else None

    def epoch_step(trained: nn.Module, epoch: int) -> tuple[float, float]:
        """The epoch's samples in their seeded order: streamed with local updates (no loss: NaN), or
        interleaved with BPTT steps."""
        order = _epoch_order(len(train_set), seed, epoch)
        if interleave is None:
            top1 = local_epoch(
                trained, train_set, plasticity, n_classes=n_classes, order=order, device=device
            )
            return float("nan"), top1
        loader = DataLoader(Subset(train_set, order), batch_size=interleave.batch_size, shuffle=False)
        return interleaved_epoch(
            trained,
            loader,
            plasticity,
            optimizer=optimizer,
            n_classes=n_classes,
            frozen=frozen,
            device=device,
        )

    validate = None
    if val_set is not None:
        val_loader = DataLoader(val_set, batch_size=32, shuffle=False)
        validate = partial(validate_epoch, model, val_loader, device=device, criterion=nn.CrossEntropyLoss())
    return fit(run, model, epoch_step, device=device, optimizer=optimizer, validate=validate)


NOISE_REFERENCES = ("pixels", "events")


@torch.no_grad()
def signal_density(dataset: Dataset, batch_size: int = 32) -> float:
    """The mean share of pixels that are not zero in the ``[H, W]`` planes (every frame and channel) of every
    sample of ``dataset``: how dense its events are (``noise_sweep(relative_to="events")``'s reference)."""
    active = total = 0
    for frames, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        active += int(torch.count_nonzero(frames))
        total += frames.numel()
    if total == 0:
        raise ValueError("signal density: the dataset holds no samples")
    return active / total


def pixel_ratio(ratio: float, relative_to: str, density: float | None = None) -> float:
    """The share of pixels :func:`add_salt_noise` sets for a noise ``ratio``: the ratio itself
    (``relative_to="pixels"``, the paper's definition) or ``ratio`` noise pixels per active pixel of the
    signal (``"events"``: ``ratio * density``, at most 1)."""
    if relative_to == "pixels":
        return float(ratio)
    if relative_to == "events":
        if density is None:
            raise ValueError("noise relative to events needs the signal density")
        return min(1.0, float(ratio) * float(density))
    raise ValueError(f"noise relative_to: {relative_to!r} is not one of {NOISE_REFERENCES}")


@torch.no_grad()
def noise_sweep(
    models: Mapping[str, nn.Module],
    dataset: Dataset,
    ratios: Sequence[float],
    *,
    seed: int = 0,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    relative_to: str = "pixels",
) -> list[dict]:
    """Top-1 (%) of every network on ``dataset`` with :func:`add_salt_noise` at each ratio, in IIM.

    A ratio is a share of the pixels of each plane (``relative_to="pixels"``, the paper's) or a number of
    noise pixels per active pixel of the dataset (``"events"``; :func:`signal_density`, :func:`pixel_ratio`).
    Every network sees the very same noisy frames: the noise of batch ``k`` at ratio index ``r`` is drawn
    from a generator seeded with ``(seed, r, k)``. Networks with the same backbone (the fine-tunings of one
    network's head) share its pass: ``features`` runs once per batch, then each network's ``tail``. Returns
    rows ``{"network", "noise_ratio", "noise_relative_to", "noise_pixel_ratio", "signal_density", "top1",
    "n_samples"}`` (``signal_density``: the dataset's, measured with either reference).
    """
    density = signal_density(dataset, batch_size)
    pixel_ratios = [pixel_ratio(ratio, relative_to, density) for ratio in ratios]
    device = torch.device(device)
    for model in models.values():
        model.eval().to(device)
        set_iteration_mode(model, "internal")
    groups = _backbone_groups(models)
    rows = []
    for r, ratio in enumerate(ratios):
        correct = dict.fromkeys(models, 0)
        seen = 0
        for k, (frames, labels) in enumerate(DataLoader(dataset, batch_size=batch_size, shuffle=False)):
            generator = torch.Generator().manual_seed(seed * 1_000_003 + r * 10_007 + k)
            noisy = add_salt_noise(frames, pixel_ratios[r], generator).to(device)
            labels = torch.as_tensor(labels).to(device)
            for names in groups:  # the networks of a group share their backbone: it runs once
                hidden = models[names[0]].features(noisy) if len(names) > 1 else None
                for name in names:
                    model = models[name]
                    reset_states(model)
                    outputs = model(noisy) if hidden is None else model.tail(hidden)
                    correct[name] += (outputs.argmax(1) == labels).sum().item()
            seen += labels.numel()
        for name in models:
            rows.append(
                {
                    "network": name,
                    "noise_ratio": float(ratio),
                    "noise_relative_to": relative_to,
                    "noise_pixel_ratio": round(pixel_ratios[r], 8),
                    "signal_density": round(density, 8),
                    "top1": round(100.0 * correct[name] / max(seen, 1), 3),
                    "n_samples": seen,
                }
            )
    return rows


def study_networks(
    model: str, model_kwargs: Mapping[str, Any], study: Mapping[str, Any], weights: str | Path
) -> tuple[nn.Module, nn.Module, int]:
    """The co-learning study's networks: the registered ``model`` with the trained ``weights`` (a
    ``model.pt``), and its population-coded copy (``study``: the config's ``colearning`` section, keys
    ``head``, ``population``, ``jitter`` and ``seed``). Returns ``(original, population, n_classes)``."""
    from .models import create_model

    original = create_model(model, **dict(model_kwargs))
    original.load_state_dict(load_checkpoint(weights))
    head = study["head"]
    block = getattr(original, head, None)
    if not isinstance(block, STBlock):
        raise KeyError(f"colearning.head: {model} has no ST block named {head!r}")
    n_classes = block.synapse.out_features
    population = with_population_head(
        original,
        head=head,
        n_classes=n_classes,
        population=study["population"],
        jitter=study.get("jitter", 0.1),
        seed=study.get("seed", 0),
    )
    return original, population, n_classes
