r"""Fused multi-step LIF / LIAF kernels behind :func:`bidl.functional.lif_multi_step`.

The reference step loop (:func:`bidl.functional.lif_multi_step_reference`) is the specification; a fused
kernel computes the same thing in one pass over T per neuron, forward and backward, and saves the least
the backward pass needs (the reference's autograd graph keeps about ten tensors per step): the CPU kernel
nothing but its input, from which the backward pass recomputes the membranes; the Triton kernel the
pre-fire membrane ``U``. Implementations:

- ``cpu`` (:mod:`.cpu`): numba, float32 and float64, parallel over neurons with the time loop inside;
  no compiler toolchain beyond the numba wheel.
- ``triton`` (:mod:`.triton`): the same contract on a CUDA device when Triton is installed.
- ``cpu`` with BatchNorm on the membrane (``norm``) and / or training noise (``noise > 0``)
  (:mod:`.cpu_norm`): a job per channel with the time loop inside: the step statistics, the running
  statistics' updates and the noise as the reference computes them, up to rounding (float64 sums in the
  kernel's own order); the normal numbers are drawn with torch in the reference's order, so that one seed
  gives one result. It saves the integrated membranes and the noise it added (each as large as the input)
  and the per-step affine (``[T, C]``).

:func:`lif_multi_step` (re-exported from :mod:`bidl.functional`) uses a fused kernel where one applies —
no inference built-ins (the exporter traces the reference), a surrogate and an activation of bidl's own,
float32 / float64 on the CPU or a CUDA tensor with Triton — and the reference loop otherwise. With a
``norm`` or ``noise > 0`` the fused kernel runs on the CPU only; the reference loop runs for:

- a ``norm`` other than ``nn.BatchNorm1d`` / ``2d`` / ``3d`` themselves (subclasses such as a synchronised
  BatchNorm, any other callable), one with hooks, one whose dims or ``num_features`` do not fit the state
  (the reference raises), or whose parameters and buffers are not CPU tensors of the input's dtype;
- BatchNorm without running statistics (``track_running_stats=False``) or with ``momentum=None``;
- BatchNorm in train mode with one value per channel (``B * prod(S) == 1``; torch raises);
- neuron parameters that vary within a channel (bidl's neurons hold one per layer or one per channel);
- CUDA tensors (the Triton kernel has no BatchNorm or noise), dtypes other than float32 / float64, a
  state of fewer than two dims, and an input that is neither time-first contiguous nor the time-first view
  of a contiguous batch-first tensor.

:func:`neuron_kernel` chooses the path for a block of code (``"fused"`` or ``"reference"``); the
environment variable ``BIDL_NEURON_KERNEL`` sets the default.

Example:
    >>> import torch
    >>> from bidl.functional import lif_multi_step, lif_multi_step_reference, neuron_kernel
    >>> x = torch.rand(8, 2, 5)
    >>> torch.equal(lif_multi_step(x, alpha=0.5)[0], lif_multi_step_reference(x, alpha=0.5)[0])
    True
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import Tensor, nn

from ..lif import ACTIVATIONS, lif_step
from ..surrogate import _BUILDERS as _SURROGATE_BUILDERS
from .buffers import OUTPUT_POOL, release_buffers

__all__ = [
    "NEURON_KERNELS",
    "neuron_kernel",
    "default_neuron_kernel",
    "fused_kernel_for",
    "lif_multi_step_fused",
    "release_buffers",
]

NEURON_KERNELS = ("fused", "reference")
_ENV = "BIDL_NEURON_KERNEL"
_CHOICE: ContextVar[str | None] = ContextVar("bidl_neuron_kernel", default=None)


# the kernels' integer codes (:mod:`.cpu`, :mod:`.triton`) of bidl's activations and surrogates
_ACTIVATION_IDS = {"relu": 0, "sigmoid": 1, "tanh": 2, "identity": 3}
_SURROGATE_IDS = {"rectangle": 0, "sigmoid": 1, "arctan": 2}
_ACTIVATIONS = {fn: name for name, fn in ACTIVATIONS.items()}  # function -> name


def _default_scale(fn: Callable, key: str) -> float:
    return float(inspect.signature(fn).parameters[key].default)


# surrogate function -> (name, default scale), from bidl.functional.surrogate's own signatures
_SURROGATES = {fn: (name, _default_scale(fn, key)) for name, (fn, key) in _SURROGATE_BUILDERS.items()}
# lif_step's keyword arguments and their defaults: what lif_multi_step_fused accepts
_STEP_DEFAULTS = {
    name: p.default for name, p in inspect.signature(lif_step).parameters.items() if p.kind is p.KEYWORD_ONLY
}


def default_neuron_kernel() -> str:
    """The path :func:`lif_multi_step` takes where a fused kernel applies: the innermost
    :func:`neuron_kernel`, else ``$BIDL_NEURON_KERNEL``, else ``"fused"``."""
    chosen = _CHOICE.get()
    if chosen is not None:
        return chosen
    env = os.environ.get(_ENV, "fused")
    if env not in NEURON_KERNELS:
        raise ValueError(f"{_ENV}: unknown neuron kernel {env!r}; choose one of {NEURON_KERNELS}")
    return env


@contextmanager
def neuron_kernel(name: str) -> Iterator[None]:
    """Run the multi-step neurons inside the block on the ``"fused"`` kernels or the ``"reference"`` loop."""
    if name not in NEURON_KERNELS:
        raise ValueError(f"neuron kernel: unknown {name!r}; choose one of {NEURON_KERNELS}")
    token = _CHOICE.set(name)
    try:
        yield
    finally:
        _CHOICE.reset(token)


def _surrogate_spec(spike_fn: Callable) -> tuple[str, float] | None:
    """``(name, scale)`` of a bidl surrogate (or a ``functools.partial`` of one setting its scale)."""
    scale = None
    if isinstance(spike_fn, functools.partial):
        if spike_fn.args or len(spike_fn.keywords) != 1:
            return None
        (scale,) = spike_fn.keywords.values()
        spike_fn = spike_fn.func
    spec = _SURROGATES.get(spike_fn)
    if spec is None:
        return None
    return spec[0], float(spec[1] if scale is None else scale)


@functools.cache
def _cpu_kernels():
    """The numba kernels, or None where numba cannot be imported (the reference loop is used then)."""
    try:
        from . import cpu
    except ImportError:
        return None
    return cpu


@functools.cache
def _triton_kernels():
    try:
        from . import triton as triton_kernels
    except ImportError:
        return None
    return triton_kernels if triton_kernels.available() else None


def _step_arguments(step_kwargs: dict[str, Any]) -> dict[str, Any]:
    """:func:`lif_step`'s keyword arguments, its defaults filled in; ``TypeError`` naming an unknown one."""
    unknown = sorted(set(step_kwargs) - set(_STEP_DEFAULTS))
    if unknown:
        raise TypeError(f"lif_step: unknown keyword argument(s) {unknown}; it takes {sorted(_STEP_DEFAULTS)}")
    return {**_STEP_DEFAULTS, **step_kwargs}


