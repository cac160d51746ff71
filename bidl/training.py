"""Training by BPTT in IIM: seeded, resumable, checkpointed every epoch, with a metrics CSV.

:func:`train` sets a run up and hands it to :func:`fit`, the checkpointed loop that local learning
(:func:`bidl.colearning.train_local`) runs too.

A *recipe* is a plain mapping (from the config) with the keys of :class:`Recipe`.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from .data.augment import parse_augment
from .distributed import DataParallel, World, all_sum, local_batch_size, process_group, shard, world
from .io import atomic_torch_save, atomic_write_csv, leftover_temporaries, load_checkpoint
from .state import reset_states, set_iteration_mode

__all__ = [
    "Recipe",
    "seed_everything",
    "set_deterministic",
    "PREVIOUS_CHECKPOINT",
    "resolve_device",
    "train",
    "fit",
    "MixedPrecision",
    "validate_epoch",
    "check_finite_weights",
    "make_optimizer",
    "make_scheduler",
    "lr_factor",
    "run_identity",
    "resumable_state",
    "finish_run",
    "RunFolder",
    "recalibrate_batchnorm",
    "freeze_except",
    "set_training",
    "HISTORY_FIELDS",
]

HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "seconds")


SCHEDULES = ("cosine", "step", "multistep", "none")

# beside ``checkpoint.pt``: the checkpoint of the epoch before, resumed from when the newest is damaged
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
# what a run writes into its folder (their temporaries, left by a killed run, are removed at the next start)
_RUN_FILES = ("checkpoint.pt", PREVIOUS_CHECKPOINT, "history.csv", "model.pt")


@dataclass(frozen=True)
class Recipe:
    """Optimisation recipe; ``fp16="auto"`` trains in fp16 (autocast + dynamic loss scale) on CUDA."""

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "cosine"
    step_size: int = 30
    gamma: float = 0.1
    milestones: tuple[int, ...] = ()
    cosine_period: int | None = None
    nesterov: bool = False
    epochs: int = 10
    batch_size: int = 16
    label_smoothing: float = 0.0
    warmup_epochs: int = 0
    fp16: str | bool = "auto"
    loss_scale: float = 512.0
    grad_clip: float | None = None
    bn_recalibration_batches: int = 16
    neuron_lr_scale: float = 1.0
    train_only: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, mapping: dict[str, Any], where: str = "recipe") -> Recipe:
        """Build from a config mapping; unknown keys raise ``KeyError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise KeyError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
        values = dict(mapping)
        if "milestones" in values:
            values["milestones"] = tuple(int(m) for m in values["milestones"])
        if "train_only" in values:
            values["train_only"] = tuple(str(m) for m in values["train_only"])
        return cls(**values)


def freeze_except(model: nn.Module, train_only: tuple[str, ...] | list[str]) -> list[nn.Module]:
    """Fine-tune only the submodules named in ``train_only`` (e.g. ``["fc2"]``): every other parameter stops
    requiring a gradient. Returns the frozen modules (those outside every named one), which
    :func:`set_training` keeps in eval mode, so that their BatchNorm statistics and training noise stay as
    trained. An empty ``train_only`` trains everything. An unknown name raises ``KeyError`` naming it."""
    if not train_only:
        return []
    names = dict(model.named_modules())
    unknown = [n for n in train_only if n not in names or not n]
    if unknown:
        raise KeyError(
            f"recipe.train_only: no submodule named {unknown}; the model has {sorted(names)[1:12]}..."
        )
    kept = {id(m) for n in train_only for m in names[n].modules()}
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for n in train_only:
        for parameter in names[n].parameters():
            parameter.requires_grad_(True)
    return [m for m in model.modules() if not any(id(sub) in kept for sub in m.modules())]


def set_training(model: nn.Module, training: bool, frozen: list[nn.Module] = ()) -> None:
    """``model.train(training)``, except that the ``frozen`` modules stay in eval mode."""
    model.train(training)
    for module in frozen:
        module.eval()


