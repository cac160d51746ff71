r"""Data-parallel training on several processes, GPUs and nodes (PyTorch DDP), launched by ``torchrun``.

:func:`bidl.training.train` runs data-parallel when it finds itself in a ``torchrun`` process group
(``WORLD_SIZE > 1``): every process builds the same model, DDP averages the gradients, and the global
batch (``recipe.batch_size``) is split evenly over the processes, so that training takes the same steps
as one process with that batch:

- **Sampler.** Each epoch's sample order is the single-process order (a function of seed and epoch);
  process ``r`` of ``W`` takes every ``W``-th sample from ``r`` (:func:`shard`). Its ``k``-th batch of
  ``B / W`` samples is then exactly its share of global batch ``k``, and the mean of the processes' mean
  losses is the global batch's mean loss. An epoch drops its last ``len % W`` samples (a different few each
  epoch) so that every process takes the same number of steps.
- **BatchNorm** statistics are taken over the global batch (:class:`SyncBatchNorm`, which, unlike
  PyTorch's, also runs on the CPU with the gloo backend), as in one process.
- **Rank 0** writes checkpoints, ``history.csv`` and ``model.pt``; the others wait at a barrier
  (:class:`DataParallel`, which the training loop :func:`bidl.training.fit` calls for every step that
  differs between one process and several). Losses
  and accuracies are summed over the processes. A run resumes from the checkpoint on every process, as a
  single process does, and a checkpoint of a distributed run resumes in one process and vice versa (the
  weights are saved without DDP's ``module.`` prefix).

Launching: ``torchrun --nproc-per-node 2 scripts/train.py ...``, or the pipeline's ``distributed`` config
section, with which the ``train`` rule starts ``torchrun`` itself (:func:`torchrun_command`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .errors import ConfigError

__all__ = [
    "World",
    "DistributedSettings",
    "world",
    "process_group",
    "shard",
    "SyncBatchNorm",
    "convert_sync_batchnorm",
    "all_sum",
    "all_gather_rng_states",
    "barrier",
    "DataParallel",
    "local_batch_size",
    "torchrun_command",
]

BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0


def world() -> World:
    """The world ``torchrun`` set up (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); one process otherwise."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ConfigError(f"WORLD_SIZE / RANK / LOCAL_RANK: expected integers ({err})") from None
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(f"RANK {rank} / WORLD_SIZE {size}: expected 0 <= RANK < WORLD_SIZE")
    return World(rank, size, local_rank)


def _backend(name: str, device: torch.device) -> str:
    if name not in BACKENDS:
        raise ConfigError(f"distributed.backend: unknown {name!r}; choose one of {BACKENDS}")
    if name == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    return name


@contextmanager
def process_group(device: torch.device, backend: str = "auto") -> Iterator[World]:
    """Join ``torchrun``'s process group for the block (and leave it after) where ``WORLD_SIZE > 1``;
    a no-op in one process, or where the caller already initialised one. Yields :func:`world`."""
    here = world()
    if not here.distributed or dist.is_initialized():
        yield here
        return
    if device.type == "cuda":
        torch.cuda.set_device(here.local_rank)
    dist.init_process_group(_backend(backend, device))
    try:
        yield here
    finally:
        dist.destroy_process_group()


def shard(order: Sequence[int], here: World, *, drop_remainder: bool = True) -> list[int]:
    """Process ``here.rank``'s share of an epoch's sample ``order``: every ``size``-th sample from its
    rank, after dropping the last ``len(order) % size`` (``drop_remainder``: training, where every process
    must take the same steps; evaluation keeps them). With a per-process batch of ``B / size``, its
    ``k``-th batch is its part of the ``k``-th batch of ``B`` of ``order``.

    Example:
        >>> shard(list(range(10)), World(rank=1, size=4))  # the first 8 split: 1, 5
        [1, 5]
        >>> shard(list(range(10)), World(rank=1, size=4), drop_remainder=False)
        [1, 5, 9]
    """
    usable = len(order) - len(order) % here.size if drop_remainder else len(order)
    return list(order[here.rank : usable : here.size])