def fused_kernel_for(x_seq: Tensor, **step_kwargs: Any) -> str | None:
    """The fused implementation (``"cpu"`` / ``"triton"``) that would run :func:`lif_multi_step` with these
    arguments, or ``None`` where the reference loop runs (and why is one of: inference built-ins, an
    unknown surrogate or activation, the dtype or the device, a norm or noise the fused kernel does not
    reproduce: see the module's docstring)."""
    from ..lif import active_builtins

    args = _step_arguments(step_kwargs)
    if default_neuron_kernel() != "fused" or active_builtins() is not None:
        return None
    if _surrogate_spec(args["spike_fn"]) is None:
        return None
    if args["analog"] and args["activation"] not in _ACTIVATIONS:
        return None
    if x_seq.dim() < 2 or x_seq.shape[0] == 0 or x_seq[0].numel() == 0:
        return None
    if args["norm"] is not None or args["noise"] > 0:
        return "cpu" if _norm_plan(x_seq, args) is not None else None
    if x_seq.device.type == "cpu":
        ok = x_seq.dtype in (torch.float32, torch.float64) and _cpu_kernels() is not None
        return "cpu" if ok else None
    if x_seq.device.type == "cuda" and x_seq.dtype in (torch.float32, torch.float16, torch.bfloat16):
        return "triton" if _triton_kernels() is not None else None
    return None