def resolve_device(name: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is available, else ``"cpu"``; any other name as given."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Deterministic mode: only deterministic kernels (an operation without one raises, naming itself), no
    cuDNN autotuning, and cuBLAS's fixed workspace (set here before CUDA starts, unless the environment
    already chose one). Seeded training then gives the same weights on every run of the same machine and
    build, interrupted and resumed or not. The CPU kernels are deterministic anyway; a GPU loses speed."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(enabled)
    # filling every torch.empty with NaN is a debugging aid, not needed for determinism, and costs bandwidth
    torch.utils.deterministic.fill_uninitialized_memory = False


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer; learnable neuron parameters (alpha, beta, theta, v_reset) form a second group
    whose learning rate is ``lr * neuron_lr_scale``."""
    from .neurons import LIF

    neuron_ids = {id(p) for m in model.modules() if isinstance(m, LIF) for p in m.parameters(recurse=False)}
    weights = [p for p in model.parameters() if p.requires_grad and id(p) not in neuron_ids]
    neuron = [p for p in model.parameters() if p.requires_grad and id(p) in neuron_ids]
    params = [{"params": weights}]
    if neuron:
        params.append({"params": neuron, "lr": recipe.lr * recipe.neuron_lr_scale})
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            nesterov=recipe.nesterov,
        )
    raise ValueError(f"recipe.optimizer: unknown {recipe.optimizer!r}; choose adam, adamw or sgd")


def lr_factor(recipe: Recipe, epoch: int) -> float:
    """The learning-rate factor of epoch ``epoch`` (counted from 0): linear warm-up, then cosine / step /
    multistep / constant.

    ``cosine``: ``0.5 (1 + cos(pi e / P))`` with ``e`` the epochs after warm-up and ``P`` =
    ``cosine_period`` (PyTorch's ``CosineAnnealingLR(T_max=P)``, which rises again after ``P``, as the
    authors' Jester config with ``T_max=40`` over 200 epochs does) or the remaining epochs. ``step``:
    ``gamma ** (e // step_size)``. ``multistep``: ``gamma ** (number of milestones <= epoch)`` (mmcv's
    ``MultiStepLR``, milestones in epochs counted from 0).
    """
    if recipe.schedule not in SCHEDULES:
        raise ValueError(f"recipe.schedule: unknown {recipe.schedule!r}; choose one of {SCHEDULES}")
    warmup = recipe.warmup_epochs
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    if recipe.schedule == "cosine":
        period = recipe.cosine_period or max(1, recipe.epochs - warmup)
        return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / period))
    if recipe.schedule == "step":
        return recipe.gamma ** ((epoch - warmup) // recipe.step_size)
    if recipe.schedule == "multistep":
        return recipe.gamma ** sum(1 for m in recipe.milestones if epoch >= m)
    return 1.0


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch learning-rate factor :func:`lr_factor` as a PyTorch scheduler."""
    lr_factor(recipe, 0)  # an unknown schedule raises here, naming the key
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_factor(recipe, epoch))


def _use_fp16(recipe: Recipe, device: torch.device) -> bool:
    if recipe.fp16 == "auto":
        return device.type == "cuda"
    if recipe.fp16 and device.type != "cuda":
        raise ValueError("recipe.fp16: fp16 training needs a CUDA device; use 'auto' or false on CPU")
    return bool(recipe.fp16)


