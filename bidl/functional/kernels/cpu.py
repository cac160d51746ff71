r"""Fused multi-step LIF / LIAF on the CPU, compiled by numba: one pass over T per neuron, both directions.

The math is exactly :func:`bidl.functional.lif_step` (see :mod:`bidl.functional.lif`), in the same float
operations in the same order, so the forward pass gives the reference step loop's spikes bit for bit:

.. math::

    U_t = X_t + V_{t-1};\quad F_t = 1[U_t - \theta > 0];\quad
    R_t = F_t\,?\,v_{reset} : U_t \ \text{(hard)}\ |\ U_t - F_t \theta \ \text{(soft)};\quad
    V_t = \alpha R_t + \beta

and ``Y_t = F_t`` (LIF) or ``act(U_t | V_t [- theta])`` (LIAF). The forward pass reads ``x`` and writes ``y``
and saves nothing beyond its input and initial state; the backward pass recomputes a chunk's membranes ``U``
from ``x`` into a ``[T, chunk]`` buffer that stays in cache, then runs BPTT backwards in time with the
surrogate derivative, producing the gradients of the input, the initial state and (per element, summed by
the caller) the four neuron parameters.

Memory layout: a sequence is addressed as ``[P, T, M]`` in one flat buffer, element ``(p, t, m)`` at
``p * sp + t * st + m``: ``P = 1, M = B*...`` for a contiguous time-first ``[T, B, ...]`` tensor and ``P = B,
M = C*H*W`` for the time-first view of a contiguous batch-first ``[B, T, ...]`` tensor (what the IIM modules
pass), so neither layout is copied. States and the per-element parameters are ``[P * M]``. Work is split
into (p, chunk of M) jobs run in parallel; inside a job the time loop is outermost and the chunk's membrane
stays in cache, so every tensor is read or written once per pass.

Flags are integers: ``soft`` (0 hard, 1 soft reset), ``analog`` (0 LIF, 1 LIAF), ``act`` (0 relu, 1 sigmoid,
2 tanh, 3 identity), ``post`` (LIAF readout: 0 pre-reset ``U``, 1 post-leak ``V``), ``tr`` (subtract theta
before the activation), ``surrogate`` (0 rectangle, 1 sigmoid, 2 arctan); the codes are
``bidl.functional.kernels``' ``_ACTIVATION_IDS`` and ``_SURROGATE_IDS``. ``consts`` holds dtype-typed
constants so that float32 code never widens to float64 (:func:`constants`).
"""

import math
import os

import numba as nb
import numpy as np
from numba.extending import overload

# numba's OpenMP layer costs ~8 ms per parallel call beside torch's own OpenMP pool (measured here: 7.9 ms
# against 0.06 ms for its work queue on a tiny input); the work queue is used unless the user chose a layer.
# It serves one calling thread at a time, which is how training calls it.
if "NUMBA_THREADING_LAYER" not in os.environ:
    nb.config.THREADING_LAYER = "workqueue"

__all__ = ["CHUNK", "constants", "exp_negative", "forward_kernel", "backward_kernel", "step_backward"]

CHUNK = 512  # neurons per job: the chunk's state, parameters and accumulators stay in L1/L2


EXP_CLAMP = 20.0  # exp(-20) = 2e-9: the sigmoid derivative beyond is below any gradient's resolution
EXP_SQUARINGS = 6  # exp(-a) = exp(-a / 64)^64, so the series runs on b = a / 64 <= 0.3125
# Taylor degree of exp(-b) per dtype: the smallest whose error stays below rounding's, amplified by the
# squarings (measured relative error on [0, 20]: float32 6e-6, float64 2e-13)
EXP_DEGREE = {np.dtype(np.float32): 7, np.dtype(np.float64): 11}
_CONSTS_HEAD = 8  # consts[:8] as below, then the Taylor coefficients