# -- layout ------------------------------------------------------------------------------------------------
def _layout(x_seq: Tensor) -> tuple[Tensor, int, int, int, int, int] | None:
    """``(flat, P, T, M, sp, st)`` addressing ``x_seq [T, *S]`` as ``[P, T, M]`` without a copy, or None.

    A contiguous time-first tensor is ``P = 1``; the time-first view of a contiguous batch-first tensor
    (``x.transpose(0, 1)``) is ``P = S[0]``. ``flat`` is the 1-D view of the underlying block."""
    T = x_seq.shape[0]
    state = x_seq.shape[1:]
    if x_seq.is_contiguous():
        M = x_seq[0].numel()
        return x_seq.reshape(-1), 1, T, M, 0, M
    if x_seq.dim() >= 2 and x_seq.transpose(0, 1).is_contiguous():
        P = state[0]
        M = x_seq[0].numel() // P if P else 0
        return x_seq.transpose(0, 1).reshape(-1), P, T, M, T * M, M
    return None


def _like(x_seq: Tensor, P: int) -> tuple[Tensor, Tensor]:
    """A new tensor shaped like ``x_seq`` with the same layout (time-first for ``P == 1``, else the
    time-first view of a batch-first block), and its flat view; on the CPU from :data:`OUTPUT_POOL`."""
    time_first = P == 1 and x_seq.is_contiguous()
    shape = x_seq.shape if time_first else x_seq.transpose(0, 1).shape
    if x_seq.device.type == "cpu":
        block = OUTPUT_POOL.empty(shape, x_seq.dtype)
    else:
        block = torch.empty(shape, dtype=x_seq.dtype, device=x_seq.device)
    return (block if time_first else block.transpose(0, 1)), block.view(-1)


def _state_like(shape: torch.Size, like: Tensor) -> Tensor:
    """A new contiguous tensor of ``shape`` in ``like``'s dtype and device; on the CPU from
    :data:`OUTPUT_POOL` (states and per-element parameters are large enough that fresh pages cost time)."""
    if like.device.type == "cpu":
        return OUTPUT_POOL.empty(shape, like.dtype)
    return torch.empty(shape, dtype=like.dtype, device=like.device)


def _per_element(p: Tensor | float, shape: torch.Size, like: Tensor) -> Tensor:
    """A neuron parameter (scalar, ``[]`` or broadcastable per-channel tensor) as a contiguous flat array."""
    p = torch.as_tensor(p, dtype=like.dtype, device=like.device)
    return _state_like(shape, like).copy_(p.detach().expand(shape)).reshape(-1)


