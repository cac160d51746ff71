r"""Fused multi-step LIF / LIAF with BatchNorm on the membrane and training noise, on the CPU (numba).

One step, :func:`bidl.functional.lif_step` with ``norm`` (an ``nn.BatchNorm1d/2d/3d``) and ``noise``, for a
state ``[B, C, *S]``:

.. math::

    U_t = X_t + V_{t-1};\quad \hat U_t = a_t U_t + b_t;\quad
    U'_t = \hat U_t + r_t\,\sigma(\hat U_t)\,\text{noise};\quad \text{fire, reset, leak on } U'_t

with the BatchNorm as a per-channel affine ``a_t = gamma / sqrt(var_t + eps)``, ``b_t = beta - mean_t a_t``
(train mode: this step's statistics over ``(B, *S)``, the biased variance, and the running statistics
updated at every step with the unbiased one, as ``nn.BatchNorm`` does at each of the reference's T calls;
eval mode: the running statistics), ``r_t`` standard normal numbers (drawn by the caller with torch, in the
reference's order) and ``sigma`` the unbiased standard deviation of ``\hat U_t`` over ``S`` per (sample,
channel), or over the features per sample for a ``[B, F]`` state. The noise is detached: its gradient is the
identity. The neuron parameters are per channel (all-share: the same value in every channel).

BatchNorm is per channel and the neuron is per element, so one channel's whole sequence (all B, S and T) is
independent of the other channels: a job per channel runs the time loop inside, each step in passes over
the channel's ``B * S`` values, which stay in cache (integrate and sum; the squared deviations; the affine;
fire, reset and leak). The sums are float64. Noise on a ``[B, F]`` state couples the features of a sample, so
the forward pass runs it as one job over all features; its backward pass needs only the saved scales and is
a job per channel like every other.

The forward pass saves the integrated membranes ``U_t`` (as large as the input: what the backward pass
would otherwise recompute through a ``[T, B * S]`` buffer per channel, which does not stay in cache) and
the noise it added (in place of the normal numbers). The backward pass runs BPTT backwards in time from
them and the per-step affine (``[T, C]``), so with the same ``U'_t`` and the same spikes: the surrogate
derivative per element, then the BatchNorm backward of the step (train mode:
``a_t (g - mean(g) - \hat x\,mean(g \hat x))``; eval mode: ``a_t g``), whose sums over the channel give the
gradients of gamma and beta.

The statistics are accumulated in float64 in an order of this kernel's own, so the membranes agree with the
reference step loop (torch's BatchNorm) to rounding: float64 runs agree to about 1e-15, float32 runs to
about 1e-7 relative, where a membrane within that distance of the threshold may fire in one and not the
other.

Sequences are addressed as in :mod:`.cpu` (``[P, T, M]`` in one flat buffer, element ``(p, t, m)`` at
``p * sp + t * st + m``); the state index of ``(b, c, s)`` is ``b * C * S + c * S + s``. The normal draws are
time-first ``[T, B, C, S]``. Flags: ``soft``, ``analog``, ``act``, ``post``, ``tr``, ``surrogate`` as in
:mod:`.cpu`; ``norm_mode`` (0 none, 1 batch statistics, 2 running statistics) and ``noise_mode`` (0 none, 1
per (sample, channel) over ``S``, 2 per sample over the features of a ``[B, F]`` state).
"""

import numba as nb
import numpy as np

from .cpu import _activation, _fire_reset_leak, _surrogate_grad, step_backward

__all__ = ["NORM_MODES", "NOISE_MODES", "norm_forward", "norm_backward"]

NORM_MODES = {"none": 0, "batch": 1, "running": 2}
NOISE_MODES = {"none": 0, "spatial": 1, "features": 2}


@nb.njit(inline="always")
def _addr(b, t, c, P, M, sp, st, CS, S):
    """Flat offset of ``x[t, b, c, 0]``: the ``S`` values of (b, c) follow contiguously."""
    k = b * CS + c * S
    p = k // M
    return p * sp + t * st + (k - p * M)