def constants(dtype: np.dtype, scale: float) -> np.ndarray:
    """The dtype-typed constants of the kernels for a surrogate of width / steepness ``scale``:
    ``[0, 1, scale, scale / 2, 1 / scale, pi / 2 * scale, EXP_CLAMP, 2**-EXP_SQUARINGS]`` and the Taylor
    coefficients ``(-1)^k / k!`` of ``exp(-b)``, ``k = 0 .. EXP_DEGREE[dtype]``."""
    dtype = np.dtype(dtype)
    head = [0.0, 1.0, scale, scale / 2, 1.0 / scale, np.pi / 2 * scale, EXP_CLAMP, 2.0**-EXP_SQUARINGS]
    series = [(-1.0) ** k / math.factorial(k) for k in range(EXP_DEGREE[dtype] + 1)]
    return np.array(head + series, dtype=dtype)


def exp_negative(a, consts):
    """``exp(-a)`` for ``a >= 0`` in arithmetic alone, so that the loop around it vectorises (numba's
    ``np.exp`` is a scalar libm call: it made the sigmoid surrogate's backward pass twice as slow).
    ``a`` is clamped at :data:`EXP_CLAMP`; ``exp(-a) = exp(-b)^64``, ``b = a / 64``, with ``exp(-b)`` from
    its Taylor series of degree :data:`EXP_DEGREE` in Horner form. Compiled code only (see below);
    :func:`exp_negative_compiled` calls it from Python."""
    raise NotImplementedError("exp_negative runs inside numba-compiled code; use exp_negative_compiled")


def _exp_series(degree: int):
    def impl(a, consts):
        b = (a if a < consts[6] else consts[6]) * consts[7]
        p = consts[_CONSTS_HEAD + degree]
        for k in range(degree - 1, -1, -1):  # a constant trip count: unrolled, and the caller vectorises
            p = p * b + consts[_CONSTS_HEAD + k]
        for _ in range(EXP_SQUARINGS):
            p = p * p
        return p

    return impl


@overload(exp_negative, inline="always")
def _exp_negative_overload(a, consts):
    """The series' degree is chosen by the float type at compile time."""
    for dtype, degree in EXP_DEGREE.items():
        if a == nb.from_dtype(dtype):
            return _exp_series(degree)
    return None


@nb.njit
def exp_negative_compiled(a, consts):
    """:func:`exp_negative` callable from Python (for tests)."""
    return exp_negative(a, consts)


@nb.njit(inline="always")
def _activation(z, act, zero, one):
    if act == 0:
        return z if z > zero else zero
    if act == 1:
        return one / (one + np.exp(-z))
    if act == 2:
        return np.tanh(z)
    return z


@nb.njit(inline="always")
def _activation_grad(z, act, zero, one):
    if act == 0:
        return one if z > zero else zero
    if act == 1:
        s = one / (one + np.exp(-z))
        return (one - s) * s
    if act == 2:
        t = np.tanh(z)
        return one - t * t
    return one


@nb.njit(inline="always")
def _surrogate_grad(d, kind, consts):
    zero = consts[0]  # every constant loaded unconditionally: a load under a branch blocks vectorisation
    one = consts[1]
    scale = consts[2]
    half_scale = consts[3]
    inv_scale = consts[4]
    pi_2_scale = consts[5]
    if kind == 0:  # rectangle: 1/w on |d| < w/2
        return inv_scale if abs(d) < half_scale else zero
    if kind == 1:  # sigmoid: k s (1 - s), s = sigmoid(k d); = k e / (1 + e)^2 with e = exp(-|k d|)
        e = exp_negative(abs(scale * d), consts)
        return scale * e / ((one + e) * (one + e))
    a = pi_2_scale * d  # arctan: (k/2) / (1 + (pi/2 k d)^2)
    return half_scale / (one + a * a)


@nb.njit(inline="always")
def _fire_reset_leak(ut, th, vr, a, b, soft, zero):
    """One neuron's step after integration: ``(fired, R, V)`` as :func:`bidl.functional.lif_step`."""
    fired = ut - th > zero
    if soft:  # noqa: SIM108  (one branch per reset mode reads like the equations)
        r = ut - th if fired else ut
    else:
        r = vr if fired else ut
    return fired, r, a * r + b


