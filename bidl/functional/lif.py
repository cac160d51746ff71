r"""LIF / LIAF neuron math (paper eqs. 6-11) as plain functions of (input, state, parameters).

One discrete step, as the authors' code runs it (``x``: the synaptic input, e.g. a conv or linear output):

.. math::

    U_t &= X_t + V_{t-1}              && \text{integrate} \\
    U_t &\leftarrow \mathrm{BN}(U_t)   && \text{optional "norm\_state": BatchNorm on the membrane} \\
    F_t &= 1[U_t > \theta]            && \text{fire (strict)} \\
    R_t &= F_t v_{reset} + (1 - F_t) U_t  && \text{hard; soft (RMP): } R_t = U_t - F_t\theta \\
    V_t &= \alpha R_t + \beta         && \text{leak after reset: the state carried to } t+1 \\
    Y_t &= F_t \text{ (LIF)}          && \text{or } Y_t = g(U_t) \text{ (LIAF)}

LIAF's analog output ``g`` comes in two modes (``liaf_mode``): ``"NTR"`` (no threshold removal,
:math:`g = act(U_t)`, the authors' default with ``act = ReLU``) and ``"TR"`` (:math:`g = act(U_t - \theta)`).
Its readout point (``liaf_readout``) is ``"pre_reset"`` (the authors' code: the membrane before reset and
leak) or ``"post_leak"`` (the paper's eq. 11: :math:`g` applied to :math:`V_t`).

Every function is shape-agnostic: parameters broadcast against the state (a scalar for all-share, a
per-channel tensor shaped ``[1, C, 1, 1]`` or ``[1, C]`` for channel-share). The step loop
:func:`lif_multi_step_reference` is the specification that any faster path is tested against;
:func:`lif_multi_step`, the entry point the modules use, runs a fused kernel (:mod:`bidl.functional.kernels`)
where one applies and the reference loop otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from .surrogate import rectangle

__all__ = [
    "RESET_MODES",
    "LIAF_MODES",
    "LIAF_READOUTS",
    "integrate",
    "fire",
    "cmp_and_fire",
    "reset_membrane",
    "leak",
    "reset_with_decay",
    "soft_reset_with_decay",
    "inference_builtins",
    "active_builtins",
    "add_training_noise",
    "lif_step",
    "lif_multi_step",
    "lif_multi_step_reference",
]

RESET_MODES = ("hard", "soft")
LIAF_MODES = ("NTR", "TR")
LIAF_READOUTS = ("pre_reset", "post_leak")

ParamLike = Tensor | float
Norm = Callable[[Tensor], Tensor]


def integrate(x: Tensor, v: Tensor) -> Tensor:
    """Membrane before firing: ``U = X + V_prev``."""
    return x + v


def fire(u: Tensor, theta: ParamLike, spike_fn: Callable[[Tensor], Tensor] = rectangle) -> Tensor:
    """Spikes ``F = 1[U > theta]`` with the surrogate gradient of ``spike_fn``."""
    return spike_fn(u - theta)


def cmp_and_fire(v: Tensor, theta: ParamLike) -> Tensor:
    """Inference built-in: ``1[v > theta]`` in ``v``'s dtype, without a gradient path."""
    return (v > theta).to(v.dtype)


def reset_membrane(u: Tensor, spike: Tensor, *, v_reset: ParamLike, theta: ParamLike, reset: str) -> Tensor:
    """Reset after firing: hard ``F v_reset + (1-F) U`` or soft (RMP) ``U - F theta``."""
    if reset == "hard":
        return spike * v_reset + (1.0 - spike) * u
    if reset == "soft":
        return u - spike * theta
    raise ValueError(f"reset: unknown mode {reset!r}; choose one of {RESET_MODES}")


def leak(r: Tensor, alpha: ParamLike, beta: ParamLike) -> Tensor:
    """Leak applied after the reset: ``V = alpha R + beta``."""
    return alpha * r + beta


def reset_with_decay(
    v: Tensor, spike: Tensor, v_reset: ParamLike, alpha: ParamLike, beta: ParamLike
) -> Tensor:
    """Inference built-in for the hard-reset neuron: ``alpha * (spike ? v_reset : v) + beta``."""
    return leak(
        torch.where(spike > 0, torch.as_tensor(v_reset, dtype=v.dtype, device=v.device), v), alpha, beta
    )


def soft_reset_with_decay(
    v: Tensor, spike: Tensor, theta: ParamLike, alpha: ParamLike, beta: ParamLike
) -> Tensor:
    """Inference built-in for the soft-reset (RMP) neuron: ``alpha * (v - spike * theta) + beta``."""
    return leak(v - spike * theta, alpha, beta)


_BUILTINS: list[Any] = []


@contextmanager
def inference_builtins(ops: Any) -> Iterator[None]:
    """Run the neuron steps in their inference form: fire with ``ops.cmp_and_fire(u, theta)`` and reset and
    leak with ``ops.reset_with_decay(u, spike, v_reset, alpha, beta)`` (hard reset) or
    ``ops.soft_reset_with_decay(u, spike, theta, alpha, beta)`` (soft), no surrogate gradient. The exporter
    (:mod:`bidl.export`) passes operators that each become one node of the graph; any object with these
    three callables works (e.g. one that records the spikes)."""
    _BUILTINS.append(ops)
    try:
        yield
    finally:
        _BUILTINS.pop()


