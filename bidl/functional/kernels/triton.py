r"""Fused multi-step LIF / LIAF in Triton: the contract of :mod:`.cpu` (the numba kernels) on a CUDA device.

.. note::
   Verified only under Triton's interpreter (``TRITON_INTERPRET=1``: the kernels run on numpy) on CPU
   tensors with Triton 3.9.0, against the numba kernels and the reference step loop
   (``tests/test_kernels_triton.py``); compiled for sm_90 (to PTX and cubin, without a device), but not run
   on a GPU in the task that wrote it.

The math is :mod:`.cpu`'s (and so :func:`bidl.functional.lif_step`'s), the same float operations in the same
order:

.. math::

    U_t = X_t + V_{t-1};\quad F_t = 1[U_t - \theta > 0];\quad
    R_t = F_t\,?\,v_{reset} : U_t \ \text{(hard)}\ |\ U_t - F_t \theta \ \text{(soft)};\quad
    V_t = \alpha R_t + \beta

with ``Y_t = F_t`` (LIF) or ``act(U_t | V_t [- theta])`` (LIAF); the forward pass saves ``U``, the backward
pass recomputes ``F``, ``R`` and ``V`` from it and runs BPTT backwards in time.

Layout and arguments are :mod:`.cpu`'s: flat 1-D tensors, a sequence addressed as ``[P, T, M]`` (element
``(p, t, m)`` at ``p * sp + t * st + m``), states and per-element parameters as ``[P * M]``. One program
handles ``BLOCK`` neurons of one ``p`` (a 1-D grid of ``P * ceil(M / BLOCK)`` programs, as the CPU's jobs)
and loops over T inside, its membrane in registers. The flags are ``tl.constexpr``: each mode compiles to
its own branch-free kernel.

Precision: float32, float16 and bfloat16 storage; the kernels load, upcast to float32, compute in float32
(the membrane carried across steps, the gradient carried back in time and the parameter-gradient sums all in
float32) and round once on store, so the forward pass of a float16 / bfloat16 input is float32 math on the
upcast input, rounded. The backward pass recomputes the spikes from the stored ``U``: where a ``U`` just
above ``theta`` would round onto it, the next storage value up is stored, so that the backward pass sees
the forward pass's spikes (:func:`_stored_membrane`). Multiply-add contraction is switched off
(``enable_fp_fusion=False``) so that ``alpha * R + beta`` is rounded as the reference rounds it.

:func:`available` says whether the kernels can run here: on a CUDA device, or anywhere under the
interpreter, which must be switched on (``TRITON_INTERPRET=1``) before this module is imported, since Triton
decides between the compiler and the interpreter when a kernel is defined.
"""

import math
from contextlib import nullcontext

import torch
import triton
import triton.language as tl

__all__ = ["Implementation", "available", "interpreted"]

BLOCK = 512  # neurons per program
NUM_WARPS = 4


@triton.jit
def _activation(z, ACT: tl.constexpr):
    if ACT == 0:  # relu
        return tl.where(z > 0.0, z, 0.0)
    elif ACT == 1:  # sigmoid
        return 1.0 / (1.0 + tl.exp(-z))
    elif ACT == 2:  # tanh, from exp (no tanh in Triton's core language or its interpreter)
        e = tl.exp(-2.0 * tl.abs(z))
        t = (1.0 - e) / (1.0 + e)
        return tl.where(z < 0.0, -t, t)
    else:  # identity
        return z


@triton.jit
def _activation_grad(z, ACT: tl.constexpr):
    if ACT == 0:
        return tl.where(z > 0.0, 1.0, 0.0)
    elif ACT == 1:
        s = 1.0 / (1.0 + tl.exp(-z))
        return (1.0 - s) * s
    elif ACT == 2:
        t = _activation(z, 2)
        return 1.0 - t * t
    else:
        return tl.full(z.shape, 1.0, tl.float32)


@triton.jit
def _surrogate_grad(d, scale, half_scale, inv_scale, pi_2_scale, SURROGATE: tl.constexpr):
    if SURROGATE == 0:  # rectangle: 1/w on |d| < w/2
        return tl.where(tl.abs(d) < half_scale, inv_scale, 0.0)
    elif SURROGATE == 1:  # sigmoid: k s (1 - s), s = sigmoid(k d)
        s = 1.0 / (1.0 + tl.exp(-(scale * d)))
        return scale * s * (1.0 - s)
    else:  # arctan: (k/2) / (1 + (pi/2 k d)^2)
        a = pi_2_scale * d
        return half_scale / (1.0 + a * a)