@nb.njit(inline="always")
def step_backward(ut, th, vr, a, b, gy, g, sg, soft, analog, act, post, tr, consts):
    """One neuron's step backward: from ``dL/dY_t`` (``gy``), ``dL/dV_t`` (``g``) and the surrogate derivative
    ``sg`` at ``U_t - theta`` to ``(dL/dU_t, and the step's terms of dL/dalpha, dL/dbeta, dL/dtheta,
    dL/dv_reset)``. ``U_t`` is the membrane that fires (after a BatchNorm and noise, where there are)."""
    zero = consts[0]
    one = consts[1]
    d = ut - th
    fired, r, vt = _fire_reset_leak(ut, th, vr, a, b, soft, zero)
    g_th = zero
    if analog and post:
        z = vt
        if tr:
            z = z - th
        gz = gy * _activation_grad(z, act, zero, one)
        g = g + gz
        if tr:
            g_th = g_th - gz
    g_r = g * a
    g_vr = zero
    if soft:
        g_u = g_r
        g_s = -(g_r * th)
        g_th = g_th - (g_r if fired else zero)
    else:
        g_u = zero if fired else g_r
        g_s = g_r * (vr - ut)
        g_vr = g_r if fired else zero
    if analog:
        if not post:
            z = d if tr else ut
            gz = gy * _activation_grad(z, act, zero, one)
            g_u = g_u + gz
            if tr:
                g_th = g_th - gz
    else:
        g_s = g_s + gy
    g_f = g_s * sg
    return g_u + g_f, g * r, g, g_th - g_f, g_vr


@nb.njit(inline="always")
def _forward_job(job, seq, state, params, geometry, soft, analog, act, post, tr, consts):
    """One job of the forward pass: T steps of one chunk of neurons (reads x, writes y)."""
    x, y = seq
    v0, v_last = state
    alpha, beta, theta, v_reset = params
    P, T, M, sp, st = geometry
    zero = consts[0]
    one = consts[1]
    n_chunks = (M + CHUNK - 1) // CHUNK
    p = job // n_chunks
    m0 = (job - p * n_chunks) * CHUNK
    n = min(CHUNK, M - m0)
    s0 = p * M + m0
    v = v0[s0 : s0 + n].copy()
    a = alpha[s0 : s0 + n]
    b = beta[s0 : s0 + n]
    th = theta[s0 : s0 + n]
    vr = v_reset[s0 : s0 + n]
    for t in range(T):
        o = p * sp + t * st + m0
        # views of this step's slice: indexed by the loop counter, the loads and stores are contiguous
        # (indexing the flat arrays by ``o + i`` compiled to gathers and scatters)
        xt = x[o : o + n]
        yt = y[o : o + n]
        for i in range(n):
            ut = xt[i] + v[i]
            fired, r, vt = _fire_reset_leak(ut, th[i], vr[i], a[i], b[i], soft, zero)
            v[i] = vt
            if analog:
                z = vt if post else ut
                if tr:
                    z = z - th[i]
                yt[i] = _activation(z, act, zero, one)
            else:
                yt[i] = one if fired else zero
    v_out = v_last[s0 : s0 + n]
    for i in range(n):  # element by element into a view: a slice assignment here was dropped by numba
        v_out[i] = v[i]


