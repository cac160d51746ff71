"""The fused multi-step LIF / LIAF kernels (bidl.functional.kernels) against the reference step loop."""

import functools

import pytest
import torch

from bidl import LIAF, LIF
from bidl.functional import (
    ACTIVATIONS,
    default_neuron_kernel,
    fused_kernel_for,
    get_surrogate,
    lif_multi_step,
    lif_multi_step_reference,
    neuron_kernel,
)
from bidl.functional.kernels import lif_multi_step_fused

pytest.importorskip("numba")


# (reset, analog, activation, liaf_mode, liaf_readout, surrogate): every compiled kernel and every value of
# every flag (the general LIAF kernel takes its flags at run time: a covering set, not the product)
MODES = [
    # LIF: every specialised kernel (reset x surrogate)
    ("hard", False, None, None, None, "rectangle"),
    ("soft", False, None, None, None, "rectangle"),
    ("hard", False, None, None, None, "sigmoid"),
    ("soft", False, None, None, None, "sigmoid"),
    ("hard", False, None, None, None, "arctan"),
    ("soft", False, None, None, None, "arctan"),
    # the authors' LIAF (ReLU of the pre-reset U): every specialised kernel
    ("hard", True, "relu", "NTR", "pre_reset", "rectangle"),
    ("hard", True, "relu", "NTR", "pre_reset", "sigmoid"),
    ("hard", True, "relu", "NTR", "pre_reset", "arctan"),
    ("soft", True, "relu", "NTR", "pre_reset", "rectangle"),
    ("soft", True, "relu", "NTR", "pre_reset", "sigmoid"),
    ("soft", True, "relu", "NTR", "pre_reset", "arctan"),
    # the general LIAF kernel: every activation, readout and threshold removal
    ("soft", True, "relu", "TR", "post_leak", "sigmoid"),
    ("hard", True, "sigmoid", "NTR", "post_leak", "arctan"),
    ("hard", True, "tanh", "TR", "pre_reset", "rectangle"),
    ("soft", True, "identity", "NTR", "pre_reset", "rectangle"),
]


def mode_id(mode):
    reset, analog, act, liaf_mode, readout, surrogate = mode
    return f"{reset}-{'LIAF-' + act + '-' + liaf_mode + '-' + readout if analog else 'LIF'}-{surrogate}"


def step_kwargs(mode, scale=None):
    reset, analog, act, liaf_mode, readout, surrogate = mode
    kwargs = dict(reset=reset, spike_fn=get_surrogate(surrogate, scale), analog=analog)
    if analog:
        kwargs.update(activation=ACTIVATIONS[act], liaf_mode=liaf_mode, liaf_readout=readout)
    return kwargs


def random_case(seed, dtype=torch.float32, sharing="all", layout="time_first"):
    """A random shape (several chunks of neurons, odd sizes), input, initial state, learnable parameters."""
    g = torch.Generator().manual_seed(seed)
    T = int(torch.randint(2, 9, (1,), generator=g))
    B = int(torch.randint(1, 4, (1,), generator=g))
    spatial = [[int(torch.randint(1, 400, (1,), generator=g))], [3, 7, 11], [5, 13, 17]][seed % 3]
    C = spatial[0]
    shape = (B, T, *spatial) if layout == "batch_first" else (T, B, *spatial)
    x = (torch.randn(shape, generator=g, dtype=dtype) * 0.6 + 0.2).requires_grad_()
    param_shape = (1, C) + (1,) * (len(spatial) - 1) if sharing == "channel" else ()

    def param(low, high):
        return (low + (high - low) * torch.rand(param_shape, generator=g, dtype=dtype)).requires_grad_()

    params = dict(
        alpha=param(0.2, 0.9), beta=param(-0.05, 0.05), theta=param(0.3, 0.7), v_reset=param(-0.2, 0)
    )
    v0 = (torch.randn((B, *spatial), generator=g, dtype=dtype) * 0.3).requires_grad_()
    return x, v0, params


def run(fn, x, v0, params, kwargs, layout):
    x_seq = x.transpose(0, 1) if layout == "batch_first" else x
    y, v_last = fn(x_seq, v0, **params, **kwargs)
    g = torch.Generator().manual_seed(1)
    loss = (y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum() + (v_last**2).sum()
    inputs = [x, v0, *params.values()]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)
    return y, v_last, grads


