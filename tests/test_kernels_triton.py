"""The Triton kernels (bidl.functional.kernels.triton) against the numba kernels and the reference step loop.

They run under Triton's interpreter on CPU tensors (a private copy of the module is loaded with
``TRITON_INTERPRET=1``: Triton chooses between its compiler and its interpreter when a kernel is defined, so
the variable must be set when the module is executed) and, where a CUDA device is present, compiled on it.
Where Triton is not installed — CI installs none, it is the optional ``gpu`` extra — every test but the
last is skipped; the last checks that the CPU path never needs Triton.
"""

import importlib.util
import sys

import pytest
import torch

import bidl.functional.kernels as kernels
from bidl.functional import ACTIVATIONS, get_surrogate, lif_multi_step, lif_multi_step_reference
from bidl.functional.kernels import _Config, _CpuImplementation, _FusedLIF, fused_kernel_for

# (reset, analog, activation, liaf_mode, liaf_readout, surrogate): every value of every flag appears
MODES = [
    ("hard", False, None, None, None, "rectangle"),
    ("soft", False, None, None, None, "rectangle"),
    ("hard", False, None, None, None, "sigmoid"),
    ("soft", False, None, None, None, "arctan"),
    ("hard", True, "relu", "NTR", "pre_reset", "rectangle"),
    ("soft", True, "relu", "NTR", "pre_reset", "sigmoid"),
    ("soft", True, "relu", "TR", "post_leak", "sigmoid"),
    ("hard", True, "sigmoid", "NTR", "post_leak", "arctan"),
    ("soft", True, "sigmoid", "TR", "pre_reset", "rectangle"),
    ("hard", True, "tanh", "TR", "pre_reset", "rectangle"),
    ("soft", True, "tanh", "NTR", "post_leak", "arctan"),
    ("soft", True, "identity", "NTR", "pre_reset", "rectangle"),
    ("hard", True, "identity", "TR", "post_leak", "sigmoid"),
]
SMOOTH_MODES = [m for m in MODES if m[-1] != "rectangle"]


def mode_id(mode):
    reset, analog, act, liaf_mode, readout, surrogate = mode
    return f"{reset}-{'LIAF-' + act + '-' + liaf_mode + '-' + readout if analog else 'LIF'}-{surrogate}"


def step_kwargs(mode):
    reset, analog, act, liaf_mode, readout, surrogate = mode
    kwargs = dict(reset=reset, spike_fn=get_surrogate(surrogate), analog=analog)
    if analog:
        kwargs.update(activation=ACTIVATIONS[act], liaf_mode=liaf_mode, liaf_readout=readout)
    return kwargs


def config_for(implementation, mode):
    kwargs = dict(activation=torch.relu, liaf_mode="NTR", liaf_readout="pre_reset") | step_kwargs(mode)
    return _Config(implementation, **kwargs)


def load_interpreted_copy():
    """A private copy of the module with its kernels defined under the interpreter (sys.modules untouched)."""
    spec = importlib.util.find_spec("bidl.functional.kernels.triton")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "1")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=["interpreter", "cuda"])
def backend(request):
    """``(module, device)``: the interpreted kernels on the CPU, the compiled ones on a CUDA device."""
    pytest.importorskip("triton")
    if request.param == "interpreter":
        return load_interpreted_copy(), torch.device("cpu")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from bidl.functional.kernels import triton as triton_kernels

    if triton_kernels.interpreted():
        pytest.skip("TRITON_INTERPRET is set: the compiled kernels are not defined")
    return triton_kernels, torch.device("cuda")


def random_case(seed, layout, dtype=torch.float32):
    """A random shape (several blocks of 512 neurons for some seeds, a partial last block), an input that
    fires and stays silent, an initial state and per-channel parameters."""
    g = torch.Generator().manual_seed(seed)
    T = int(torch.randint(2, 7, (1,), generator=g))
    B = int(torch.randint(2, 4, (1,), generator=g))
    spatial = [[int(torch.randint(1, 300, (1,), generator=g))], [3, 7, 11], [5, 13, 17]][seed % 3]
    shape = (B, T, *spatial) if layout == "batch_first" else (T, B, *spatial)
    x = (torch.randn(shape, generator=g) * 0.6 + 0.2).to(dtype).requires_grad_()
    param_shape = (1, spatial[0]) + (1,) * (len(spatial) - 1)

    def param(low, high):
        return (low + (high - low) * torch.rand(param_shape, generator=g)).to(dtype).requires_grad_()

    params = dict(
        alpha=param(0.2, 0.9), beta=param(-0.05, 0.05), theta=param(0.3, 0.7), v_reset=param(-0.2, 0)
    )
    v0 = (torch.randn((B, *spatial), generator=g) * 0.3).to(dtype).requires_grad_()
    return x, v0, params