@nb.njit(inline="always")
def _std(values, n, zero):
    """The unbiased standard deviation of ``values[:n]`` (two passes, float64 sums); 0 for ``n < 2``."""
    if n < 2:
        return zero
    total = 0.0
    for i in range(n):
        total += values[i]
    mean = total / n
    squares = 0.0
    for i in range(n):
        d = values[i] - mean
        squares += d * d
    return np.sqrt(squares / (n - 1))


@nb.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _forward_channels(c0, c1, seq, state, params, norm, geometry, flags, consts, scalars):
    """Forward pass of channels ``[c0, c1)``: T steps of integrate, BatchNorm, noise, fire / reset / leak;
    the integrated membranes ``U_t`` are saved in ``u_save`` (laid out as ``x``) for the backward pass."""
    x, y, r, u_save = seq
    v0, v_last = state
    alpha, beta, theta, v_reset = params
    weight, bias, run_mean, run_var, step_a, step_b, step_mean, step_invstd, noise_scale = norm
    P, T, M, sp, st, B, C, S = geometry
    soft, analog, act, post, tr, norm_mode, noise_mode = flags
    eps, momentum, noise = scalars
    zero = consts[0]
    one = consts[1]
    dtype = consts.dtype
    nc = c1 - c0
    BS = B * S
    CS = C * S
    v = np.empty((nc, BS), dtype=dtype)  # the channels' state
    u = np.empty((nc, BS), dtype=dtype)  # the step's membrane
    column = np.empty(nc, dtype=np.float64)  # one sample's features (noise over the features)
    for ci in range(nc):
        c = c0 + ci
        for b in range(B):
            for s in range(S):
                v[ci, b * S + s] = v0[b * CS + c * S + s]
    for t in range(T):
        for ci in range(nc):
            c = c0 + ci
            uc = u[ci]
            vc = v[ci]
            total = 0.0
            for b in range(B):
                o = _addr(b, t, c, P, M, sp, st, CS, S)
                xo = x[o:]
                so = u_save[o:]
                for s in range(S):
                    value = xo[s] + vc[b * S + s]
                    uc[b * S + s] = value
                    so[s] = value
                    total += value
            if norm_mode == 0:
                continue
            if norm_mode == 1:  # this step's batch statistics
                mean = total / BS
                squares = 0.0
                for j in range(BS):
                    d = uc[j] - mean
                    squares += d * d
                invstd = 1.0 / np.sqrt(squares / BS + eps)
                run_mean[c] = (1.0 - momentum) * run_mean[c] + momentum * mean
                unbiased = squares / (BS - 1) if BS > 1 else 0.0
                run_var[c] = (1.0 - momentum) * run_var[c] + momentum * unbiased
            else:
                mean = np.float64(run_mean[c])
                invstd = 1.0 / np.sqrt(np.float64(run_var[c]) + eps)
            a64 = np.float64(weight[c]) * invstd
            step_a[t * C + c] = a64
            step_b[t * C + c] = np.float64(bias[c]) - mean * a64
            step_mean[t * C + c] = mean
            step_invstd[t * C + c] = invstd
            a_c = step_a[t * C + c]
            b_c = step_b[t * C + c]
            for j in range(BS):
                uc[j] = uc[j] * a_c + b_c
        if noise_mode == 1:  # U + r std(U) noise, the std over S per (sample, channel)
            for ci in range(nc):
                c = c0 + ci
                uc = u[ci]
                for b in range(B):
                    scale = _std(uc[b * S : (b + 1) * S], S, 0.0) * noise
                    noise_scale[(t * B + b) * C + c] = scale
                    scale_t = noise_scale[(t * B + b) * C + c]
                    ro = (t * B + b) * CS + c * S
                    for s in range(S):
                        r[ro + s] = r[ro + s] * scale_t  # the perturbation, kept for the backward pass
                        uc[b * S + s] = uc[b * S + s] + r[ro + s]
        elif noise_mode == 2:  # a [B, F] state (S == 1): the std over the features per sample
            for b in range(B):
                for ci in range(nc):
                    column[ci] = u[ci, b]
                noise_scale[t * B + b] = _std(column, nc, 0.0) * noise
                scale_t = noise_scale[t * B + b]
                ro = t * B * C + b * C
                for ci in range(nc):
                    r[ro + c0 + ci] = r[ro + c0 + ci] * scale_t
                    u[ci, b] = u[ci, b] + r[ro + c0 + ci]
        for ci in range(nc):
            c = c0 + ci
            a = alpha[c]
            bb = beta[c]
            th = theta[c]
            vr = v_reset[c]
            uc = u[ci]
            vc = v[ci]
            for b in range(B):
                yo = y[_addr(b, t, c, P, M, sp, st, CS, S) :]
                for s in range(S):
                    j = b * S + s
                    ut = uc[j]
                    fired, rr, vt = _fire_reset_leak(ut, th, vr, a, bb, soft, zero)
                    vc[j] = vt
                    if analog:
                        z = vt if post else ut
                        if tr:
                            z = z - th
                        yo[s] = _activation(z, act, zero, one)
                    else:
                        yo[s] = one if fired else zero
    for ci in range(nc):
        c = c0 + ci
        for b in range(B):
            for s in range(S):
                v_last[b * CS + c * S + s] = v[ci, b * S + s]