@nb.njit(inline="always")
def _backward_job(job, seq, state, params, geometry, soft, analog, act, post, tr, surrogate, consts):
    """One job of the backward pass: BPTT through T steps of one chunk of neurons; the parameter gradients
    per element (summed over time; the ``P`` axis stays separate: ``[P * M]``)."""
    grad_y, x, grad_x = seq
    v0, grad_v_last, grad_v0, grad_alpha, grad_beta, grad_theta, grad_v_reset = state
    alpha, beta, theta, v_reset = params
    P, T, M, sp, st = geometry
    zero = consts[0]
    n_chunks = (M + CHUNK - 1) // CHUNK
    p = job // n_chunks
    m0 = (job - p * n_chunks) * CHUNK
    n = min(CHUNK, M - m0)
    s0 = p * M + m0
    g_v = grad_v_last[s0 : s0 + n].copy()  # dL/dV_t, carried backwards in time
    acc_a = np.zeros_like(g_v)
    acc_b = np.zeros_like(g_v)
    acc_th = np.zeros_like(g_v)
    acc_vr = np.zeros_like(g_v)
    a = alpha[s0 : s0 + n]
    b = beta[s0 : s0 + n]
    th = theta[s0 : s0 + n]
    vr = v_reset[s0 : s0 + n]
    # the pre-fire membranes of this chunk, recomputed from x exactly as the forward pass computed them (the
    # forward pass saves nothing but its input): T x n values, in cache for the backward sweep
    u = np.empty((T, n), dtype=g_v.dtype)
    v = v0[s0 : s0 + n].copy()
    for t in range(T):
        o = p * sp + t * st + m0
        xt = x[o : o + n]
        u_t = u[t]
        for i in range(n):
            ut = xt[i] + v[i]
            u_t[i] = ut
            v[i] = _fire_reset_leak(ut, th[i], vr[i], a[i], b[i], soft, zero)[2]
    for t in range(T - 1, -1, -1):
        o = p * sp + t * st + m0
        ut_in = u[t]
        gyt = grad_y[o : o + n]
        gxt = grad_x[o : o + n]
        for i in range(n):
            ut = ut_in[i]
            g_u, d_alpha, d_beta, d_theta, d_v_reset = step_backward(
                ut, th[i], vr[i], a[i], b[i], gyt[i], g_v[i], _surrogate_grad(ut - th[i], surrogate, consts),
                soft, analog, act, post, tr, consts,
            )  # fmt: skip
            acc_a[i] += d_alpha
            acc_b[i] += d_beta
            acc_th[i] += d_theta
            acc_vr[i] += d_v_reset
            gxt[i] = g_u
            g_v[i] = g_u
    g_v0 = grad_v0[s0 : s0 + n]
    g_a = grad_alpha[s0 : s0 + n]
    g_b = grad_beta[s0 : s0 + n]
    out_th = grad_theta[s0 : s0 + n]
    g_vr = grad_v_reset[s0 : s0 + n]
    for i in range(n):  # element by element into views, as in the forward job
        g_v0[i] = g_v[i]
        g_a[i] = acc_a[i]
        g_b[i] = acc_b[i]
        out_th[i] = acc_th[i]
        g_vr[i] = acc_vr[i]


