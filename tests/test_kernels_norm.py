"""The fused CPU kernel with BatchNorm on the membrane and training noise (bidl.functional.kernels.cpu_norm)
against the reference step loop."""

import copy

import pytest
import torch
from torch import nn

from bidl import LIF, ConvLIF
from bidl.functional import (
    ACTIVATIONS,
    fused_kernel_for,
    get_surrogate,
    lif_multi_step_reference,
    neuron_kernel,
)
from bidl.functional.kernels import lif_multi_step_fused

pytest.importorskip("numba")

SHAPES = {  # state [B, C, *S] and its BatchNorm
    "4d": ((3, 4, 5, 6), nn.BatchNorm2d),
    "3d": ((3, 4, 7), nn.BatchNorm1d),
    "2d": ((5, 6), nn.BatchNorm1d),
}

# (state, bn mode, noise, sharing, reset, neuron, layout): a covering set of the options, not their product
CASES = [
    ("4d", "train", 0.0, "all", "hard", "lif", "time_first"),
    ("4d", "train", 1e-3, "channel", "soft", "liaf_pre", "batch_first"),
    ("4d", "eval", 0.1, "all", "soft", "liaf_post", "time_first"),
    ("4d", "eval", 0.0, "channel", "hard", "lif", "batch_first"),
    ("3d", "train", 0.1, "all", "hard", "liaf_tr", "batch_first"),
    ("3d", "train", 1e-3, "channel", "hard", "liaf_post", "time_first"),
    ("3d", "eval", 1e-3, "all", "soft", "lif", "time_first"),
    ("2d", "train", 0.0, "channel", "soft", "liaf_pre", "time_first"),
    ("2d", "train", 0.1, "all", "hard", "lif", "batch_first"),
    ("2d", "eval", 1e-3, "channel", "hard", "liaf_post", "batch_first"),
    ("2d", "train", 1e-3, "all", "soft", "lif", "time_first"),
    ("4d", "train", 0.1, "all", "hard", "lif", "time_first"),
    ("4d", "none", 1e-3, "all", "hard", "lif", "batch_first"),
    ("2d", "none", 0.1, "channel", "soft", "liaf_pre", "time_first"),
]

NEURONS = {
    "lif": dict(analog=False),
    "liaf_pre": dict(analog=True, activation=ACTIVATIONS["relu"], liaf_readout="pre_reset"),
    "liaf_post": dict(analog=True, activation=ACTIVATIONS["relu"], liaf_readout="post_leak"),
    "liaf_tr": dict(analog=True, activation=ACTIVATIONS["relu"], liaf_readout="pre_reset", liaf_mode="TR"),
}


def make_case(state, bn_mode, sharing, layout, dtype, seed=0, T=6):
    shape, bn_cls = SHAPES[state]
    g = torch.Generator().manual_seed(seed)
    full = (shape[0], T, *shape[1:]) if layout == "batch_first" else (T, *shape)
    x = torch.randn(full, generator=g, dtype=dtype) * 0.8 + 0.3
    C = shape[1]
    param_shape = (1, C) + (1,) * (len(shape) - 2) if sharing == "channel" else ()

    def param(low, high):
        return low + (high - low) * torch.rand(param_shape, generator=g, dtype=dtype)

    params = dict(
        alpha=param(0.2, 0.9), beta=param(-0.05, 0.05), theta=param(0.3, 0.7), v_reset=param(-0.2, 0)
    )
    v0 = torch.randn(shape, generator=g, dtype=dtype) * 0.3
    bn = None
    if bn_mode != "none":
        bn = bn_cls(C).to(dtype)
        with torch.no_grad():
            bn.weight.copy_(0.5 + torch.rand(C, generator=g, dtype=dtype))
            bn.bias.copy_(0.3 * torch.randn(C, generator=g, dtype=dtype))
            bn.running_mean.copy_(0.3 * torch.randn(C, generator=g, dtype=dtype))
            bn.running_var.copy_(0.5 + torch.rand(C, generator=g, dtype=dtype))
        bn.train(bn_mode == "train")
    return x, v0, params, bn