class _FusedLIF(torch.autograd.Function):
    """Autograd wrapper of a fused kernel: inputs ``x_seq [T, *S]``, ``v0 [*S]`` and the four parameters
    (broadcastable to ``S``); outputs ``y [T, *S]`` and ``v_T [*S]``."""

    @staticmethod
    def forward(ctx, x_seq, v0, alpha, beta, theta, v_reset, config):  # noqa: D102
        layout = _layout(x_seq)
        if layout is None:  # an unusual stride pattern: one copy into the time-first layout
            x_seq = x_seq.contiguous()
            layout = _layout(x_seq)
        flat, P, T, M, sp, st = layout
        state_shape = x_seq.shape[1:]
        # the per-element state index runs p * M + m: batch-first order for P > 1, which is S's own order
        params = [_per_element(p, state_shape, x_seq) for p in (alpha, beta, theta, v_reset)]
        v0_flat = _per_element(v0, state_shape, x_seq)
        y, y_flat = _like(x_seq, P)
        # the CPU kernel saves nothing but its input and recomputes the membranes in the backward pass; the
        # Triton kernel writes them out (``saves_membrane``)
        u, u_flat = _like(x_seq, P) if config.implementation.saves_membrane else (None, None)
        v_last = _state_like(state_shape, x_seq)
        config.implementation.forward(
            flat.detach(), v0_flat, *params, y_flat, u_flat, v_last.view(-1), P, T, M, sp, st, config
        )
        ctx.save_for_backward(x_seq if u is None else u, v0_flat, *params)
        ctx.layout = (P, T, M, sp, st)
        ctx.config = config
        ctx.param_shapes = [torch.as_tensor(p).shape for p in (alpha, beta, theta, v_reset)]
        ctx.v0_shape = v0.shape
        return y, v_last

    @staticmethod
    def backward(ctx, grad_y, grad_v_last):  # noqa: D102
        saved, v0_flat, *params = ctx.saved_tensors  # saved: x_seq (CPU) or U (Triton), laid out alike
        P, T, M, sp, st = ctx.layout
        state_shape = saved.shape[1:]
        if (
            grad_y.stride() != saved.stride() or grad_y.dtype != saved.dtype
        ):  # e.g. the expanded grad of a sum
            grad_y = _like(saved, P)[0].copy_(grad_y)
        gy_flat = _layout(grad_y)[0]
        grad_x, gx_flat = _like(saved, P)
        gvl = _per_element(grad_v_last, state_shape, saved)
        grad_v0 = _state_like(state_shape, saved)
        param_grads = [_state_like(state_shape, saved) for _ in range(4)]
        ctx.config.implementation.backward(
            gy_flat, _layout(saved)[0].detach(), v0_flat, gvl, *params, gx_flat, grad_v0.view(-1),
            *(g.view(-1) for g in param_grads), P, T, M, sp, st, ctx.config,
        )  # fmt: skip
        needs = ctx.needs_input_grad
        out_param_grads = [
            g.sum_to_size(shape) if needs[2 + k] else None
            for k, (g, shape) in enumerate(zip(param_grads, ctx.param_shapes, strict=True))
        ]
        grad_v0_out = grad_v0.sum_to_size(ctx.v0_shape) if needs[1] else None
        return grad_x, grad_v0_out, *out_param_grads, None


class _Config:
    """What a kernel call needs besides tensors: the implementation and the mode flags."""

    __slots__ = ("implementation", "soft", "analog", "act", "post", "tr", "surrogate", "scale")

    def __init__(self, implementation, *, reset, analog, activation, liaf_mode, liaf_readout, spike_fn):
        self.implementation = implementation
        self.soft = int(reset == "soft")
        self.analog = int(bool(analog))
        self.act = _ACTIVATION_IDS[_ACTIVATIONS[activation]] if analog else 0
        self.post = int(analog and liaf_readout == "post_leak")
        self.tr = int(analog and liaf_mode == "TR")
        name, self.scale = _surrogate_spec(spike_fn)
        self.surrogate = _SURROGATE_IDS[name]


class _CpuImplementation:
    """Adapts torch tensors to the numba kernels of :mod:`.cpu` (zero-copy numpy views)."""

    @staticmethod
    def _threads() -> None:
        import numba

        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))

    saves_membrane = False

    @classmethod
    def forward(cls, x, v0, alpha, beta, theta, v_reset, y, u, v_last, P, T, M, sp, st, config):
        del u  # nothing saved: the backward pass recomputes the membranes from x
        cpu = _cpu_kernels()
        cls._threads()
        flags = (config.soft, config.analog, config.act, config.post, config.tr)
        cpu.forward_kernel(*flags)(
            _arrays(x, y), _arrays(v0, v_last), _arrays(alpha, beta, theta, v_reset), (P, T, M, sp, st),
            flags, cpu.constants(_numpy_dtype(x), config.scale),
        )  # fmt: skip

    @classmethod
    def backward(cls, gy, x, v0, gvl, alpha, beta, theta, v_reset, gx, gv0, ga, gb, gth, gvr, P, T, M, sp, st,
                 config):  # fmt: skip
        cpu = _cpu_kernels()
        cls._threads()
        flags = (config.soft, config.analog, config.act, config.post, config.tr, config.surrogate)
        cpu.backward_kernel(config.soft, config.analog, config.surrogate, config.act, config.post, config.tr)(
            _arrays(gy, x, gx), _arrays(v0, gvl, gv0, ga, gb, gth, gvr), _arrays(alpha, beta, theta, v_reset),
            (P, T, M, sp, st), flags, cpu.constants(_numpy_dtype(x), config.scale),
        )  # fmt: skip