@dataclass
class MixedPrecision:
    """How a run computes: in fp16 (``enabled``: autocast to float16 and the dynamic loss scale
    ``scaler``) or in full precision (neither)."""

    enabled: bool = False
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def for_recipe(cls, recipe: Recipe, device: torch.device) -> MixedPrecision:
        """The recipe's choice (``recipe.fp16``, ``"auto"``: fp16 on CUDA) on ``device``, the scale
        starting at ``recipe.loss_scale``; fp16 asked for on the CPU raises ``ValueError``."""
        if not _use_fp16(recipe, device):
            return cls()
        return cls(True, torch.amp.GradScaler(device.type, init_scale=recipe.loss_scale))

    def state_dict(self) -> dict[str, Any]:
        """The loss scaler's state, as a checkpoint stores it (``{}`` in full precision)."""
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Continue with a checkpoint's loss scale (nothing in full precision or for an empty state)."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def _trains_batchnorm(model: nn.Module, frozen: list[nn.Module] = ()) -> bool:
    """Whether training ``model`` (but its ``frozen`` submodules) updates BatchNorm statistics."""
    held = {id(m) for f in frozen for m in f.modules()}
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in held for m in model.modules())


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The sample order of an epoch: a pure function of (seed, epoch), so a resumed run sees the same."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def run_epoch(
    model: nn.Module,
    loader: DataLoader,
    *,
    device: torch.device,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    fp16: bool = False,
    grad_clip: float | None = None,
    desc: str = "",
    frozen: list[nn.Module] = (),
) -> tuple[float, float]:
    """One pass over ``loader``; trains when ``optimizer`` is given (the ``frozen`` modules stay in eval
    mode). Returns (mean loss, top-1 %), over every process's samples in data-parallel training."""
    training = optimizer is not None
    set_training(model, training, frozen)
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(loader, desc=desc, leave=False, mininterval=2.0, dynamic_ncols=True)
    with torch.set_grad_enabled(training):
        for batch, (frames, labels) in enumerate(bar, 1):
            frames, labels = frames.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            reset_states(model)
            with torch.autocast(device.type, dtype=torch.float16, enabled=fp16):
                outputs = model(frames)
                loss = criterion(outputs.float(), labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}, batch {batch}: the loss became {loss.item()}")
            if training:
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
            total_loss += loss.item() * labels.numel()
            correct += (outputs.argmax(1) == labels).sum().item()
            seen += labels.numel()
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", top1=f"{100 * correct / seen:.1f}")
    total_loss, correct, seen = all_sum([total_loss, correct, seen])  # over the processes (DDP)
    return total_loss / max(seen, 1), 100.0 * correct / max(seen, 1)


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    loader: DataLoader,
    *,
    batches: int,
    device: torch.device,
    fp16: bool = False,
    frozen: list[nn.Module] = (),
) -> int:
    """Recompute every BatchNorm's running statistics for the current weights ("precise BN").

    During training the running statistics are an exponential average over the last few batches, taken while
    the weights were still moving; with large learning rates they lag behind the final weights and evaluation
    suffers (measured on the DVS128 stand-in: 40 % top-1 with the lagging statistics, 82 % after
    recalibration, 81 % with batch statistics). This pass resets them and averages the batch statistics of
    ``batches`` training batches with equal weights, without gradients; the neurons stay in eval mode (no
    training noise). BatchNorms among the ``frozen`` modules keep their statistics. Returns the number of
    batches used (0 when the model has no BatchNorm to recalibrate).
    """
    frozen_ids = {id(m) for m in frozen}
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in frozen_ids
    ]
    if not norms or batches <= 0:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
        norm.train()
    used = 0
    for frames, _ in loader:
        if used == batches:
            break
        reset_states(model)
        with torch.autocast(device.type, dtype=torch.float16, enabled=fp16):
            model(frames.to(device))
        used += 1
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.train(was_training)
    return used


def validate_epoch(
    model: nn.Module,
    loader: DataLoader,
    epoch: int,
    *,
    device: torch.device,
    criterion: nn.Module,
    fp16: bool = False,
) -> tuple[float, float]:
    """(mean loss, top-1 %) of ``model`` over ``loader`` after epoch ``epoch`` (counted from 0), in IIM and
    eval mode, without gradients (:func:`run_epoch`)."""
    set_iteration_mode(model, "internal")
    desc = f"epoch {epoch + 1} val"
    return run_epoch(model, loader, device=device, criterion=criterion, fp16=fp16, desc=desc)


def check_finite_weights(model: nn.Module, epoch: int) -> None:
    """Raise ``FloatingPointError`` naming the first entries of ``model``'s state dict (weights, buffers)
    that hold a NaN or an infinity after epoch ``epoch`` (counted from 0)."""
    bad = [name for name, tensor in model.state_dict().items() if not torch.isfinite(tensor).all()]
    if bad:
        raise FloatingPointError(f"epoch {epoch + 1}: non-finite values in {', '.join(bad[:5])}")