# -- the kernels: one per flag set that is held constant (the inner loop then has no branch and vectorises);
# ``liaf_forward`` / ``liaf_backward`` take the LIAF flags at run time. Arguments (tuples of flat arrays):
#   forward:  seq (x, y), state (v0, v_last), params (alpha, beta, theta, v_reset), geometry (P, T, M, sp, st)
#   backward: seq (grad_y, x, grad_x), state (v0, grad_v_last, grad_v0, grad_alpha, grad_beta, grad_theta,
#             grad_v_reset), params, geometry


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def lif_forward_hard(seq, state, params, geometry, flags, consts):
    """LIF, hard reset."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _forward_job(job, seq, state, params, geometry, 0, 0, 0, 0, 0, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def lif_forward_soft(seq, state, params, geometry, flags, consts):
    """LIF, soft reset."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _forward_job(job, seq, state, params, geometry, 1, 0, 0, 0, 0, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def liaf_relu_forward_hard(seq, state, params, geometry, flags, consts):
    """The authors' LIAF (ReLU of the pre-reset membrane), hard reset."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _forward_job(job, seq, state, params, geometry, 0, 1, 0, 0, 0, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def liaf_relu_forward_soft(seq, state, params, geometry, flags, consts):
    """The authors' LIAF, soft reset."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _forward_job(job, seq, state, params, geometry, 1, 1, 0, 0, 0, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def liaf_forward(seq, state, params, geometry, flags, consts):
    """LIAF, any reset, activation and readout."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _forward_job(job, seq, state, params, geometry, soft, 1, act, post, tr, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def lif_backward_hard_rectangle(seq, state, params, geometry, flags, consts):
    """LIF, hard reset, rectangle surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, 0, 0, 0, 0, 0, 0, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def lif_backward_hard_sigmoid(seq, state, params, geometry, flags, consts):
    """LIF, hard reset, sigmoid surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, 0, 0, 0, 0, 0, 1, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def lif_backward_hard_arctan(seq, state, params, geometry, flags, consts):
    """LIF, hard reset, arctan surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, 0, 0, 0, 0, 0, 2, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def lif_backward_soft_rectangle(seq, state, params, geometry, flags, consts):
    """LIF, soft reset, rectangle surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, 1, 0, 0, 0, 0, 0, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def lif_backward_soft_sigmoid(seq, state, params, geometry, flags, consts):
    """LIF, soft reset, sigmoid surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, 1, 0, 0, 0, 0, 1, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def lif_backward_soft_arctan(seq, state, params, geometry, flags, consts):
    """LIF, soft reset, arctan surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, 1, 0, 0, 0, 0, 2, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def liaf_relu_backward_hard_rectangle(seq, state, params, geometry, flags, consts):
    """The authors' LIAF, hard reset, rectangle surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, 0, 1, 0, 0, 0, 0, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def liaf_relu_backward_hard_sigmoid(seq, state, params, geometry, flags, consts):
    """The authors' LIAF, hard reset, sigmoid surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, 0, 1, 0, 0, 0, 1, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def liaf_relu_backward_hard_arctan(seq, state, params, geometry, flags, consts):
    """The authors' LIAF, hard reset, arctan surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, 0, 1, 0, 0, 0, 2, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def liaf_relu_backward_soft_rectangle(seq, state, params, geometry, flags, consts):
    """The authors' LIAF, soft reset, rectangle surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, 1, 1, 0, 0, 0, 0, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def liaf_relu_backward_soft_sigmoid(seq, state, params, geometry, flags, consts):
    """The authors' LIAF, soft reset, sigmoid surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, 1, 1, 0, 0, 0, 1, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def liaf_relu_backward_soft_arctan(seq, state, params, geometry, flags, consts):
    """The authors' LIAF, soft reset, arctan surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, 1, 1, 0, 0, 0, 2, consts)


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def liaf_backward(seq, state, params, geometry, flags, consts):
    """LIAF, any reset, activation, readout and surrogate."""
    P, T, M, sp, st = geometry
    soft, analog, act, post, tr, surrogate = flags
    for job in nb.prange(P * ((M + CHUNK - 1) // CHUNK)):
        _backward_job(job, seq, state, params, geometry, soft, 1, act, post, tr, surrogate, consts)


_LIF_FORWARD = (lif_forward_hard, lif_forward_soft)
_LIF_BACKWARD = (
    (lif_backward_hard_rectangle, lif_backward_hard_sigmoid, lif_backward_hard_arctan),
    (lif_backward_soft_rectangle, lif_backward_soft_sigmoid, lif_backward_soft_arctan),
)


_LIAF_RELU_FORWARD = (liaf_relu_forward_hard, liaf_relu_forward_soft)
_LIAF_RELU_BACKWARD = (
    (liaf_relu_backward_hard_rectangle, liaf_relu_backward_hard_sigmoid, liaf_relu_backward_hard_arctan),
    (liaf_relu_backward_soft_rectangle, liaf_relu_backward_soft_sigmoid, liaf_relu_backward_soft_arctan),
)


def forward_kernel(soft: int, analog: int, act: int = 0, post: int = 0, tr: int = 0):
    """The compiled forward kernel for these flags. Every kernel takes every flag; the specialised ones (LIF,
    the authors' LIAF) hold them as constants, so their inner loop has no branch and vectorises."""
    if not analog:
        return _LIF_FORWARD[soft]
    return _LIAF_RELU_FORWARD[soft] if (act, post, tr) == (0, 0, 0) else liaf_forward


def backward_kernel(soft: int, analog: int, surrogate: int, act: int = 0, post: int = 0, tr: int = 0):
    """The compiled backward kernel for these flags (as :func:`forward_kernel`)."""
    if not analog:
        return _LIF_BACKWARD[soft][surrogate]
    return _LIAF_RELU_BACKWARD[soft][surrogate] if (act, post, tr) == (0, 0, 0) else liaf_backward