def _arrays(*tensors: Tensor) -> tuple:
    return tuple(t.numpy() for t in tensors)


def _numpy_dtype(t: Tensor):
    import numpy as np

    return np.float32 if t.dtype == torch.float32 else np.float64


def lif_multi_step_fused(
    x_seq: Tensor, v0: Tensor | None = None, **step_kwargs: Any
) -> tuple[Tensor, Tensor]:
    """The fused kernel's :func:`~bidl.functional.lif_multi_step_reference`: the same arguments
    (:func:`~bidl.functional.lif_step`'s keywords) and results (``(y [T, B, ...], v_T [B, ...])``).
    Raises ``ValueError`` where no fused kernel applies."""
    kind = fused_kernel_for(x_seq, **step_kwargs)
    if kind is None:
        raise ValueError(
            "lif_multi_step_fused: no fused kernel for these arguments (norm, noise, surrogate, activation, "
            f"dtype {x_seq.dtype} or device {x_seq.device}); use lif_multi_step, which falls back to the loop"
        )
    args = _step_arguments(step_kwargs)
    implementation = _CpuImplementation if kind == "cpu" else _triton_kernels().Implementation
    config = _Config(
        implementation, reset=args["reset"], analog=args["analog"], activation=args["activation"],
        liaf_mode=args["liaf_mode"], liaf_readout=args["liaf_readout"], spike_fn=args["spike_fn"],
    )  # fmt: skip
    if v0 is None:
        v0 = torch.zeros((), dtype=x_seq.dtype, device=x_seq.device)
    params = (args["alpha"], args["beta"], args["theta"], args["v_reset"])
    if args["norm"] is not None or args["noise"] > 0:  # only on the CPU (fused_kernel_for)
        return _lif_multi_step_norm(x_seq, v0, params, args, config)
    return _FusedLIF.apply(x_seq, v0, *params, config)


# -- BatchNorm on the membrane and training noise (:mod:`.cpu_norm`) ----------------------------------------
_BATCH_NORM_STATE_DIMS = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}


@functools.cache
def _cpu_norm_kernels():
    """The numba kernels of :mod:`.cpu_norm`, or None where numba cannot be imported."""
    try:
        from . import cpu_norm
    except ImportError:
        return None
    return cpu_norm


def _has_hooks(module: nn.Module) -> bool:
    from torch.nn.modules import module as module_globals

    own = (
        module._forward_hooks,
        module._forward_pre_hooks,
        module._backward_hooks,
        module._backward_pre_hooks,
    )
    shared = (
        module_globals._global_forward_hooks, module_globals._global_forward_pre_hooks,
        module_globals._global_backward_hooks, module_globals._global_backward_pre_hooks,
    )  # fmt: skip
    return any(len(hooks) for hooks in (*own, *shared))


def _per_channel(p: Tensor | float, state_shape: torch.Size, like: Tensor) -> Tensor | None:
    """A neuron parameter as one value per channel ``[C]`` (a scalar: C copies), or None where it varies
    over the batch or the spatial dims (the norm kernel holds one value per channel)."""
    t = torch.as_tensor(p, dtype=like.dtype, device=like.device).detach()
    try:
        expanded = t.expand(state_shape)
    except RuntimeError:
        return None
    if any(stride != 0 for dim, stride in enumerate(expanded.stride()) if dim != 1 and state_shape[dim] > 1):
        return None
    return expanded[(0, slice(None), *([0] * (len(state_shape) - 2)))].contiguous()


class _NormPlan:
    """How :mod:`.cpu_norm` runs one call: its modes and the BatchNorm's scalars."""

    __slots__ = ("norm_mode", "noise_mode", "eps", "momentum", "noise")

    def __init__(self, norm_mode: int, noise_mode: int, eps: float, momentum: float, noise: float):
        self.norm_mode, self.noise_mode = norm_mode, noise_mode
        self.eps, self.momentum, self.noise = eps, momentum, noise