def _epoch_loader(
    train_set: Dataset,
    seed: int,
    epoch: int,
    here: World,
    batch_size: int,
    num_workers: int,
    trains_batchnorm: bool,
) -> DataLoader:
    """This process's training batches of epoch ``epoch``: its :func:`shard` of the seeded epoch order, less
    a last batch of a single sample where the model trains BatchNorm (it has no batch statistics; the order is
    random, so a different sample sits out each epoch). A dataset with ``set_epoch`` (per-epoch random
    sampling, e.g. Jester's frame draws) is told the epoch first."""
    if hasattr(train_set, "set_epoch"):
        train_set.set_epoch(epoch)
    order = shard(_epoch_order(len(train_set), seed, epoch), here)
    if len(order) % batch_size == 1 and len(order) > 1 and trains_batchnorm:
        order = order[:-1]
    return DataLoader(Subset(train_set, order), batch_size=batch_size, shuffle=False, num_workers=num_workers)


def _free_name(folder: Path, pattern: str) -> Path:
    n = 1
    while (folder / pattern.format(n)).exists():
        n += 1
    return folder / pattern.format(n)


def _set_aside(path: Path, kind: str, why: str) -> None:
    aside = _free_name(path.parent, f"{path.stem}.{kind}-{{}}.pt")
    os.replace(path, aside)
    print(f"{path}: {why}; kept it as {aside}", flush=True)


def run_identity(recipe: Recipe, seed: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a training run's weights depend on, as stored in (and compared with) its checkpoints: the whole
    recipe except ``epochs`` (a run may be extended, see :func:`resumable_state`), the seed and the caller's
    ``extra`` (model, its keywords, the digests of the data it reads, the weights it starts from, ...)."""
    return {"recipe": {**asdict(recipe), "epochs": None}, "seed": seed, **(extra or {})}


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The keys (dotted) whose values differ between two identities, one level deep into mappings."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [prefix or "<all>"] if old != new else []
    found = []
    for key in sorted(set(old) | set(new), key=str):
        name = f"{prefix}.{key}" if prefix else str(key)
        if old.get(key) != new.get(key):
            deeper = isinstance(old.get(key), dict) and isinstance(new.get(key), dict) and not prefix
            found += _differences(old[key], new[key], name) if deeper else [name]
    return found


def _why_not_resumed(
    state: dict[str, Any],
    fingerprint: dict[str, Any],
    epochs: int | None,
    factor: Callable[[int], float] | None,
) -> str | None:
    """Why a readable checkpoint cannot be resumed by this run (``None``: it can)."""
    if state.get("fingerprint") != fingerprint:
        differing = _differences(state.get("fingerprint"), fingerprint)
        return f"belongs to another run configuration (it differs in {', '.join(differing[:8])})"
    if epochs is None:
        return None
    done = int(state["epoch"])
    if done > epochs:
        return f"holds {done} epochs, past the {epochs} this run is configured for"
    if state.get("finished") and done == epochs:
        return (
            f"is the checkpoint of a finished {done}-epoch run; rerunning a finished run (--forcerun, or its "
            "model.pt deleted) trains it again from scratch"
        )
    if factor is not None:
        saved = state.get("lr_factors")
        if saved is None or [float(f) for f in saved] != [factor(e) for e in range(done)]:
            return (
                f"followed another learning-rate schedule over its {done} epochs than a {epochs}-epoch run "
                "does (e.g. a cosine schedule over the run's length), so continuing it would not give the "
                f"model of a {epochs}-epoch run"
            )
    return None


def resumable_state(
    checkpoint_path: Path,
    fingerprint: dict[str, Any],
    device: str | torch.device = "cpu",
    *,
    keep: bool = True,
    epochs: int | None = None,
    lr_factor: Callable[[int], float] | None = None,
) -> dict[str, Any] | None:
    """The checkpoint to resume from: ``checkpoint_path``, or when that is missing, damaged (a truncated or
    unreadable file) or not resumable, the previous epoch's :data:`PREVIOUS_CHECKPOINT` beside it; ``None``
    when neither can be resumed.

    A checkpoint is resumed only by a run that ends with the model an uninterrupted run would give:
    its ``fingerprint`` (:func:`run_identity`) equals this run's; it holds no more than ``epochs`` epochs;
    it is not the checkpoint of a finished run of the same length (that run is repeated from scratch); and
    the learning-rate factors of its epochs (``lr_factor(epoch)`` of this run) are those it was trained
    with. So a finished run can be extended by raising ``epochs`` where the schedule does not depend on the
    run's length (``step``, ``multistep``, ``none``, ``cosine`` with a ``cosine_period``), and starts over
    where it does.

    A damaged file is kept as ``<name>.corrupt-<n>.pt`` and one that cannot be resumed as
    ``<name>.stale-<n>.pt``, each with a message saying why (``keep``; the processes of a data-parallel
    run other than rank 0 only read, after rank 0 has decided)."""
    for path in (checkpoint_path, checkpoint_path.with_name(PREVIOUS_CHECKPOINT)):
        if not path.exists():
            continue
        try:
            state = load_checkpoint(path, map_location=device)
        except (PermissionError, FileNotFoundError):
            raise
        # torch's messages for a truncated archive (OSError: Invalid argument, RuntimeError), an empty file
        # (EOFError), bytes that are no archive (UnpicklingError) or objects weights_only refuses
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
            if keep:
                _set_aside(path, "corrupt", f"cannot be read ({type(err).__name__}: {err})".splitlines()[0])
            continue
        if not isinstance(state, dict) or not {"epoch", "model", "history"} <= set(state):
            if keep:
                _set_aside(path, "corrupt", "is not a training checkpoint")
            continue
        why = _why_not_resumed(state, fingerprint, epochs, lr_factor)
        if why is not None:
            if keep:
                _set_aside(path, "stale", f"{why}; not resumed")
            continue
        return state
    return None


def finish_run(checkpoint_path: Path, last: dict[str, Any] | None) -> None:
    """After ``model.pt`` is written: mark the run's newest checkpoint ``last`` as finished (a rerun of the
    same length then trains from scratch, a longer one may extend it) and remove the previous epoch's."""
    if last is not None:
        atomic_torch_save({**last, "finished": True}, checkpoint_path)
    checkpoint_path.with_name(PREVIOUS_CHECKPOINT).unlink(missing_ok=True)