def local_batch_size(batch_size: int, here: World, where: str = "recipe.batch_size") -> int:
    """The per-process batch of a global ``batch_size``; ``ConfigError`` where it does not divide."""
    if batch_size % here.size:
        raise ConfigError(
            f"{where}: the global batch {batch_size} does not split evenly over {here.size} processes"
        )
    return batch_size // here.size


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every process (nothing in one process)."""
    if is_active():
        dist.barrier()


def all_sum(values: Sequence[float]) -> list[float]:
    """``values`` summed over the processes (float64; as given in one process)."""
    if not is_active():
        return [float(v) for v in values]
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def all_gather_rng_states() -> list[Tensor]:
    """Every process's CPU random-number state, in rank order (this process's alone in one process)."""
    state = torch.get_rng_state()
    if not is_active():
        return [state]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


class _SumOverProcesses(torch.autograd.Function):
    """``all_reduce(SUM)`` with its gradient: the gradient of a sum over the processes, summed back."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # noqa: D102
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: D102
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, in two passes as one process
    computes them: the per-process sums of ``x`` and the counts give the mean, then the sums of
    ``(x - mean)^2`` the variance (one pass, ``E[x^2] - mean^2``, loses digits where the mean is large
    against the spread, enough to move membranes across a threshold). The sums are taken over the process
    group with their gradient, so the gradient is the single-process one too. Runs on any device and
    backend (gloo on the CPU included); in eval mode, or in one process, it is the plain BatchNorm. Any
    input of ``[N, C, ...]``."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"SyncBatchNorm: expected at least 2-D input [N, C, ...], got {input.dim()}-D")

    def forward(self, input: Tensor) -> Tensor:  # noqa: D102
        self._check_input_dim(input)
        if not (self.training and is_active()):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, input.shape[1]] + [1] * (input.dim() - 2)
        count = torch.full(
            (1,), float(input.numel() // input.shape[1]), dtype=input.dtype, device=input.device
        )
        sums = _SumOverProcesses.apply(torch.cat([input.sum(dims), count]))
        n = sums[-1]
        mean = sums[:-1] / n
        centred = input - mean.reshape(shape)
        var = _SumOverProcesses.apply((centred * centred).sum(dims)) / n  # biased: what normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (n / (n - 1)) if float(n) > 1 else var
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.detach(), alpha=factor)
        out = centred * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm (1-D, 2-D, 3-D) in ``module`` by a :class:`SyncBatchNorm` with the same
    parameters, buffers and settings (the state-dict keys stay the same); returns the module."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, SyncBatchNorm):
        converted = SyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        like = module.weight if module.affine else module.running_mean  # device and float type to keep
        if like is not None:
            converted.to(device=like.device, dtype=like.dtype)
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        if module.affine:
            converted.weight.requires_grad_(module.weight.requires_grad)
            converted.bias.requires_grad_(module.bias.requires_grad)
        return converted
    for name, child in module.named_children():
        new = convert_sync_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module


@dataclass(frozen=True)
class DataParallel:
    """What data-parallel training adds to a training loop, for the process ``here`` of a run seeded with
    ``seed``: BatchNorm over the global batch, the DDP wrapper, rank 0 deciding first, the barriers and each
    process's own random numbers. In one process (the default ``World()``) every step is a no-op or returns
    its input, so a loop calls the same steps either way."""

    here: World = World()
    seed: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files (rank 0)."""
        return self.here.main

    def sync_batchnorm(self, model: nn.Module) -> nn.Module:
        """``model`` with its BatchNorms converted to :class:`SyncBatchNorm` (statistics of the global batch,
        as in one process) when distributed; returns the module (:func:`convert_sync_batchnorm`)."""
        return convert_sync_batchnorm(model) if self.here.distributed else model

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module that trains: ``model`` in DDP's wrapper when distributed (it averages the gradients and
        starts every process from rank 0's weights), ``model`` itself otherwise. Save ``model``, not the
        wrapper: its state-dict keys have no ``module.`` prefix."""
        if not self.here.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the block on rank 0 first and on the other processes after it has finished: rank 0 decides
        and writes (e.g. sets a stale checkpoint aside), the others then read what it left."""
        if not self.here.main:
            barrier()
        yield
        if self.here.main:
            barrier()

    def barrier(self) -> None:
        """Wait for every process (:func:`barrier`)."""
        barrier()

    def seed_ranks(self) -> None:
        """For a run that starts afresh, after the model is built (the same weights everywhere): seed
        process ``r``'s torch generator with ``seed + r``, so that each process draws its own noise. Nothing
        in one process."""
        if self.here.distributed:
            torch.manual_seed(self.seed + self.here.rank)

    def rng_states(self) -> list[Tensor]:
        """Every process's torch CPU random state, in rank order (:func:`all_gather_rng_states`)."""
        return all_gather_rng_states()

    def restore_rng(self, state: dict[str, Any]) -> None:
        """Set this process's torch CPU random state from a checkpoint ``state``: its own entry of
        ``rng_per_rank`` when the checkpoint was written by as many processes as run now, the saved ``rng``
        (rank 0's) otherwise. A checkpoint without either leaves the state unchanged."""
        rngs = state.get("rng_per_rank") or ([state["rng"]] if "rng" in state else [])
        if not rngs:
            return
        own = rngs[self.here.rank] if len(rngs) == self.here.size else state.get("rng", rngs[0])
        torch.set_rng_state(own)