@triton.jit
def _stored_membrane(ut, th, fired, DTYPE: tl.constexpr):
    """``U`` rounded to the storage type such that the backward pass, which recomputes the spikes from it,
    recomputes the forward pass's: ``theta`` is a storage-type value and rounding is monotonic, so the test
    ``U - theta > 0`` changes only where a ``U`` above ``theta`` rounds onto it; that ``U`` is stored as the
    next storage-type value above ``theta`` instead (one unit in the last place further than rounding)."""
    u_s = ut.to(DTYPE)
    if DTYPE.primitive_bitwidth == 16:
        # the next value up from the sign-and-magnitude bit pattern (a U above theta never rounds to -0)
        bits = u_s.to(tl.int16, bitcast=True).to(tl.int32)
        u_up = tl.where(bits >= 0, bits + 1, bits - 1).to(tl.int16).to(DTYPE, bitcast=True)
        u_s = tl.where(fired & (u_s.to(tl.float32) - th <= 0.0), u_up, u_s)
    return u_s


@triton.jit
def _forward_kernel(
    x_ptr, v0_ptr, alpha_ptr, beta_ptr, theta_ptr, v_reset_ptr, y_ptr, u_ptr, v_last_ptr,
    M, sp, st, T,
    SOFT: tl.constexpr, ANALOG: tl.constexpr, ACT: tl.constexpr, POST: tl.constexpr, TR: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    """T steps of ``BLOCK`` neurons of one ``p``."""
    M = tl.cast(M, tl.int64)  # every index in int64: P * T * M may pass 2**31
    sp = tl.cast(sp, tl.int64)
    st = tl.cast(st, tl.int64)
    # no tl.cdiv / tl.zeros: those are jit functions of triton.language, compiled or interpreted as
    # TRITON_INTERPRET was when triton was imported, not when this module was (builtins only here)
    n_blocks = (M + BLOCK - 1) // BLOCK
    job = tl.cast(tl.program_id(0), tl.int64)
    p = job // n_blocks
    m = (job - p * n_blocks) * BLOCK + tl.arange(0, BLOCK)
    mask = m < M
    s = p * M + m  # the state / parameter index
    seq = p * sp + m  # the index of (p, 0, m)
    v = tl.load(v0_ptr + s, mask=mask, other=0.0).to(tl.float32)
    a = tl.load(alpha_ptr + s, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(beta_ptr + s, mask=mask, other=0.0).to(tl.float32)
    th = tl.load(theta_ptr + s, mask=mask, other=0.0).to(tl.float32)
    vr = tl.load(v_reset_ptr + s, mask=mask, other=0.0).to(tl.float32)
    for t in range(T):
        o = seq + t * st
        ut = tl.load(x_ptr + o, mask=mask, other=0.0).to(tl.float32) + v
        fired = ut - th > 0.0
        r = tl.where(fired, ut - th, ut) if SOFT else tl.where(fired, vr, ut)
        vt = a * r + b
        tl.store(u_ptr + o, _stored_membrane(ut, th, fired, u_ptr.dtype.element_ty), mask=mask)
        v = vt
        if ANALOG:
            z = vt if POST else ut
            if TR:
                z = z - th
            out = _activation(z, ACT)
        else:
            out = tl.where(fired, 1.0, 0.0)
        tl.store(y_ptr + o, out.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(v_last_ptr + s, v.to(v_last_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _backward_kernel(
    gy_ptr, u_ptr, gvl_ptr, alpha_ptr, beta_ptr, theta_ptr, v_reset_ptr,
    gx_ptr, gv0_ptr, ga_ptr, gb_ptr, gth_ptr, gvr_ptr,
    M, sp, st, T, scale, half_scale, inv_scale, pi_2_scale,
    SOFT: tl.constexpr, ANALOG: tl.constexpr, ACT: tl.constexpr, POST: tl.constexpr, TR: tl.constexpr,
    SURROGATE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """BPTT through T steps of ``BLOCK`` neurons of one ``p``; the parameter gradients per element (summed
    over time, the ``P`` axis kept: ``[P * M]``)."""
    M = tl.cast(M, tl.int64)
    sp = tl.cast(sp, tl.int64)
    st = tl.cast(st, tl.int64)
    n_blocks = (M + BLOCK - 1) // BLOCK  # (builtins only: see the forward kernel)
    job = tl.cast(tl.program_id(0), tl.int64)
    p = job // n_blocks
    m = (job - p * n_blocks) * BLOCK + tl.arange(0, BLOCK)
    mask = m < M
    s = p * M + m
    seq = p * sp + m
    g_v = tl.load(gvl_ptr + s, mask=mask, other=0.0).to(tl.float32)  # dL/dV_t, carried backwards in time
    acc_a = tl.full([BLOCK], 0.0, tl.float32)
    acc_b = tl.full([BLOCK], 0.0, tl.float32)
    acc_th = tl.full([BLOCK], 0.0, tl.float32)
    acc_vr = tl.full([BLOCK], 0.0, tl.float32)
    a = tl.load(alpha_ptr + s, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(beta_ptr + s, mask=mask, other=0.0).to(tl.float32)
    th = tl.load(theta_ptr + s, mask=mask, other=0.0).to(tl.float32)
    vr = tl.load(v_reset_ptr + s, mask=mask, other=0.0).to(tl.float32)
    for i in range(T):
        o = seq + (T - 1 - i) * st
        ut = tl.load(u_ptr + o, mask=mask, other=0.0).to(tl.float32)
        d = ut - th
        fired = d > 0.0
        r = tl.where(fired, ut - th, ut) if SOFT else tl.where(fired, vr, ut)
        gy = tl.load(gy_ptr + o, mask=mask, other=0.0).to(tl.float32)
        g = g_v
        g_th = tl.full([BLOCK], 0.0, tl.float32)
        if ANALOG and POST:
            z = a * r + b
            if TR:
                z = z - th
            gz = gy * _activation_grad(z, ACT)
            g = g + gz
            if TR:
                g_th = g_th - gz
        g_r = g * a
        acc_a += g * r
        acc_b += g
        if SOFT:
            g_u = g_r
            g_s = -(g_r * th)
            g_th = g_th - tl.where(fired, g_r, 0.0)
        else:
            g_u = tl.where(fired, 0.0, g_r)
            g_s = g_r * (vr - ut)
            acc_vr += tl.where(fired, g_r, 0.0)
        if ANALOG:
            if not POST:
                z = d if TR else ut
                gz = gy * _activation_grad(z, ACT)
                g_u = g_u + gz
                if TR:
                    g_th = g_th - gz
        else:
            g_s = g_s + gy
        g_f = g_s * _surrogate_grad(d, scale, half_scale, inv_scale, pi_2_scale, SURROGATE)
        g_u = g_u + g_f
        acc_th += g_th - g_f
        tl.store(gx_ptr + o, g_u.to(gx_ptr.dtype.element_ty), mask=mask)
        g_v = g_u
    tl.store(gv0_ptr + s, g_v.to(gv0_ptr.dtype.element_ty), mask=mask)
    tl.store(ga_ptr + s, acc_a.to(ga_ptr.dtype.element_ty), mask=mask)
    tl.store(gb_ptr + s, acc_b.to(gb_ptr.dtype.element_ty), mask=mask)
    tl.store(gth_ptr + s, acc_th.to(gth_ptr.dtype.element_ty), mask=mask)
    tl.store(gvr_ptr + s, acc_vr.to(gvr_ptr.dtype.element_ty), mask=mask)


def interpreted() -> bool:
    """Whether the kernels were defined under Triton's interpreter (``TRITON_INTERPRET=1`` at import)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(_forward_kernel, InterpretedFunction)


def available() -> bool:
    """Whether the kernels can run here: a CUDA device, or the interpreter (which runs them anywhere)."""
    return interpreted() or torch.cuda.is_available()


class Implementation:
    """The kernels behind :class:`bidl.functional.kernels._FusedLIF`: the arguments of
    ``_CpuImplementation`` (flat 1-D tensors of one dtype on one device; outputs written in place). It
    saves the pre-fire membranes ``U`` in the forward pass (``saves_membrane``): a GPU has the memory, and
    U rounded to float16 / bfloat16 storage is nudged so that the backward pass sees the forward's spikes."""

    saves_membrane = True

    @staticmethod
    def _grid(P: int, M: int) -> tuple[int]:
        return (P * triton.cdiv(M, BLOCK),)

    @staticmethod
    def _on(t: torch.Tensor):
        """Launch on the tensors' device, whichever is current (CPU tensors: the interpreter)."""
        return torch.cuda.device(t.device) if t.device.type == "cuda" else nullcontext()

    @classmethod
    def forward(cls, x, v0, alpha, beta, theta, v_reset, y, u, v_last, P, T, M, sp, st, config):
        with cls._on(x):
            _forward_kernel[cls._grid(P, M)](
                x, v0, alpha, beta, theta, v_reset, y, u, v_last, M, sp, st, T,
                SOFT=config.soft, ANALOG=config.analog, ACT=config.act, POST=config.post, TR=config.tr,
                BLOCK=BLOCK, num_warps=NUM_WARPS, enable_fp_fusion=False,
            )  # fmt: skip

    @classmethod
    def backward(cls, gy, u, v0, gvl, alpha, beta, theta, v_reset, gx, gv0, ga, gb, gth, gvr, P, T, M, sp, st,
                 config):  # fmt: skip
        del v0  # the saved membranes ``u`` hold what the backward pass needs
        scale = config.scale  # cpu.constants' float32 constants, rounded from float64 alike
        with cls._on(u):
            _backward_kernel[cls._grid(P, M)](
                gy, u, gvl, alpha, beta, theta, v_reset, gx, gv0, ga, gb, gth, gvr, M, sp, st, T,
                scale, scale / 2, 1.0 / scale, math.pi / 2 * scale,
                SOFT=config.soft, ANALOG=config.analog, ACT=config.act, POST=config.post, TR=config.tr,
                SURROGATE=config.surrogate, BLOCK=BLOCK, num_warps=NUM_WARPS, enable_fp_fusion=False,
            )  # fmt: skip