def history_row(
    epoch: int,
    lr: float,
    train: tuple[float, float],
    val: tuple[float, float],
    seconds: float,
    *,
    echo: bool = True,
) -> dict[str, Any]:
    """One row of ``history.csv`` (:data:`HISTORY_FIELDS`, rounded), printed as it is made (``echo``)."""
    row = dict(
        epoch=epoch,
        lr=lr,
        train_loss=round(train[0], 6),
        train_top1=round(train[1], 3),
        val_loss=round(val[0], 6),
        val_top1=round(val[1], 3),
        seconds=round(seconds, 2),
    )
    if echo:
        print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return row


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_csv(path, HISTORY_FIELDS, history)


class RunFolder:
    """One training run's folder and its checkpoints, for the training loop :func:`fit` (BPTT in
    :func:`train`, local learning in :func:`bidl.colearning.train_local`): it calls :meth:`resume`, then
    per epoch :meth:`save` (or :meth:`failed`), and at the end :meth:`finish`.

    - ``checkpoint.pt`` after every epoch (atomically; the epoch before kept as :data:`PREVIOUS_CHECKPOINT`,
      resumed from when the newest is damaged) with the epoch, the history, the run's ``fingerprint``, the
      learning-rate factors of the epochs so far, the torch RNG state and what the loop adds (model,
      optimizer, ...); ``history.csv`` rewritten with it;
    - at the end ``model.pt``, after which the checkpoint is marked finished (:func:`finish_run`);
    - at the start, the temporaries a killed run left beside them are removed.

    Only the main process writes (``main``); the others read.
    """

    def __init__(
        self,
        out_dir: str | Path,
        fingerprint: dict[str, Any],
        *,
        epochs: int,
        lr_factor: Callable[[int], float],
        main: bool = True,
    ):
        self.out_dir = Path(out_dir)
        self.checkpoint = self.out_dir / "checkpoint.pt"
        self.fingerprint = fingerprint
        self.epochs = epochs
        self.lr_factor = lr_factor
        self.main = main
        self.history: list[dict[str, Any]] = []
        self.last: dict[str, Any] | None = None  # the newest checkpoint's content, marked finished at the end
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for leftover in leftover_temporaries(
                self.out_dir, _RUN_FILES
            ):  # a killed run's half-written files
                leftover.unlink(missing_ok=True)

    def resume(self, device: str | torch.device = "cpu") -> dict[str, Any] | None:
        """The checkpoint this run resumes from (:func:`resumable_state`), its history taken over; None to
        start from epoch 1 (a checkpoint of another run is set aside by the main process)."""
        state = resumable_state(
            self.checkpoint,
            self.fingerprint,
            device,
            keep=self.main,
            epochs=self.epochs,
            lr_factor=self.lr_factor,
        )
        self.last = state
        if state is not None:
            self.history = list(state["history"])
        return state

    @property
    def start_epoch(self) -> int:
        """The number of epochs already done: 0, or the resumed checkpoint's."""
        return int(self.last["epoch"]) if self.last is not None else 0

    def save(self, row: dict[str, Any], **parts: Any) -> None:
        """Record the epoch just finished (its :func:`history_row` ``row``) and write its checkpoint with
        ``parts`` (model, optimizer, ...) and the torch RNG state (main process only)."""
        self.history.append(row)
        if not self.main:
            return
        epoch = int(row["epoch"])
        self.last = dict(
            epoch=epoch,
            history=self.history,
            fingerprint=self.fingerprint,
            epochs=self.epochs,
            lr_factors=[self.lr_factor(e) for e in range(epoch)],
            finished=False,
            rng=torch.get_rng_state(),
            **parts,
        )
        atomic_torch_save(self.last, self.checkpoint, previous=self.checkpoint.with_name(PREVIOUS_CHECKPOINT))
        _write_history(self.out_dir / "history.csv", self.history)

    def finish(self, model: nn.Module) -> None:
        """Write ``history.csv`` (again: a run resumed after its last epoch trained none) and ``model.pt``,
        then mark the checkpoint finished (main process only)."""
        if self.main:
            _write_history(self.out_dir / "history.csv", self.history)
            atomic_torch_save(model.state_dict(), self.out_dir / "model.pt")
            finish_run(self.checkpoint, self.last)

    def failed(self, err: Exception, epoch: int) -> FloatingPointError:
        """The error that stops a run whose epoch ``epoch`` (0-based) diverged: nothing of it is saved, and
        the message says which checkpoint is kept and how to go on."""
        kept = (
            f"the last good checkpoint {self.checkpoint} (after epoch {epoch}) is kept"
            if epoch > 0
            else f"no epoch completed, so there is no checkpoint in {self.out_dir}"
        )
        return FloatingPointError(
            f"{err}. Training stopped; {kept}. Rerunning unchanged repeats the same steps (training is "
            "seeded); a lower recipe.lr, a recipe.grad_clip or recipe.fp16: false is another run "
            "configuration, which trains from epoch 1 (the checkpoint is then kept aside as "
            "checkpoint.stale-<n>.pt)"
        )