def active_builtins() -> Any | None:
    """The operators of the innermost :func:`inference_builtins` context, or ``None`` outside one."""
    return _BUILTINS[-1] if _BUILTINS else None


def add_training_noise(u: Tensor, noise: float) -> Tensor:
    r"""Authors' training noise: ``U + N(0,1) * std(U) * noise``, detached from autograd.

    The standard deviation is taken per sample and channel over the remaining (spatial) dims for
    ``[B, C, ...]`` states with more than two dims, and per sample over the features for ``[B, F]``.
    """
    if noise <= 0:
        return u
    with torch.no_grad():
        dims = tuple(range(2, u.dim())) if u.dim() > 2 else (1,)
        scale = torch.std(u, dim=dims, keepdim=True) * noise if u.shape[dims[0]] > 1 else torch.zeros_like(u)
        perturbation = torch.randn_like(u) * scale
    return u + perturbation


def identity(x: Tensor) -> Tensor:
    """The identity activation (LIAF ``activation="identity"``): a named function the kernels recognise."""
    return x


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "identity": identity,
}
"""LIAF's analog activations by name (:class:`bidl.LIAF`'s ``activation``); the fused kernels run these."""


def lif_step(
    x: Tensor,
    v: Tensor,
    *,
    alpha: ParamLike = 0.3,
    beta: ParamLike = 0.0,
    theta: ParamLike = 0.5,
    v_reset: ParamLike = 0.0,
    reset: str = "hard",
    spike_fn: Callable[[Tensor], Tensor] = rectangle,
    norm: Norm | None = None,
    noise: float = 0.0,
    analog: bool = False,
    activation: Callable[[Tensor], Tensor] = torch.relu,
    liaf_mode: str = "NTR",
    liaf_readout: str = "pre_reset",
) -> tuple[Tensor, Tensor]:
    """One LIF (``analog=False``) or LIAF (``analog=True``) step.

    Args:
        x: synaptic input ``X_t``, ``[B, ...]``.
        v: state ``V_{t-1}``, same shape as ``x``.
        norm: optional callable applied to the membrane ``U`` (BatchNorm on the state).
        noise: training-noise scale (0 disables it; apply it only in training).

    Returns:
        ``(y, v_next)``: spikes (LIF) or analog values (LIAF), and the state ``V_t``.
    """
    u = integrate(x, v)
    if norm is not None:
        u = norm(u)
    u = add_training_noise(u, noise)
    ops = active_builtins()
    if ops is None:
        spike = fire(u, theta, spike_fn)
        v_next = leak(reset_membrane(u, spike, v_reset=v_reset, theta=theta, reset=reset), alpha, beta)
    elif reset == "hard":
        spike = ops.cmp_and_fire(u, theta)
        v_next = ops.reset_with_decay(u, spike, v_reset, alpha, beta)
    elif reset == "soft":
        spike = ops.cmp_and_fire(u, theta)
        v_next = ops.soft_reset_with_decay(u, spike, theta, alpha, beta)
    else:
        raise ValueError(f"reset: unknown mode {reset!r}; choose one of {RESET_MODES}")
    if not analog:
        return spike, v_next
    source = u if liaf_readout == "pre_reset" else v_next
    if liaf_readout not in LIAF_READOUTS:
        raise ValueError(f"liaf_readout: unknown value {liaf_readout!r}; choose one of {LIAF_READOUTS}")
    if liaf_mode == "TR":
        source = source - theta
    elif liaf_mode != "NTR":
        raise ValueError(f"liaf_mode: unknown value {liaf_mode!r}; choose one of {LIAF_MODES}")
    return activation(source), v_next


def lif_multi_step(x_seq: Tensor, v0: Tensor | None = None, **step_kwargs) -> tuple[Tensor, Tensor]:
    """Multi-step neuron over a time-first sequence: a fused kernel where one applies
    (:func:`bidl.functional.kernels.fused_kernel_for`), else :func:`lif_multi_step_reference`; the same
    arguments and results.

    Example:
        >>> y, v = lif_multi_step(torch.ones(3, 1, 1), alpha=0.5, theta=1.5)
        >>> y.flatten().tolist(), v.item()
        ([0.0, 0.0, 1.0], 0.0)
    """
    from .kernels import fused_kernel_for, lif_multi_step_fused

    if fused_kernel_for(x_seq, **step_kwargs) is None:
        return lif_multi_step_reference(x_seq, v0, **step_kwargs)
    return lif_multi_step_fused(x_seq, v0, **step_kwargs)


def lif_multi_step_reference(x_seq: Tensor, v0: Tensor | None = None, **step_kwargs) -> tuple[Tensor, Tensor]:
    """Reference multi-step neuron over a time-first sequence: :func:`lif_step` in a loop (the specification).

    Args:
        x_seq: ``[T, B, ...]`` synaptic inputs.
        v0: initial state ``[B, ...]``; zeros when ``None``.
        **step_kwargs: the keyword arguments of :func:`lif_step`.

    Returns:
        ``(y_seq [T, B, ...], v_T [B, ...])``.

    Example:
        >>> y, v = lif_multi_step_reference(torch.ones(3, 1, 1), alpha=0.5, theta=1.5)
        >>> y.flatten().tolist(), v.item()
        ([0.0, 0.0, 1.0], 0.0)
    """
    v = torch.zeros_like(x_seq[0]) if v0 is None else v0
    outputs = []
    for x in x_seq:
        y, v = lif_step(x, v, **step_kwargs)
        outputs.append(y)
    return torch.stack(outputs), v