@pytest.mark.parametrize("mode", MODES, ids=mode_id)
@pytest.mark.parametrize("sharing", ["all", "channel"])
@pytest.mark.parametrize("layout", ["time_first", "batch_first"])
def test_fused_and_reference_give_identical_spikes_and_gradients(mode, sharing, layout):
    kwargs = step_kwargs(mode)
    for seed in range(3):
        x, v0, params = random_case(seed, sharing=sharing, layout=layout)
        y_ref, v_ref, g_ref = run(lif_multi_step_reference, x, v0, params, kwargs, layout)
        y_fused, v_fused, g_fused = run(lif_multi_step_fused, x, v0, params, kwargs, layout)
        assert g_ref[0].abs().sum() > 0, "the case must carry a gradient to the input"
        if not kwargs["analog"]:
            assert 0 < y_ref.mean() < 1, "the case must fire and stay silent somewhere"
            assert torch.equal(y_fused, y_ref)
        else:
            torch.testing.assert_close(y_fused, y_ref, rtol=1e-6, atol=1e-6)
        assert torch.equal(v_fused, v_ref)
        names = ["x", "v0", "alpha", "beta", "theta", "v_reset"]
        for name, a, b in zip(names, g_fused, g_ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=lambda m, n=name: f"grad {n}: {m}")


@pytest.mark.parametrize("mode", [MODES[0], MODES[1], MODES[12], MODES[13]], ids=mode_id)
def test_gradcheck_in_float64_away_from_the_surrogate_window(mode):
    # The surrogate is not the derivative of the step: gradcheck holds where no membrane lies in the
    # rectangle's window (|U - theta| < w/2), so every other path (leak, reset, readout, parameters, the
    # initial state) is checked against finite differences; the surrogate path is checked against the
    # reference above.
    reset, analog, act, liaf_mode, readout, _ = mode
    kwargs = step_kwargs((reset, analog, act, liaf_mode, readout, "rectangle"), scale=1e-3)
    for seed in range(50):
        x, v0, params = random_case(seed, dtype=torch.float64, sharing="channel")
        x = x.detach()[:, :, :3].requires_grad_()
        v0 = v0.detach()[:, :3].requires_grad_()
        params = {k: p.detach()[:, :3].clone().requires_grad_() if p.dim() else p for k, p in params.items()}
        with torch.no_grad():
            u_margin = _membrane_margin(x, v0, params, kwargs)
        if u_margin > 1e-2:
            break
    else:
        pytest.fail("no case found with every membrane away from the threshold")

    def fused(x, v0, alpha, beta, theta, v_reset):
        p = dict(alpha=alpha, beta=beta, theta=theta, v_reset=v_reset)
        y, v_last = lif_multi_step_fused(x, v0, **p, **kwargs)
        return y, v_last

    assert torch.autograd.gradcheck(fused, (x, v0, *params.values()), eps=1e-6, atol=1e-6)


def _membrane_margin(x, v0, params, kwargs):
    """The smallest |U - theta| over the sequence (the reference loop, U recorded step by step)."""
    v, margin = v0, float("inf")
    for x_t in x:
        u = x_t + v
        margin = min(margin, float((u - params["theta"]).abs().min()))
        _, v = lif_multi_step_reference(x_t[None], v, **params, **kwargs)
    return margin


def test_the_cpu_kernel_saves_only_its_input_for_backward():
    # the backward pass recomputes the membranes from x; besides x only per-neuron arrays (the initial state
    # and the four parameters, each the size of one step) are kept
    x = torch.randn(20, 4, 8, 6, 6, requires_grad=True)

    def saved(fn):
        tensors = []

        def pack(t):
            tensors.append(t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(x, alpha=0.5)[0].sum()
        return tensors

    fused = saved(lif_multi_step_fused)
    step_bytes = x[0].numel() * x.element_size()
    assert any(t is x for t in fused)
    assert sum(t.numel() * t.element_size() for t in fused if t is not x) <= 5 * step_bytes
    reference = sum(t.numel() * t.element_size() for t in saved(lif_multi_step_reference))
    assert reference >= 3 * x.numel() * x.element_size()


def test_modules_use_the_fused_kernel_by_default_and_match_the_reference():
    torch.manual_seed(0)
    x = torch.randn(3, 10, 4, 9, 9) + 0.3
    for neuron in (
        LIF(alpha=0.6, sharing="channel", channels=4, learnable=True),
        LIAF(alpha=0.6, reset="soft", liaf_mode="TR", activation="tanh"),
    ):
        assert fused_kernel_for(x.transpose(0, 1), **neuron._step_kwargs(x.dim() - 1)) == "cpu"
        y = neuron(x)
        with neuron_kernel("reference"):
            assert fused_kernel_for(x.transpose(0, 1), **neuron._step_kwargs(x.dim() - 1)) is None
            y_ref = neuron(x)
        torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-6)
        assert y.shape == x.shape and y.is_contiguous()