@nb.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def norm_forward(seq, state, params, norm, geometry, flags, consts, scalars):
    """Forward pass. ``seq = (x, y, r, u_save)`` (``r``: the normal numbers, replaced by the perturbations
    ``r * scale`` the noise adds), ``state = (v0, v_last)`` (per element), ``params = (alpha, beta,
    theta, v_reset)`` per channel ``[C]``, ``norm = (weight, bias, running_mean, running_var, step_a,
    step_b, step_mean, step_invstd, noise_scale)`` (the running statistics updated in place in train mode;
    the ``step_*`` ``[T * C]`` and the noise scales written for the backward pass), ``geometry = (P, T, M,
    sp, st, B, C, S)``, ``flags = (soft, analog, act, post, tr, norm_mode, noise_mode)``, ``scalars = (eps,
    momentum, noise)``."""
    C = geometry[6]
    noise_mode = flags[6]
    n_jobs = 1 if noise_mode == 2 else C
    for job in nb.prange(n_jobs):
        c0 = np.int64(0) if noise_mode == 2 else np.int64(job)
        c1 = np.int64(C) if noise_mode == 2 else c0 + 1
        _forward_channels(c0, c1, seq, state, params, norm, geometry, flags, consts, scalars)


@nb.njit(inline="always")
def _sums(g, xhat, n):
    """``(sum(g), sum(g * xhat))`` over ``n`` values, float64, in four interleaved partial sums (independent
    additions the processor overlaps; a reduction does not vectorise without reassociation)."""
    g0 = g1 = g2 = g3 = 0.0
    w0 = w1 = w2 = w3 = 0.0
    stop = n - n % 4
    for j in range(0, stop, 4):
        a0 = np.float64(g[j])
        a1 = np.float64(g[j + 1])
        a2 = np.float64(g[j + 2])
        a3 = np.float64(g[j + 3])
        g0 += a0
        g1 += a1
        g2 += a2
        g3 += a3
        w0 += a0 * np.float64(xhat[j])
        w1 += a1 * np.float64(xhat[j + 1])
        w2 += a2 * np.float64(xhat[j + 2])
        w3 += a3 * np.float64(xhat[j + 3])
    for j in range(stop, n):
        g0 += np.float64(g[j])
        w0 += np.float64(g[j]) * np.float64(xhat[j])
    return (g0 + g1) + (g2 + g3), (w0 + w1) + (w2 + w3)


@nb.njit(inline="always")
def _sum(values, n):
    """``sum(values[:n])`` in float64."""
    total = 0.0
    for j in range(n):
        total += np.float64(values[j])
    return total