def _norm_plan(x_seq: Tensor, args: dict[str, Any]) -> _NormPlan | None:
    """The plan of the fused kernel for ``args``' norm and noise on ``x_seq [T, B, C, *S]``, or None where
    the reference loop runs (the module docstring lists when)."""
    norm, noise = args["norm"], float(args["noise"])
    if x_seq.device.type != "cpu" or x_seq.dtype not in (torch.float32, torch.float64):
        return None
    if x_seq.dim() < 3 or _layout(x_seq) is None or _cpu_norm_kernels() is None:
        return None
    state = x_seq.shape[1:]
    B, C, S = state[0], state[1], state[2:].numel()
    params = (args["alpha"], args["beta"], args["theta"], args["v_reset"])
    if any(_per_channel(p, state, x_seq) is None for p in params):
        return None
    norm_mode, eps, momentum = 0, 0.0, 0.0
    if norm is not None:
        dims = _BATCH_NORM_STATE_DIMS.get(type(norm))
        if dims is None or len(state) not in dims or norm.num_features != C or _has_hooks(norm):
            return None
        if not norm.track_running_stats or norm.running_mean is None or norm.running_var is None:
            return None
        if norm.momentum is None:
            return None
        tensors = [norm.running_mean, norm.running_var] + ([norm.weight, norm.bias] if norm.affine else [])
        if any(t is None or t.device.type != "cpu" or t.dtype != x_seq.dtype for t in tensors):
            return None
        if norm.training and B * S == 1:  # torch raises: one value per channel
            return None
        norm_mode = 1 if norm.training else 2
        eps, momentum = float(norm.eps), float(norm.momentum)
    # lif.add_training_noise: the std over the spatial dims per (sample, channel), or over the features
    noise_mode = 0 if noise <= 0 else 1 if len(state) > 2 else 2
    return _NormPlan(norm_mode, noise_mode, eps, momentum, noise)


def _normal_draws(shape: torch.Size, T: int, dtype: torch.dtype) -> Tensor:
    """``[T, *shape]`` standard normal numbers, one draw of ``shape`` per step in step order: the numbers of
    the reference's ``randn_like`` at every step (one draw of ``[T, *shape]`` gives other numbers)."""
    draws = torch.empty((T, *shape), dtype=dtype)
    for step in draws:
        step.normal_()
    return draws