def test_the_reference_loop_runs_where_no_fused_kernel_applies():
    x = torch.rand(4, 2, 3)
    assert fused_kernel_for(x, norm=torch.nn.Identity()) is None  # a norm that is not a BatchNorm
    assert fused_kernel_for(x, noise=1e-3, alpha=torch.rand(2, 3)) is None  # noise, alpha per element
    assert fused_kernel_for(x.half()) is None  # no float16 CPU kernel
    assert fused_kernel_for(x, spike_fn=lambda d: (d > 0).float()) is None  # a user's surrogate
    assert fused_kernel_for(x, spike_fn=get_surrogate("sigmoid", 2.0)) == "cpu"
    assert fused_kernel_for(x, spike_fn=functools.partial(get_surrogate("sigmoid"), k=3.0)) == "cpu"
    assert fused_kernel_for(x, analog=True, activation=torch.nn.functional.gelu) is None
    y, v = lif_multi_step(x.half(), alpha=0.5)  # falls back, same contract
    assert y.dtype == torch.float16 and v.shape == (2, 3)
    with pytest.raises(ValueError, match="no fused kernel"):
        lif_multi_step_fused(x, norm=torch.nn.Identity())


def test_neuron_kernel_choice_and_its_errors(monkeypatch):
    assert default_neuron_kernel() == "fused"
    with neuron_kernel("reference"):
        assert default_neuron_kernel() == "reference"
        with neuron_kernel("fused"):
            assert default_neuron_kernel() == "fused"
        assert default_neuron_kernel() == "reference"
    with pytest.raises(ValueError, match="unknown 'fast'"), neuron_kernel("fast"):
        pass
    monkeypatch.setenv("BIDL_NEURON_KERNEL", "reference")
    assert default_neuron_kernel() == "reference"
    assert fused_kernel_for(torch.rand(3, 2)) is None
    monkeypatch.setenv("BIDL_NEURON_KERNEL", "numba")
    with pytest.raises(ValueError, match="BIDL_NEURON_KERNEL: unknown neuron kernel 'numba'"):
        default_neuron_kernel()


def test_every_activation_and_surrogate_of_bidl_has_a_kernel_code_and_unknown_arguments_are_refused():
    from bidl.functional import SURROGATE_NAMES, kernels

    assert set(kernels._ACTIVATIONS.values()) == set(ACTIVATIONS) == set(kernels._ACTIVATION_IDS)
    assert (
        {name for name, _ in kernels._SURROGATES.values()}
        == set(SURROGATE_NAMES)
        == set(kernels._SURROGATE_IDS)
    )
    # the default scales are the surrogate functions' own
    assert kernels._surrogate_spec(get_surrogate("sigmoid")) == ("sigmoid", 4.0)
    assert kernels._surrogate_spec(get_surrogate("arctan", 3.0)) == ("arctan", 3.0)
    x = torch.rand(3, 2, 4)
    for call in (lif_multi_step, lif_multi_step_fused, lif_multi_step_reference):
        with pytest.raises(TypeError, match="thta"):
            call(x, thta=0.4)


def test_a_strided_input_is_copied_once_and_gives_the_same_result():
    x = torch.randn(5, 3, 8)[:, :, ::2]  # neither time-first nor batch-first contiguous
    y, v = lif_multi_step_fused(x, alpha=0.4)
    y_ref, v_ref = lif_multi_step_reference(x, alpha=0.4)
    assert torch.equal(y, y_ref) and torch.equal(v, v_ref)


def test_the_vectorisable_exp_of_the_sigmoid_surrogate_is_accurate():
    np = pytest.importorskip("numpy")
    from bidl.functional.kernels import cpu

    a = np.linspace(0.0, 20.0, 2001)
    for dtype, rtol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        consts = cpu.constants(dtype, 4.0)
        got = np.array([cpu.exp_negative_compiled(dtype(v), consts) for v in a])
        np.testing.assert_allclose(got, np.exp(-a.astype(dtype).astype(np.float64)), rtol=rtol, atol=0)
    clamped = cpu.exp_negative_compiled(np.float32(50.0), cpu.constants(np.float32, 4.0))
    assert clamped == pytest.approx(np.exp(-20.0), rel=1e-5)