LAUNCHERS = ("local", "srun")
RDZV_PORT = 29500


@dataclass(frozen=True)
class DistributedSettings:
    """The config's ``distributed`` section: how the ``train`` rule launches training.

    ``nproc_per_node`` processes on each of ``nnodes`` nodes (one per GPU on a GPU node); ``backend``
    ``auto`` (nccl on GPUs, gloo on CPUs), ``gloo`` or ``nccl``. ``launcher``: ``local`` runs torchrun
    here (for ``nnodes > 1`` the same job must be started on every node, meeting at ``rdzv_endpoint``,
    ``host:port``); ``srun`` runs one torchrun per node of the SLURM allocation the job holds, meeting at
    its first node."""

    nproc_per_node: int = 1
    nnodes: int = 1
    backend: str = "auto"
    launcher: str = "local"
    rdzv_endpoint: str | None = None

    @classmethod
    def from_mapping(cls, section: dict[str, Any] | None) -> DistributedSettings:
        section = dict(section or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"distributed: unknown key(s) {unknown}; known: {sorted(known)}")
        settings = cls(**section)
        for key in ("nproc_per_node", "nnodes"):
            value = getattr(settings, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"distributed.{key}: expected an integer >= 1, got {value!r}")
        if settings.backend not in BACKENDS:
            raise ConfigError(f"distributed.backend: unknown {settings.backend!r}; choose one of {BACKENDS}")
        if settings.launcher not in LAUNCHERS:
            raise ConfigError(
                f"distributed.launcher: unknown {settings.launcher!r}; choose one of {LAUNCHERS}"
            )
        if settings.nnodes > 1 and settings.launcher == "local" and not settings.rdzv_endpoint:
            raise ConfigError(
                "distributed.rdzv_endpoint: needed (host:port) when nnodes > 1 with launcher local"
            )
        return settings

    @property
    def processes(self) -> int:
        return self.nproc_per_node * self.nnodes

    @property
    def launches(self) -> bool:
        """Whether training runs under ``torchrun`` (more than one process)."""
        return self.processes > 1


def slurm_head_node(environ: dict[str, str] | None = None) -> str:
    """The first node of the SLURM allocation this job holds (``scontrol show hostnames``)."""
    import subprocess

    environ = dict(os.environ if environ is None else environ)
    nodelist = environ.get("SLURM_JOB_NODELIST")
    if not nodelist:
        raise ConfigError(
            "distributed.launcher: srun needs a SLURM allocation (SLURM_JOB_NODELIST is not set): run the "
            "pipeline with the slurm profile, or use launcher local"
        )
    result = subprocess.run(
        ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
    )
    return result.stdout.split()[0]


def torchrun_command(
    settings: DistributedSettings,
    script: str,
    arguments: Sequence[str],
    *,
    head_node: str | None = None,
    job_id: str = "bidl",
) -> list[str]:
    """The argument vector that runs ``script arguments`` under ``torchrun`` (``python -m
    torch.distributed.run``, the same interpreter), prefixed by ``srun --overlap`` for the srun launcher
    (one torchrun per node, a step that shares the CPUs of the step it is started from): a list, never a
    shell string. ``head_node`` (srun, several nodes): the rendezvous host
    (:func:`slurm_head_node`); ``job_id`` names the rendezvous."""
    import sys

    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={settings.nproc_per_node}"]
    if settings.nnodes == 1:
        torchrun.append("--standalone")
    else:
        endpoint = settings.rdzv_endpoint
        if settings.launcher == "srun":
            if head_node is None:
                raise ConfigError("distributed: the srun launcher on several nodes needs the head node")
            endpoint = f"{head_node}:{RDZV_PORT}"
        torchrun += [
            f"--nnodes={settings.nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}",
            f"--rdzv-id={job_id}",
        ]
    prefix = []
    if settings.launcher == "srun":
        # --overlap: the job's command may itself run in a step holding the allocation's CPUs (the slurm
        # executor plugin starts every job with srun), which a new step would otherwise wait for forever
        prefix = [
            "srun",
            "--overlap",
            f"--nodes={settings.nnodes}",
            "--ntasks-per-node=1",
            "--kill-on-bad-exit=1",
        ]
    return [*prefix, *torchrun, script, *arguments]