class _FusedNormLIF(torch.autograd.Function):
    """Autograd wrapper of :mod:`.cpu_norm`: inputs ``x_seq [T, *S]``, ``v0``, the four neuron parameters
    (one value per channel at most), the BatchNorm's weight and bias (None without an affine BatchNorm);
    outputs ``y [T, *S]``, ``v_T``."""

    @staticmethod
    def forward(ctx, x_seq, v0, alpha, beta, theta, v_reset, weight, bias, norm, plan, config):  # noqa: D102
        kernels = _cpu_norm_kernels()
        layout = _layout(x_seq)
        if layout is None:
            x_seq = x_seq.contiguous()
            layout = _layout(x_seq)
        flat, P, T, M, sp, st = layout
        state_shape = x_seq.shape[1:]
        B, C, S = state_shape[0], state_shape[1], state_shape[2:].numel()
        dtype = x_seq.dtype
        params = [_per_channel(p, state_shape, x_seq) for p in (alpha, beta, theta, v_reset)]
        v0_flat = v0.detach().expand(state_shape).contiguous().reshape(-1)
        y, y_flat = _like(x_seq, P)
        u_saved, u_flat = _like(x_seq, P)  # the integrated membranes, for the backward pass
        v_last = torch.empty(state_shape, dtype=dtype)
        draws = _normal_draws(state_shape, T, dtype) if plan.noise_mode else torch.empty(0, dtype=dtype)
        empty = torch.empty(0, dtype=dtype)
        if plan.norm_mode:
            gamma = weight.detach() if weight is not None else torch.ones(C, dtype=dtype)
            shift = bias.detach() if bias is not None else torch.zeros(C, dtype=dtype)
            running = (norm.running_mean, norm.running_var)  # updated in place in train mode
        else:
            gamma, shift, running = empty, empty, (empty, empty)
        steps = torch.empty((4, T * C if plan.norm_mode else 0), dtype=dtype)  # a, b, mean, invstd per (t, c)
        noise_scale = torch.empty(
            T * B * C if plan.noise_mode == 1 else T * B if plan.noise_mode else 0, dtype=dtype
        )
        _CpuImplementation._threads()
        flags = (
            config.soft,
            config.analog,
            config.act,
            config.post,
            config.tr,
            plan.norm_mode,
            plan.noise_mode,
        )
        with torch.no_grad():
            kernels.norm_forward(
                _arrays(flat.detach(), y_flat, draws.view(-1), u_flat), _arrays(v0_flat, v_last.view(-1)),
                _arrays(*params),
                _arrays(gamma.contiguous(), shift.contiguous(), *running, *steps, noise_scale),
                (P, T, M, sp, st, B, C, S), flags,
                _cpu_kernels().constants(_numpy_dtype(x_seq), config.scale),
                (plan.eps, plan.momentum, plan.noise),
            )  # fmt: skip
        if plan.norm_mode == 1:
            norm.num_batches_tracked.add_(T)  # one update per step, as the reference's T calls
        ctx.save_for_backward(u_saved, *params, steps, draws)  # draws: now the noise the kernel added
        ctx.layout = (P, T, M, sp, st, B, C, S)
        ctx.config, ctx.plan = config, plan
        ctx.param_shapes = [torch.as_tensor(p).shape for p in (alpha, beta, theta, v_reset)]
        ctx.v0_shape = v0.shape
        return y, v_last

    @staticmethod
    def backward(ctx, grad_y, grad_v_last):  # noqa: D102
        kernels = _cpu_norm_kernels()
        u_saved, *rest = ctx.saved_tensors
        params, steps, noise = rest[:4], rest[4], rest[5]
        P, T, M, sp, st, B, C, S = ctx.layout
        config, plan = ctx.config, ctx.plan
        state_shape = u_saved.shape[1:]
        dtype = u_saved.dtype
        if grad_y.stride() != u_saved.stride() or grad_y.dtype != dtype:  # e.g. the expanded grad of a sum
            grad_y = _like(u_saved, P)[0].copy_(grad_y)
        grad_x, gx_flat = _like(u_saved, P)
        gvl = grad_v_last.to(dtype).expand(state_shape).contiguous().reshape(-1)
        grad_v0 = torch.empty(state_shape, dtype=dtype)
        grads = torch.zeros(
            (6, C), dtype=torch.float64
        )  # alpha, beta, theta, v_reset, gamma, beta per channel
        _CpuImplementation._threads()
        flags = (
            config.soft, config.analog, config.act, config.post, config.tr, config.surrogate,
            plan.norm_mode, plan.noise_mode,
        )  # fmt: skip
        kernels.norm_backward(
            _arrays(_layout(grad_y)[0], _layout(u_saved)[0], gx_flat, noise.view(-1)),
            _arrays(gvl, grad_v0.view(-1)), _arrays(*params), (*_arrays(*steps), grads.numpy()),
            (P, T, M, sp, st, B, C, S), flags, _cpu_kernels().constants(_numpy_dtype(u_saved), config.scale),
        )  # fmt: skip
        needs = ctx.needs_input_grad
        channel_shape = (1, C) + (1,) * (len(state_shape) - 2)
        out_param_grads = [
            grads[k].to(dtype).view(channel_shape).sum_to_size(shape) if needs[2 + k] else None
            for k, shape in enumerate(ctx.param_shapes)
        ]
        grad_v0_out = grad_v0.sum_to_size(ctx.v0_shape) if needs[1] else None
        grad_weight = grads[4].to(dtype) if needs[6] else None
        grad_bias = grads[5].to(dtype) if needs[7] else None
        return grad_x, grad_v0_out, *out_param_grads, grad_weight, grad_bias, None, None, None


def _lif_multi_step_norm(
    x_seq: Tensor, v0: Tensor, params: tuple, args: dict[str, Any], config: _Config
) -> tuple[Tensor, Tensor]:
    """:func:`lif_multi_step_fused` with a BatchNorm on the membrane and / or training noise."""
    norm = args["norm"]
    plan = _norm_plan(x_seq, args)
    affine = plan.norm_mode and norm.affine
    weight, bias = (norm.weight, norm.bias) if affine else (None, None)
    return _FusedNormLIF.apply(x_seq, v0, *params, weight, bias, norm, plan, config)