def run(fn, x, v0, params, layout):
    """Outputs and the gradients of every input of a loss weighing each output by a fixed random factor."""
    x_seq = x.transpose(0, 1) if layout == "batch_first" else x
    y, v_last = fn(x_seq, v0, *params.values())
    g = torch.Generator().manual_seed(1)
    weights = torch.randn(y.shape, generator=g).to(y.device, y.dtype)
    loss = (y * weights).float().sum() + (v_last.float() ** 2).sum()
    inputs = [x, v0, *params.values()]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)
    return y, v_last, grads


def on(device, x, v0, params):
    """The case's leaves copied to ``device`` (new leaves, so their gradients are theirs)."""

    def move(t):
        return t.detach().to(device).requires_grad_()

    return move(x), move(v0), {k: move(p) for k, p in params.items()}


NAMES = ["x", "v0", "alpha", "beta", "theta", "v_reset"]


@pytest.mark.parametrize("mode", MODES, ids=mode_id)
@pytest.mark.parametrize("layout", ["time_first", "batch_first"])  # P = 1 and P = B
def test_triton_and_reference_give_identical_spikes_and_gradients(backend, mode, layout):
    module, device = backend
    config = config_for(module.Implementation, mode)
    kwargs = step_kwargs(mode)

    def triton_fused(x, v0, alpha, beta, theta, v_reset):
        return _FusedLIF.apply(x, v0, alpha, beta, theta, v_reset, config)

    def reference(x, v0, alpha, beta, theta, v_reset):
        return lif_multi_step_reference(x, v0, alpha=alpha, beta=beta, theta=theta, v_reset=v_reset, **kwargs)

    x, v0, params = random_case(MODES.index(mode), layout)
    y_ref, v_ref, g_ref = run(reference, x, v0, params, layout)
    y, v_last, grads = run(triton_fused, *on(device, x, v0, params), layout)
    y, v_last, grads = y.cpu(), v_last.cpu(), [g.cpu() for g in grads]
    x_seq = x.transpose(0, 1) if layout == "batch_first" else x
    assert y.shape == y_ref.shape and y.stride() == x_seq.stride()  # the input's layout is kept
    assert g_ref[0].abs().sum() > 0, "the case must carry a gradient to the input"
    if not kwargs["analog"]:
        assert 0 < y_ref.mean() < 1, "the case must fire and stay silent somewhere"
        assert torch.equal(y, y_ref)
    else:
        torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
    assert torch.equal(v_last, v_ref)
    for name, a, b in zip(NAMES, grads, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=lambda m, n=name: f"grad {n}: {m}")


PARAM_RANGES = [(0.2, 0.9), (-0.05, 0.05), (0.3, 0.7), (-0.2, 0.0)]  # alpha, beta, theta, v_reset


def flat_case(seed, layout, dtype):
    """Flat kernel arguments ``[P, T, M]``: the sequence, the initial state and the four parameters."""
    g = torch.Generator().manual_seed(seed)
    P, T, M = (1, 5, 1500) if layout == "time_first" else (3, 4, 700)
    x = torch.randn(P * T * M, generator=g) * 0.6 + 0.2
    v0 = torch.randn(P * M, generator=g) * 0.3
    params = [low + (high - low) * torch.rand(P * M, generator=g) for low, high in PARAM_RANGES]
    geometry = (P, T, M, 0, M) if P == 1 else (P, T, M, T * M, M)
    return [t.to(dtype) for t in (x, v0, *params)], geometry