def run(fn, x, v0, params, bn, noise, kwargs, layout, seed=7):
    """Outputs, final state and gradients of a weighted loss; the torch seed set before the run."""
    x = x.detach().clone().requires_grad_()
    v0 = v0.detach().clone().requires_grad_()
    params = {k: p.detach().clone().requires_grad_() for k, p in params.items()}
    x_seq = x.transpose(0, 1) if layout == "batch_first" else x
    torch.manual_seed(seed)
    y, v = fn(x_seq, v0, norm=bn, noise=noise, **params, **kwargs)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view(y.shape)
    ((y * weights).sum() + (v * v).sum()).backward()
    grads = [x.grad, v0.grad, *(p.grad for p in params.values())]
    if bn is not None:
        grads += [bn.weight.grad, bn.bias.grad]
    leaves = [x, v0, *params.values()] + ([bn.weight, bn.bias] if bn is not None else [])
    # a parameter the neuron does not read (v_reset with a soft reset) has no gradient on the reference path
    return y, v, [torch.zeros_like(t) if g is None else g for g, t in zip(grads, leaves, strict=True)]


def compare(case, dtype, seed=0):
    state, bn_mode, noise, sharing, reset, neuron, layout = case
    x, v0, params, bn = make_case(state, bn_mode, sharing, layout, dtype, seed)
    kwargs = dict(reset=reset, spike_fn=get_surrogate("rectangle"), **NEURONS[neuron])
    bn_ref = copy.deepcopy(bn)
    x_seq = x.transpose(0, 1) if layout == "batch_first" else x
    assert fused_kernel_for(x_seq, norm=bn, noise=noise, **params, **kwargs) == "cpu"
    fused = run(lif_multi_step_fused, x, v0, params, bn, noise, kwargs, layout)
    reference = run(lif_multi_step_reference, x, v0, params, bn_ref, noise, kwargs, layout)
    if bn is not None:  # the kernel sums in its own order: equal to rounding
        tolerance = 1e-12 if dtype == torch.float64 else 1e-5
        for name in ("running_mean", "running_var"):
            torch.testing.assert_close(
                getattr(bn, name), getattr(bn_ref, name), atol=tolerance, rtol=tolerance
            )
        assert torch.equal(bn.num_batches_tracked, bn_ref.num_batches_tracked)
    return fused, reference


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_fused_and_reference_agree_in_float64(case):
    (y, v, grads), (y_ref, v_ref, grads_ref) = compare(case, torch.float64)
    if not case[5].startswith("liaf"):
        assert torch.equal(y, y_ref)  # the same spikes
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=1e-12)  # LIAF: the values, to rounding
    torch.testing.assert_close(v, v_ref, atol=1e-12, rtol=1e-12)
    assert y.stride() == y_ref.stride() or case[-1] == "batch_first"
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[8]], ids=["4d", "3d", "2d"])
def test_fused_and_reference_agree_in_float32(case):
    (y, v, grads), (y_ref, v_ref, grads_ref) = compare(case, torch.float32, seed=3)
    if not case[5].startswith("liaf"):
        assert int((y != y_ref).sum()) == 0  # spikes
    torch.testing.assert_close(y, y_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(v, v_ref, atol=1e-4, rtol=1e-4)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, atol=1e-4, rtol=1e-4)


def _module_outputs(make, x, kernel):
    torch.manual_seed(0)
    module = make()
    with neuron_kernel(kernel):
        torch.manual_seed(1)
        y = module(x)
        y.square().sum().backward()
    return y, {name: p.grad for name, p in module.named_parameters()}, dict(module.named_buffers())