@nb.njit(inline="always")
def _backward_body(c, seq, state, params, norm, geometry, soft, analog, act, post, tr, surrogate, norm_mode,
                   noise_mode, consts):  # fmt: skip
    """Backward pass of channel ``c``: BPTT from the saved membranes ``U_t``, with the BatchNorm backward of
    every step. The flags are arguments so that a caller passing constants gets loops without branches."""
    grad_y, u_saved, grad_x, r = seq
    grad_v_last, grad_v0 = state
    alpha, beta, theta, v_reset = params
    step_a, step_b, step_mean, step_invstd, grads = norm
    P, T, M, sp, st, B, C, S = geometry
    BS = B * S
    CS = C * S
    dtype = consts.dtype
    zero = consts[0]
    a = alpha[c]
    bb = beta[c]
    th = theta[c]
    vr = v_reset[c]
    # one step's values of the channel, gathered from the [P, T, M] layout into flat rows (the loops over
    # them are flat, as :mod:`.cpu`'s, and vectorise)
    membrane = np.empty(BS, dtype=dtype)
    row = np.empty(BS, dtype=dtype)  # dL/dY_t in, dL/dU'_t, then dL/dU_t out
    xhat = np.empty(BS, dtype=dtype)
    draws = np.zeros(BS, dtype=dtype)  # the step's noise
    slope = np.empty(BS, dtype=dtype)  # the surrogate derivative
    g_v = np.empty(BS, dtype=dtype)
    for b in range(B):
        for s in range(S):
            g_v[b * S + s] = grad_v_last[b * CS + c * S + s]
    # the parameter gradients per element, summed over time (then over the channel, at the end)
    acc_a = np.zeros(BS, dtype=dtype)
    acc_b = np.zeros(BS, dtype=dtype)
    acc_th = np.zeros(BS, dtype=dtype)
    acc_vr = np.zeros(BS, dtype=dtype)
    norm_grads = np.zeros(2, dtype=np.float64)
    for t in range(T - 1, -1, -1):
        a_c = step_a[t * C + c] if norm_mode else consts[1]
        b_c = step_b[t * C + c] if norm_mode else zero
        mean = step_mean[t * C + c] if norm_mode else zero
        invstd = step_invstd[t * C + c] if norm_mode else consts[1]
        for b in range(B):
            o = _addr(b, t, c, P, M, sp, st, CS, S)
            uo = u_saved[o:]
            gyo = grad_y[o:]
            for s in range(S):
                membrane[b * S + s] = uo[s]
                row[b * S + s] = gyo[s]
        if noise_mode:
            for b in range(B):
                ro = (t * B + b) * CS + c * S
                for s in range(S):
                    draws[b * S + s] = r[ro + s]
        # U'_t as the forward pass computed it (the same spikes); each loop without a branch, so that it
        # vectorises (a branch on a run-time flag inside the loop below kept it scalar: 7x slower with the
        # sigmoid surrogate)
        if norm_mode:
            for j in range(BS):
                xhat[j] = (membrane[j] - mean) * invstd
            for j in range(BS):
                membrane[j] = membrane[j] * a_c + b_c
        if noise_mode:
            for j in range(BS):
                membrane[j] = membrane[j] + draws[j]
        for j in range(BS):  # the surrogate derivative in a loop of its own: the sigmoid's exp vectorises
            slope[j] = _surrogate_grad(membrane[j] - th, surrogate, consts)
        for j in range(BS):
            g_u, da, db, dth, dvr = step_backward(
                membrane[j], th, vr, a, bb, row[j], g_v[j], slope[j], soft, analog, act, post, tr, consts
            )
            acc_a[j] += da
            acc_b[j] += db
            acc_th[j] += dth
            acc_vr[j] += dvr
            row[j] = g_u
        if norm_mode:
            sum_g, sum_gx = _sums(row, xhat, BS)
            norm_grads[0] += sum_gx
            norm_grads[1] += sum_g
            if norm_mode == 1:  # batch statistics: a (g - mean(g) - xhat mean(g xhat))
                mean_g = sum_g / BS
                mean_gx = sum_gx / BS
                for j in range(BS):
                    row[j] = a_c * (row[j] - mean_g - xhat[j] * mean_gx)
            else:
                for j in range(BS):
                    row[j] = row[j] * a_c
        for j in range(BS):
            g_v[j] = row[j]
        for b in range(B):
            gxo = grad_x[_addr(b, t, c, P, M, sp, st, CS, S) :]
            for s in range(S):
                gxo[s] = row[b * S + s]
    for b in range(B):
        for s in range(S):
            grad_v0[b * CS + c * S + s] = g_v[b * S + s]
    grads[0, c] = _sum(acc_a, BS)
    grads[1, c] = _sum(acc_b, BS)
    grads[2, c] = _sum(acc_th, BS)
    grads[3, c] = _sum(acc_vr, BS)
    grads[4, c] = norm_grads[0]
    grads[5, c] = norm_grads[1]