def train(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    recipe: Recipe,
    out_dir: str | Path,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    fingerprint: dict[str, Any] | None = None,
    backend: str = "auto",
    augment: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` in IIM for ``recipe.epochs`` epochs and return the per-epoch history.

    Writes into ``out_dir``: ``checkpoint.pt`` after every epoch (model, optimizer, scheduler, loss scaler,
    RNG state and history; atomically), ``history.csv`` (one row per epoch) and, at the end, ``model.pt``
    (the final weights), after which the checkpoint is marked finished and the previous epoch's removed.
    If ``checkpoint.pt`` exists and belongs to this run (:func:`resumable_state`: the same recipe except its
    epoch count, the same seed and the same caller's ``fingerprint`` - model, data digests, initial weights,
    ...; no more epochs than configured; not a finished run of the same length; the same learning-rate
    factors so far), training resumes after its last completed epoch and, being seeded per epoch, follows
    the same trajectory as an uninterrupted run. Any other checkpoint is kept as
    ``checkpoint.stale-<n>.pt`` with a message saying why, and training starts from epoch 1.

    Under ``torchrun`` (``WORLD_SIZE > 1``) it trains data-parallel with DDP over the process group it
    joins (``backend``: ``auto`` = nccl on CUDA, gloo on the CPU): see :mod:`bidl.distributed`. On CUDA
    each process takes the GPU of its local rank.

    ``augment`` (a dataset's ``augment`` mapping, :mod:`bidl.data.augment`) transforms the training samples,
    drawn per (seed, epoch, sample) and so resumable; ``val_set`` and everything after training see the
    cached samples. It is part of the run's identity (when given): a checkpoint trained otherwise is not
    resumed.
    """
    device = torch.device(device)
    here = world()
    if here.distributed and device.type == "cuda":
        device = torch.device("cuda", here.local_rank)
    augmentation = parse_augment(augment)  # an unknown transform or parameter raises before training
    if augmentation is not None:
        train_set = augmentation.wrap(train_set, seed)
        fingerprint = {**(fingerprint or {}), "augment": augmentation.spec}
    with process_group(device, backend):
        return _train(
            model, train_set, val_set, recipe, Path(out_dir), seed, device, num_workers, fingerprint
        )


def _train(model, train_set, val_set, recipe, out_dir, seed, device, num_workers, fingerprint):
    """:func:`train`'s set-up (in the process group): the run folder, the model and its optimisation, the
    epoch step and the validation; then :func:`fit`."""
    here = world()
    parallel = DataParallel(here, seed)
    run = RunFolder(
        out_dir,
        run_identity(recipe, seed, fingerprint),
        epochs=recipe.epochs,
        lr_factor=lambda epoch: lr_factor(recipe, epoch),
        main=here.main,
    )
    seed_everything(seed)
    set_iteration_mode(model, "internal")
    parallel.sync_batchnorm(model.to(device))
    frozen = freeze_except(model, recipe.train_only)
    trains_batchnorm = _trains_batchnorm(model, frozen)
    batch_size = local_batch_size(recipe.batch_size, here)
    precision = MixedPrecision.for_recipe(recipe, device)
    optimizer = make_optimizer(model, recipe)
    scheduler = make_scheduler(optimizer, recipe)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    def epoch_step(trained: nn.Module, epoch: int) -> tuple[float, float]:
        """BPTT over the epoch's batches, the schedule's step, then BatchNorm recalibration."""
        loader = _epoch_loader(train_set, seed, epoch, here, batch_size, num_workers, trains_batchnorm)
        result = run_epoch(
            trained,
            loader,
            device=device,
            criterion=criterion,
            optimizer=optimizer,
            scaler=precision.scaler,
            fp16=precision.enabled,
            grad_clip=recipe.grad_clip,
            desc=f"epoch {epoch + 1}/{recipe.epochs} train",
            frozen=frozen,
        )
        scheduler.step()
        recalibrate_batchnorm(
            model,
            loader,
            batches=recipe.bn_recalibration_batches,
            device=device,
            fp16=precision.enabled,
            frozen=frozen,
        )
        return result

    validate = None
    if val_set is not None:
        val_share = Subset(val_set, shard(range(len(val_set)), here, drop_remainder=False))
        val_loader = DataLoader(val_share, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        validate = partial(
            validate_epoch, model, val_loader, device=device, criterion=criterion, fp16=precision.enabled
        )
    return fit(
        run,
        model,
        epoch_step,
        device=device,
        optimizer=optimizer,
        scheduler=scheduler,
        precision=precision,
        validate=validate,
        parallel=parallel,
        record={"recipe": asdict(recipe)},
    )


def fit(
    run: RunFolder,
    model: nn.Module,
    epoch_step: Callable[[nn.Module, int], tuple[float, float]],
    *,
    device: torch.device,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    precision: MixedPrecision | None = None,
    validate: Callable[[int], tuple[float, float]] | None = None,
    parallel: DataParallel | None = None,
    record: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The checkpointed training loop of every training run (BPTT in :func:`train`, local learning in
    :func:`bidl.colearning.train_local`); returns the run's history.

    1. Resume (:meth:`RunFolder.resume`, rank 0 first): the model, ``optimizer``, ``scheduler`` (whose
       rate continues with ``run.lr_factor`` of the next epoch), loss scale (``precision``) and each
       process's random state; or, starting afresh, each process's own seed (``parallel``).
    2. Per epoch ``e`` (from 0) up to ``run.epochs``: ``epoch_step(trained, e)`` -> (train loss, train
       top-1 %), ``trained`` being the model or its DDP wrapper; the weights checked for NaN and infinity
       (:func:`check_finite_weights`); ``validate(e)`` -> (val loss, val top-1 %), NaN without; the history
       row; the checkpoint (:meth:`RunFolder.save`): ``model``, ``optimizer`` (``{}`` without one),
       ``scheduler`` (with one), ``scaler`` and ``fp16`` (with ``precision``), every process's random
       state ``rng_per_rank``, ``world_size`` and the entries of ``record``.
       A ``FloatingPointError`` of an epoch (a non-finite loss or weight) saves nothing of it and stops the
       run with :meth:`RunFolder.failed`: the last good checkpoint stays.
    3. :meth:`RunFolder.finish`: ``model.pt``, the checkpoint marked finished.

    ``parallel`` (:class:`~bidl.distributed.DataParallel`; one process without) adds the barriers around
    the writes of rank 0.
    """
    if scheduler is not None and optimizer is None:
        raise ValueError("fit: a scheduler was given without the optimizer whose rates it sets")
    parallel = parallel or DataParallel()
    with parallel.main_first():  # rank 0 sets a stale checkpoint aside before the others read
        state = run.resume(device)
    if state is not None:
        _restore(state, model, optimizer, scheduler, precision, parallel)
        if scheduler is not None:
            _continue_schedule(optimizer, scheduler, run.lr_factor(run.start_epoch))
        if parallel.main:
            print(f"resuming from {run.checkpoint} after epoch {run.start_epoch} of {run.epochs}", flush=True)
    else:
        if parallel.main:
            print(f"no checkpoint of this run in {run.out_dir}: training from epoch 1", flush=True)
        parallel.seed_ranks()
    trained = parallel.wrap(model, device)
    for epoch in range(run.start_epoch, run.epochs):
        began = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"] if optimizer is not None else float("nan")
        try:
            train_result = epoch_step(trained, epoch)
            check_finite_weights(model, epoch)
            val_result = validate(epoch) if validate is not None else (float("nan"), float("nan"))
        except FloatingPointError as err:  # nothing of this epoch is saved
            raise run.failed(err, epoch) from None
        seconds = time.perf_counter() - began
        row = history_row(epoch + 1, lr, train_result, val_result, seconds, echo=parallel.main)
        parts: dict[str, Any] = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else {},
        }
        if scheduler is not None:
            parts["scheduler"] = scheduler.state_dict()
        if precision is not None:
            parts.update(scaler=precision.state_dict(), fp16=precision.enabled)
        run.save(
            row, **parts, rng_per_rank=parallel.rng_states(), world_size=parallel.here.size, **(record or {})
        )
        parallel.barrier()
    run.finish(model)
    parallel.barrier()
    return run.history


def _restore(
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    precision: MixedPrecision | None,
    parallel: DataParallel,
) -> None:
    """Load a checkpoint ``state`` into the run's parts (those given) and this process's random state."""
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if precision is not None:
        precision.load_state_dict(state.get("scaler"))
    parallel.restore_rng(state)


def _continue_schedule(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, factor: float
) -> None:
    """Set every group's rate to its base rate times ``factor``, the schedule's factor of the next epoch:
    a run extended past its old length continues with the rate a run of the new length has there, not
    with the old run's last one."""
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
        group["lr"] = base * factor
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