@pytest.mark.parametrize(
    "make",
    [
        lambda: LIF(norm=nn.BatchNorm2d(4), noise=1e-3, sharing="channel", channels=4, learnable=True),
        lambda: ConvLIF(2, 4, 3, padding=1, norm="state", noise=1e-3),
    ],
    ids=["LIF", "ConvLIF"],
)
def test_modules_give_the_same_forward_and_gradients_on_both_paths(make):
    x = torch.rand(3, 5, 4, 6, 6) + 0.2 if make().__class__ is LIF else torch.rand(3, 5, 2, 6, 6)
    y, grads, buffers = _module_outputs(make, x, "fused")
    y_ref, grads_ref, buffers_ref = _module_outputs(make, x, "reference")
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    assert grads.keys() == grads_ref.keys() and len(grads) > 2
    for name in grads:
        torch.testing.assert_close(grads[name], grads_ref[name], atol=1e-4, rtol=1e-4, msg=name)
    for name in buffers:
        torch.testing.assert_close(buffers[name], buffers_ref[name], atol=1e-6, rtol=1e-6, msg=name)


def test_fused_kernel_for_takes_the_cases_it_reproduces_and_leaves_the_others_to_the_reference():
    x = torch.rand(4, 3, 2, 5, 5)
    assert fused_kernel_for(x, norm=nn.BatchNorm2d(2)) == "cpu"
    assert fused_kernel_for(x, norm=nn.BatchNorm2d(2).eval(), noise=0.1) == "cpu"
    assert fused_kernel_for(x, noise=1e-3) == "cpu"
    assert fused_kernel_for(torch.rand(4, 3, 6), norm=nn.BatchNorm1d(6), noise=1e-3) == "cpu"
    assert fused_kernel_for(x.transpose(0, 1).contiguous().transpose(0, 1), norm=nn.BatchNorm2d(2)) == "cpu"
    hooked = nn.BatchNorm2d(2)
    hooked.register_forward_hook(lambda *args: None)
    fallbacks = {
        "momentum None": nn.BatchNorm2d(2, momentum=None),
        "no running stats": nn.BatchNorm2d(2, track_running_stats=False),
        "no running stats, eval": nn.BatchNorm2d(2, track_running_stats=False).eval(),
        "a subclass": type("MyNorm", (nn.BatchNorm2d,), {})(2),
        "another callable": torch.tanh,
        "wrong dims": nn.BatchNorm1d(2),
        "wrong channels": nn.BatchNorm2d(3),
        "other dtype": nn.BatchNorm2d(2).double(),
        "hooks": hooked,
    }
    for why, norm in fallbacks.items():
        assert fused_kernel_for(x, norm=norm) is None, why
    bn = nn.BatchNorm2d(2)
    assert fused_kernel_for(x.double(), norm=bn.double()) == "cpu"
    assert fused_kernel_for(x.half(), norm=nn.BatchNorm2d(2).half()) is None
    assert (
        fused_kernel_for(torch.rand(4, 1, 2, 1, 1), norm=nn.BatchNorm2d(2)) is None
    )  # one value per channel
    assert fused_kernel_for(torch.rand(4, 1, 2, 1, 1), norm=nn.BatchNorm2d(2).eval()) == "cpu"
    assert fused_kernel_for(torch.rand(4, 1, 1, 5, 5), noise=1e-3) == "cpu"
    assert fused_kernel_for(torch.rand(4, 1, 6), noise=1e-3) == "cpu"
    per_element = dict(alpha=torch.rand(2, 5, 5))  # parameters that vary within a channel
    assert fused_kernel_for(x, norm=nn.BatchNorm2d(2), **per_element) is None
    assert fused_kernel_for(x, norm=nn.BatchNorm2d(2), alpha=torch.rand(1, 2, 1, 1)) == "cpu"
    assert fused_kernel_for(x[:, :, :, ::2], norm=nn.BatchNorm2d(2)) is None  # an unusual layout
    with neuron_kernel("reference"):
        assert fused_kernel_for(x, norm=nn.BatchNorm2d(2)) is None