# -- the backward kernels: LIF with its reset and surrogate held constant (the inner loops have no branch),
# and one per surrogate for any other flags (LIAF). Each job is a function of its own, called from its
# parallel loop (a job passed to one shared parallel loop as an argument was compiled again in every
# process).


# The surrogate is a constant in every job: with the surrogate a run-time value, numba (0.6x) compiled a body
# that silently skipped its last statements (the parameter gradients came out zero).


@nb.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _job_any_rectangle(c, seq, state, params, norm, geometry, flags, consts):
    soft, analog, act, post, tr, _, norm_mode, noise_mode = flags
    _backward_body(
        c, seq, state, params, norm, geometry, soft, analog, act, post, tr, 0, norm_mode, noise_mode, consts
    )


@nb.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _job_any_sigmoid(c, seq, state, params, norm, geometry, flags, consts):
    soft, analog, act, post, tr, _, norm_mode, noise_mode = flags
    _backward_body(
        c, seq, state, params, norm, geometry, soft, analog, act, post, tr, 1, norm_mode, noise_mode, consts
    )


@nb.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _job_any_arctan(c, seq, state, params, norm, geometry, flags, consts):
    soft, analog, act, post, tr, _, norm_mode, noise_mode = flags
    _backward_body(
        c, seq, state, params, norm, geometry, soft, analog, act, post, tr, 2, norm_mode, noise_mode, consts
    )


@nb.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _job_lif_hard_rectangle(c, seq, state, params, norm, geometry, flags, consts):
    _backward_body(c, seq, state, params, norm, geometry, 0, 0, 0, 0, 0, 0, flags[6], flags[7], consts)


@nb.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _job_lif_hard_sigmoid(c, seq, state, params, norm, geometry, flags, consts):
    _backward_body(c, seq, state, params, norm, geometry, 0, 0, 0, 0, 0, 1, flags[6], flags[7], consts)


@nb.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _job_lif_hard_arctan(c, seq, state, params, norm, geometry, flags, consts):
    _backward_body(c, seq, state, params, norm, geometry, 0, 0, 0, 0, 0, 2, flags[6], flags[7], consts)


@nb.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _job_lif_soft_rectangle(c, seq, state, params, norm, geometry, flags, consts):
    _backward_body(c, seq, state, params, norm, geometry, 1, 0, 0, 0, 0, 0, flags[6], flags[7], consts)


@nb.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _job_lif_soft_sigmoid(c, seq, state, params, norm, geometry, flags, consts):
    _backward_body(c, seq, state, params, norm, geometry, 1, 0, 0, 0, 0, 1, flags[6], flags[7], consts)


@nb.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _job_lif_soft_arctan(c, seq, state, params, norm, geometry, flags, consts):
    _backward_body(c, seq, state, params, norm, geometry, 1, 0, 0, 0, 0, 2, flags[6], flags[7], consts)