def float32_membranes(x, v0, params, geometry, config):
    """The pre-fire membranes U in float32 (the equations step by step) in the flat ``[P, T, M]`` layout."""
    P, T, M, _, _ = geometry
    xs = x.float().view(P, T, M)
    alpha, beta, theta, v_reset = (p.float().view(P, M) for p in params)
    v, out = v0.float().view(P, M), []
    for t in range(T):
        u = xs[:, t] + v
        fired = u - theta > 0
        r = torch.where(fired, u - theta, u) if config.soft else torch.where(fired, v_reset, u)
        v = alpha * r + beta
        out.append(u)
    return torch.stack(out, 1).reshape(-1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("mode", MODES, ids=mode_id)
def test_half_precision_is_float32_math_on_the_upcast_tensors_rounded_once(backend, mode, dtype):
    # The kernels load, upcast, compute in float32 and round on store: every output equals the float32
    # kernel's on the upcast inputs rounded to the storage type, within one unit in its last place (the
    # float32 results may differ in their last bits where exp / tanh are evaluated differently).
    module, device = backend
    config = config_for(module.Implementation, mode)
    layout = ["time_first", "batch_first"][MODES.index(mode) % 2]
    (x, v0, *params), (P, T, M, sp, st) = flat_case(MODES.index(mode), layout, dtype)
    geometry = (P, T, M, sp, st)

    def close(out, ref32):
        torch.testing.assert_close(out.cpu().float(), ref32.to(dtype).float(), rtol=torch.finfo(dtype).eps,
                                   atol=1e-5)  # fmt: skip

    # forward (the CPU kernel writes no membranes: the float32 U comes from the equations, step by step)
    y, u, v_last = torch.empty_like(x), torch.empty_like(x), torch.empty_like(v0)
    out = [t.to(device) for t in (y, u, v_last)]
    module.Implementation.forward(*(t.to(device) for t in (x, v0, *params)), *out, *geometry, config)
    ref = [torch.empty_like(t, dtype=torch.float32) for t in (y, v_last)]
    _CpuImplementation.forward(
        *(t.float() for t in (x, v0, *params)), ref[0], None, ref[1], *geometry, config
    )
    ref.insert(1, float32_membranes(x, v0, params, geometry, config))
    if not config.analog:
        assert torch.equal(out[0].cpu().float(), ref[0]), "the spikes are those of float32"
        recomputed = out[1].cpu().float().view(P, T, M) - params[2].float().view(P, 1, M) > 0
        assert torch.equal(recomputed.float().view(-1), ref[0]), "the stored U gives the backward its spikes"
    for a, b in zip(out, ref, strict=True):
        close(a, b)
    # backward from the stored U: against the same kernel in float32 on the upcast U (the float32 kernel is
    # checked against the reference loop above; the CPU kernel recomputes U from x, so it cannot take this U)
    g = torch.Generator().manual_seed(2)
    gy, gvl = torch.randn(x.shape, generator=g).to(dtype), torch.randn(v0.shape, generator=g).to(dtype)
    u = out[1]
    grads = [torch.empty_like(u)] + [torch.empty_like(v0, device=device) for _ in range(5)]
    module.Implementation.backward(gy.to(device), u, v0.to(device), gvl.to(device),
                                   *(p.to(device) for p in params), *grads, *geometry, config)  # fmt: skip
    grads_ref = [torch.empty(t.shape, device=device) for t in (x, v0, v0, v0, v0, v0)]
    module.Implementation.backward(
        *(t.float().to(device) for t in (gy, u, v0, gvl, *params)), *grads_ref, *geometry, config
    )
    assert grads_ref[0].abs().sum() > 0
    for name, a, b in zip(NAMES, grads, grads_ref, strict=True):
        try:
            close(a, b)
        except AssertionError as error:
            raise AssertionError(f"grad {name}: {error}") from None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("mode", SMOOTH_MODES, ids=mode_id)
def test_half_precision_outputs_and_gradients_are_close_to_the_float32_reference(backend, mode, dtype):
    # Against the float32 reference loop on the same (rounded) input: the forward pass is the same float32
    # math, so the spikes are identical and the rest differs by the rounding of the stored outputs. The
    # backward pass reads U rounded to the storage type, so the gradients carry that rounding through the
    # reset and surrogate terms and through BPTT, then are rounded themselves: within 4 units in the last
    # place of the storage type, relative to the largest gradient (smooth surrogates only: a rectangle's
    # edge makes the gradient of one step jump where the rounding of U crosses it).
    module, device = backend
    config = config_for(module.Implementation, mode)
    kwargs = step_kwargs(mode)
    layout = ["time_first", "batch_first"][SMOOTH_MODES.index(mode) % 2]

    def triton_fused(x, v0, alpha, beta, theta, v_reset):
        return _FusedLIF.apply(x, v0, alpha, beta, theta, v_reset, config)

    def reference(x, v0, alpha, beta, theta, v_reset):
        return lif_multi_step_reference(x, v0, alpha=alpha, beta=beta, theta=theta, v_reset=v_reset, **kwargs)

    x, v0, params = random_case(MODES.index(mode), layout, dtype=dtype)
    upcast = on("cpu", x.float(), v0.float(), {k: p.float() for k, p in params.items()})
    y_ref, v_ref, g_ref = run(reference, *upcast, layout)
    y, v_last, grads = run(triton_fused, *on(device, x, v0, params), layout)
    assert y.dtype == v_last.dtype == dtype
    eps = torch.finfo(dtype).eps
    if not kwargs["analog"]:
        assert torch.equal(y.cpu().float(), y_ref)
    torch.testing.assert_close(y.cpu().float(), y_ref, rtol=eps, atol=1e-5)
    torch.testing.assert_close(v_last.cpu().float(), v_ref, rtol=eps, atol=1e-5)
    for name, a, b in zip(NAMES, grads, g_ref, strict=True):
        assert a.dtype == dtype
        torch.testing.assert_close(a.cpu().float(), b, rtol=0, atol=4 * eps * float(b.abs().max()),
                                   msg=lambda m, n=name: f"grad {n}: {m}")  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_a_membrane_rounding_onto_theta_is_stored_above_it(backend, dtype):
    # U = theta + a little (a float32 sum of two storage values) fires, and rounds onto theta: the stored U is
    # the next value up (the bit pattern one further from zero above, one nearer below), so the backward
    # pass recomputes the spike; the hard reset then passes no gradient to U but the surrogate's.
    module, device = backend
    mode = ("hard", False, None, None, None, "rectangle")
    config = config_for(module.Implementation, mode)
    theta = torch.tensor([0.5, 0.3, -0.5, 2.0], dtype=dtype)
    x, v0 = theta.clone(), theta.abs() * torch.finfo(dtype).eps / 8  # under half a unit in the last place
    assert torch.all((x.float() + v0.float()).to(dtype) == theta), "the case must round onto theta"
    alpha, beta, v_reset = torch.full_like(theta, 0.5), torch.zeros_like(theta), torch.zeros_like(theta)
    y, u, v_last = (torch.empty_like(theta, device=device) for _ in range(3))
    inputs = (x, v0, alpha, beta, theta, v_reset)
    module.Implementation.forward(*(t.to(device) for t in inputs), y, u, v_last, 1, 1, 4, 0, 4, config)
    assert torch.equal(y.cpu(), torch.ones_like(theta))
    bits, theta_bits = u.cpu().view(torch.int16), theta.view(torch.int16)
    assert torch.equal(bits, torch.where(theta > 0, theta_bits + 1, theta_bits - 1))
    grads = [torch.empty_like(theta, device=device) for _ in range(6)]
    gy, gvl = torch.ones_like(theta, device=device), torch.ones_like(theta, device=device)
    params = (t.to(device) for t in (alpha, beta, theta, v_reset))
    module.Implementation.backward(gy, u, v0.to(device), gvl, *params, *grads, 1, 1, 4, 0, 4, config)
    # dL/dV = dL/dY = 1, the rectangle's derivative 1 (|U - theta| < 1/2); fired: dR/dU = 0, dR/dF =
    # v_reset - U, so dL/dU = alpha * (v_reset - U) + 1 (silent, it would be alpha more)
    expected = alpha.float() * (v_reset.float() - u.cpu().float()) + 1
    torch.testing.assert_close(grads[0].cpu().float(), expected, rtol=torch.finfo(dtype).eps, atol=0)


def test_the_interpreted_kernels_are_available_anywhere():
    pytest.importorskip("triton")
    module = load_interpreted_copy()
    assert module.interpreted() and module.available()


def test_the_cpu_path_needs_no_triton(monkeypatch):
    # Runs without Triton too (as on CI): with ``import triton`` failing, the module raises ImportError,
    # which the dispatcher takes as "no Triton kernels", and CPU tensors take the numba kernels.
    monkeypatch.setitem(sys.modules, "triton", None)  # ``import triton`` raises ImportError
    monkeypatch.delitem(sys.modules, "bidl.functional.kernels.triton", raising=False)
    monkeypatch.delattr(kernels, "triton", raising=False)
    with pytest.raises(ImportError):
        importlib.import_module("bidl.functional.kernels.triton")
    assert kernels._triton_kernels.__wrapped__() is None
    x = torch.rand(4, 2, 3)
    assert fused_kernel_for(x) == "cpu"
    y, v = lif_multi_step(x, alpha=0.5)
    assert torch.equal(y, lif_multi_step_reference(x, alpha=0.5)[0])