@nb.njit(parallel=True, cache=True, nogil=True)
def _parallel_lif_hard_rectangle(seq, state, params, norm, geometry, flags, consts):
    for c in nb.prange(geometry[6]):
        _job_lif_hard_rectangle(np.int64(c), seq, state, params, norm, geometry, flags, consts)


@nb.njit(parallel=True, cache=True, nogil=True)
def _parallel_lif_hard_sigmoid(seq, state, params, norm, geometry, flags, consts):
    for c in nb.prange(geometry[6]):
        _job_lif_hard_sigmoid(np.int64(c), seq, state, params, norm, geometry, flags, consts)


@nb.njit(parallel=True, cache=True, nogil=True)
def _parallel_lif_hard_arctan(seq, state, params, norm, geometry, flags, consts):
    for c in nb.prange(geometry[6]):
        _job_lif_hard_arctan(np.int64(c), seq, state, params, norm, geometry, flags, consts)


@nb.njit(parallel=True, cache=True, nogil=True)
def _parallel_lif_soft_rectangle(seq, state, params, norm, geometry, flags, consts):
    for c in nb.prange(geometry[6]):
        _job_lif_soft_rectangle(np.int64(c), seq, state, params, norm, geometry, flags, consts)


@nb.njit(parallel=True, cache=True, nogil=True)
def _parallel_lif_soft_sigmoid(seq, state, params, norm, geometry, flags, consts):
    for c in nb.prange(geometry[6]):
        _job_lif_soft_sigmoid(np.int64(c), seq, state, params, norm, geometry, flags, consts)


@nb.njit(parallel=True, cache=True, nogil=True)
def _parallel_lif_soft_arctan(seq, state, params, norm, geometry, flags, consts):
    for c in nb.prange(geometry[6]):
        _job_lif_soft_arctan(np.int64(c), seq, state, params, norm, geometry, flags, consts)


@nb.njit(parallel=True, cache=True, nogil=True)
def _parallel_any_rectangle(seq, state, params, norm, geometry, flags, consts):
    for c in nb.prange(geometry[6]):
        _job_any_rectangle(np.int64(c), seq, state, params, norm, geometry, flags, consts)


@nb.njit(parallel=True, cache=True, nogil=True)
def _parallel_any_sigmoid(seq, state, params, norm, geometry, flags, consts):
    for c in nb.prange(geometry[6]):
        _job_any_sigmoid(np.int64(c), seq, state, params, norm, geometry, flags, consts)


@nb.njit(parallel=True, cache=True, nogil=True)
def _parallel_any_arctan(seq, state, params, norm, geometry, flags, consts):
    for c in nb.prange(geometry[6]):
        _job_any_arctan(np.int64(c), seq, state, params, norm, geometry, flags, consts)


_LIF_KERNELS = (
    (_parallel_lif_hard_rectangle, _parallel_lif_hard_sigmoid, _parallel_lif_hard_arctan),
    (_parallel_lif_soft_rectangle, _parallel_lif_soft_sigmoid, _parallel_lif_soft_arctan),
)
_ANY_KERNELS = (_parallel_any_rectangle, _parallel_any_sigmoid, _parallel_any_arctan)


def norm_backward(seq, state, params, norm, geometry, flags, consts):
    """Backward pass, a job per channel. ``seq = (grad_y, u_saved, grad_x, noise)`` (``u_saved``: the forward
    pass's ``U_t``; ``noise``: the perturbations it added), ``state = (grad_v_last, grad_v0)``, ``params`` per
    channel as forward, ``norm = (step_a, step_b, step_mean, step_invstd, grads)`` with ``grads`` float64
    ``[6, C]``: the gradients of alpha, beta, theta, v_reset (per channel) and of the BatchNorm's gamma and
    beta, written here; ``flags = (soft, analog, act, post, tr, surrogate, norm_mode, noise_mode)``."""
    soft, analog, surrogate = flags[0], flags[1], flags[5]
    kernel = _ANY_KERNELS[surrogate] if analog else _LIF_KERNELS[soft][surrogate]
    kernel(seq, state, params, norm, geometry, flags, consts)
