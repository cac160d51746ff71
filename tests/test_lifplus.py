"""LIF+ (paper Fig. 5, Flexon's features): LIF at the defaults, hand-computed traces per mode, IIM == EIM."""

import copy

import pytest
import torch
from torch import nn

from bidl import (
    FCLIF,
    LIF,
    ConvLIF,
    ConvLIFPlus,
    FCLIFPlus,
    LIFPlus,
    reset_states,
    set_iteration_mode,
)
from bidl.functional import (
    LIFPLUS_CONSTANTS,
    LIFPLUS_MODES,
    lif_multi_step,
    lifplus_multi_step,
    lifplus_state_keys,
    lifplus_step,
)
from bidl.models import create_model
from bidl.models.cifar10_dvs import ConvPoolClassifier

# every constant given explicitly (none equal to its library default), so the traces below do not depend on
# LIFPLUS_CONSTANTS; each trace overrides the ones its mode uses
_FIXED = dict(
    tau_recip=0.75,
    v_rest=0.125,
    eps_g=0.75,
    v_g=3.0,
    delta_t=0.25,
    v_theta=0.75,
    v_c=0.75,
    eps_w=0.75,
    b=0.75,
    a=0.75,
    v_w=0.5,
    eps_r=0.75,
    q_r=0.75,
    v_rr=-2.0,
    n_ref=3,
    v_leak=0.5,
)
# LIF's parameters of the traces: leak alpha 0.5, no beta, threshold 1, hard reset to 0
_LIF = dict(alpha=0.5, beta=0.0, theta=1.0, v_reset=0.0, reset="hard")

_TRACES = [
    # EXD, tau_recip 0.25, v_rest 0.5: V = R - 0.25 (R - 0.5)
    # t1: U = 0 + 0.25 = 0.25, no spike, V = 0.25 - 0.25 * (0.25 - 0.5) = 0.3125
    # t2: U = 0.3125 + 0.5 = 0.8125, no spike, V = 0.8125 - 0.25 * 0.3125 = 0.734375
    # t3: U = 0.734375 + 0.5 = 1.234375 > 1, spike, R = 0, V = 0 - 0.25 * (0 - 0.5) = 0.125
    pytest.param(
        dict(decay="exponential", tau_recip=0.25, v_rest=0.5),
        [0.25, 0.5, 0.5],
        [0, 0, 1],
        [0.3125, 0.734375, 0.125],
        {},
        id="exponential",
    ),
    # LID, v_rest 0.25, v_leak 0.125: d = R - 0.25, V = 0.25 + sign(d) relu(|d| - 0.125)
    # t1: U = 1.5 > 1, spike, R = 0, d = -0.25, V = 0.25 - (0.25 - 0.125) = 0.125
    # t2: U = 0.125 - 0.5 = -0.375, d = -0.625, V = 0.25 - (0.625 - 0.125) = -0.25
    # t3: U = -0.25 + 0.4375 = 0.1875, d = -0.0625, |d| < v_leak: V = 0.25 (stops at rest, not past it)
    pytest.param(
        dict(decay="lid", v_rest=0.25, v_leak=0.125),
        [1.5, -0.5, 0.4375],
        [1, 0, 0],
        [0.125, -0.25, 0.25],
        {},
        id="lid",
    ),
    # COBE, eps_g 0.5: g = 0.5 g + X, U = V + g, V = 0.5 R
    # t1: g = 0.75, U = 0.75, no spike, V = 0.375
    # t2: g = 0.375 + 0.5 = 0.875, U = 0.375 + 0.875 = 1.25 > 1, spike, V = 0
    # t3: g = 0.4375 + 0 = 0.4375, U = 0.4375 (the conductance outlives its input), V = 0.21875
    pytest.param(
        dict(accumulation="cobe", eps_g=0.5),
        [0.75, 0.5, 0.0],
        [0, 1, 0],
        [0.375, 0.0, 0.21875],
        {"g": [0.75, 0.875, 0.4375]},
        id="cobe",
    ),
    # COBA, eps_g 0.5, theta 2: y = 0.5 y + X, g = 0.5 g + e * 0.5 * y, U = V + g, V = 0.5 R
    # t1: y = 1, g = e/2 = 1.3591409142295225, U = e/2 < 2, V = e/4 = 0.6795704571147613
    # t2: y = 0.5, g = e/4 + e/4 = e/2, U = e/4 + e/2 = 3e/4 = 2.0387... > 2, spike, V = 0
    # t3: y = 0.25, g = e/4 + e/8 = 3e/8 = 1.019355685672142, U = 3e/8 < 2, V = 3e/16 = 0.509677842836071
    pytest.param(
        dict(accumulation="coba", eps_g=0.5, theta=2.0),
        [1.0, 0.0, 0.0],
        [0, 1, 0],
        [0.6795704571147613, 0.0, 0.509677842836071],
        {"g": [1.3591409142295225, 1.3591409142295225, 1.019355685672142], "y": [1.0, 0.5, 0.25]},
        id="coba",
    ),
    # COBE + REV, eps_g 0.5, v_g 2, alpha 1: g = 0.5 g + X, I = g (2 - V_prev), U = V_prev + I, V = R
    # t1: g = 0.5, I = 0.5 * (2 - 0) = 1, U = 1, not > 1: no spike, V = 1
    # t2: g = 0.25, I = 0.25 * (2 - 1) = 0.25, U = 1.25 > 1, spike, V = 0
    # t3: g = 0.125, I = 0.125 * (2 - 0) = 0.25, U = 0.25, V = 0.25
    pytest.param(
        dict(accumulation="cobe", reversal=True, eps_g=0.5, v_g=2.0, alpha=1.0),
        [0.5, 0.0, 0.0],
        [0, 1, 0],
        [1.0, 0.0, 0.25],
        {"g": [0.5, 0.25, 0.125]},
        id="cobe-reversal",
    ),
    # EXI, tau_recip 0.5, delta_t 0.5, v_theta 0.5, peak theta 2, alpha 1:
    # S = 0.5 * 0.5 * exp((V_prev - 0.5) / 0.5) = 0.25 exp(2 V_prev - 1), U = V_prev + X + S
    # t1: S = 0.25 exp(-1) = 0.09196986029286058, U = 0.5919698602928606 < 2, V = U
    # t2: S = 0.25 exp(0.1839397205857212) = 0.3004858421175786, U = 0.59197 + 0.5 + 0.30049
    #     = 1.3924557024104394 < 2, V = U
    # t3: S = 0.25 exp(1.7849114048208788) = 1.48976299522941, U = 1.39246 + 0.5 + 1.48976 = 3.38222 > 2,
    #     spike, V = 0
    pytest.param(
        dict(trigger="exi", tau_recip=0.5, delta_t=0.5, v_theta=0.5, theta=2.0, alpha=1.0),
        [0.5, 0.5, 0.5],
        [0, 0, 1],
        [0.5919698602928606, 1.3924557024104394, 0.0],
        {},
        id="exi",
    ),
    # QDI, tau_recip 0.5, v_rest 0, v_c 0.5, theta 1.5, alpha 1: S = 0.5 V_prev (V_prev - 0.5)
    # t1: S = 0, U = 0.25, V = 0.25
    # t2: S = 0.5 * 0.25 * (-0.25) = -0.03125 (below v_c the term pulls down), U = 0.25 + 0.5 - 0.03125
    #     = 0.71875, V = 0.71875
    # t3: S = 0.5 * 0.71875 * 0.21875 = 0.07861328125, U = 0.71875 + 0.75 + 0.07861328125 = 1.54736328125
    #     > 1.5, spike, V = 0
    pytest.param(
        dict(trigger="qdi", tau_recip=0.5, v_rest=0.0, v_c=0.5, theta=1.5, alpha=1.0),
        [0.25, 0.5, 0.75],
        [0, 0, 1],
        [0.25, 0.71875, 0.0],
        {},
        id="qdi",
    ),
    # ADT, eps_w 0.5, b 0.5: w = 0.5 w_prev, U = V_prev + X - w, then w += 0.5 F, V = 0.5 R
    # t1: w = 0, U = 1.25 > 1, spike, V = 0, w = 0 + 0.5 = 0.5
    # t2: w = 0.25, U = 0 + 1.25 - 0.25 = 1, not > 1: no spike, V = 0.5, w = 0.25
    # t3: w = 0.125, U = 0.5 + 1.25 - 0.125 = 1.625 > 1, spike, V = 0, w = 0.125 + 0.5 = 0.625
    pytest.param(
        dict(inhibition="adt", eps_w=0.5, b=0.5),
        [1.25, 1.25, 1.25],
        [1, 0, 1],
        [0.0, 0.5, 0.0],
        {"w": [0.5, 0.25, 0.625]},
        id="adt",
    ),
    # SBT, eps_w 0.5, tau_recip 0.5, a 0.5, v_w 0, b 0.25, alpha 1:
    # w = 0.5 w_prev + 0.5 * 0.5 * (V_prev - 0) = 0.5 w_prev + 0.25 V_prev, U = V_prev + X - w, w += 0.25 F
    # t1: w = 0, U = 0.5, V = 0.5, w = 0
    # t2: w = 0.25 * 0.5 = 0.125, U = 0.5 + 0.5 - 0.125 = 0.875, V = 0.875, w = 0.125
    # t3: w = 0.0625 + 0.25 * 0.875 = 0.28125, U = 0.875 + 0.5 - 0.28125 = 1.09375 > 1, spike, V = 0,
    #     w = 0.28125 + 0.25 = 0.53125
    pytest.param(
        dict(inhibition="sbt", eps_w=0.5, tau_recip=0.5, a=0.5, v_w=0.0, b=0.25, alpha=1.0),
        [0.5, 0.5, 0.5],
        [0, 0, 1],
        [0.5, 0.875, 0.0],
        {"w": [0.0, 0.125, 0.53125]},
        id="sbt",
    ),
    # AR, n_ref 1: X <- X 1[c_prev == 0]; c = 1 after a spike, else max(c_prev - 1, 0)
    # t1: c_prev 0, U = 1.5 > 1, spike, V = 0, c = 1
    # t2: c_prev 1: the input 1.5 is blocked, U = 0, V = 0, c = 0
    # t3: c_prev 0: U = 0 + 0.75 = 0.75, no spike, V = 0.375, c = 0
    pytest.param(
        dict(refractory="absolute", n_ref=1),
        [1.5, 1.5, 0.75],
        [1, 0, 0],
        [0.0, 0.0, 0.375],
        {"c": [1.0, 0.0, 0.0]},
        id="absolute",
    ),
    # RR, eps_r 0.5, q_r 0.5, v_rr -1: r = 0.5 r_prev, U = V_prev + X + r (-1 - V_prev), then r += 0.5 F
    # t1: r = 0, U = 1.5 > 1, spike, V = 0, r = 0.5
    # t2: r = 0.25, U = 0 + 1 + 0.25 * (-1 - 0) = 0.75, no spike, V = 0.375, r = 0.25
    # t3: r = 0.125, U = 0.375 + 1 + 0.125 * (-1 - 0.375) = 1.203125 > 1, spike, V = 0, r = 0.625
    pytest.param(
        dict(refractory="relative", eps_r=0.5, q_r=0.5, v_rr=-1.0),
        [1.5, 1.0, 1.0],
        [1, 0, 1],
        [0.0, 0.375, 0.0],
        {"r": [0.5, 0.25, 0.625]},
        id="relative",
    ),
]


def _trace(xs, **kwargs):
    """Run one neuron (``[1, 1]``, float64) through ``xs``; the spikes, V and state after every step."""
    state = None
    spikes, vs, states = [], [], []
    for x in xs:
        y, state = lifplus_step(torch.tensor([[x]], dtype=torch.float64), state, **kwargs)
        spikes.append(y.item())
        vs.append(state["v"].item())
        states.append({key: value.item() for key, value in state.items()})
    return spikes, vs, states


@pytest.mark.parametrize(("kwargs", "xs", "spikes", "vs", "extra"), _TRACES)
def test_each_mode_follows_its_hand_computed_trace(kwargs, xs, spikes, vs, extra):
    got_spikes, got_vs, states = _trace(xs, **{**_LIF, **_FIXED, **kwargs})
    assert got_spikes == spikes
    assert got_vs == pytest.approx(vs, abs=1e-12)
    for key, values in extra.items():
        assert [s[key] for s in states] == pytest.approx(values, abs=1e-12)
    assert set(states[-1]) == set(lifplus_state_keys(**kwargs))


def test_every_non_default_mode_has_a_trace():
    traced = {p.id for p in _TRACES}
    modes = {mode for stage_modes in LIFPLUS_MODES.values() for mode in stage_modes[1:]}
    assert modes | {"cobe-reversal"} == traced


# -- all stages at their defaults: exactly LIF -----------------------------------------------------------


def _pair(shape_kind, reset, learnable):
    """A LIF and a LIF+ with equal parameters and BatchNorm on the membrane (copies of one module)."""
    torch.manual_seed(0)
    if shape_kind == "fc":
        kwargs = dict(sharing="all", norm=nn.BatchNorm1d(5))
    else:
        kwargs = dict(sharing="channel", channels=3, norm=nn.BatchNorm2d(3))
    lif = LIF(alpha=0.4, theta=0.3, v_reset=-0.1, reset=reset, learnable=learnable, noise=0.01, **kwargs)
    if learnable:
        with torch.no_grad():
            for p in lif.parameters():
                p.add_(0.05 * torch.randn_like(p))
    lifplus = LIFPlus(
        alpha=0.4, theta=0.3, v_reset=-0.1, reset=reset, learnable=learnable, noise=0.01, **kwargs
    )
    lifplus.load_state_dict(lif.state_dict())
    lifplus.norm = copy.deepcopy(lif.norm)
    return lif.double(), lifplus.double()


def _grads(module, x):
    return [x.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("shape_kind", ["fc", "conv"])
@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("iteration", ["internal", "external"])
def test_defaults_compute_exactly_lif(shape_kind, reset, iteration):
    lif, lifplus = _pair(shape_kind, reset, learnable=True)
    shape = (4, 6, 5) if shape_kind == "fc" else (2, 6, 3, 4, 4)
    x0 = torch.randn(shape, dtype=torch.float64)
    outputs, grads, states = [], [], []
    for module in (lif, lifplus):
        set_iteration_mode(module, iteration)
        x = x0.clone().requires_grad_(True)
        torch.manual_seed(1)  # the same training noise
        if iteration == "internal":
            y = module(x)
        else:
            y = torch.stack([module(x[:, t]) for t in range(x.shape[1])], 1)
            states.append(module.v)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        outputs.append(y)
        grads.append(_grads(module, x))
    assert torch.equal(outputs[0], outputs[1])
    assert outputs[0].sum() > 0
    assert grads[0][0] is not None and grads[0][0].abs().sum() > 0
    for g_lif, g_plus in zip(grads[0], grads[1], strict=True):  # v_reset gets none with the soft reset
        assert (g_lif is None and g_plus is None) or torch.equal(g_lif, g_plus)
    assert torch.equal(lif.norm.running_mean, lifplus.norm.running_mean)
    if iteration == "external":
        assert torch.equal(states[0], states[1]) and torch.equal(lifplus.state["v"], states[1])
        assert set(lifplus.state) == {"v"}


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_defaults_functional_final_state_equals_lif(reset):
    torch.manual_seed(0)
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    norm = nn.BatchNorm1d(4).double()
    kwargs = dict(alpha=0.6, beta=0.05, theta=0.4, v_reset=0.1, reset=reset, norm=norm, noise=0.02)
    torch.manual_seed(2)
    y_lif, v_lif = lif_multi_step(x, None, **kwargs)
    torch.manual_seed(2)
    y_plus, state = lifplus_multi_step(x, None, **kwargs)
    assert torch.equal(y_lif, y_plus) and torch.equal(v_lif, state["v"]) and set(state) == {"v"}


@pytest.mark.parametrize(
    ("lif_cls", "plus_cls", "shape"), [(ConvLIF, ConvLIFPlus, None), (FCLIF, FCLIFPlus, 0)]
)
def test_default_blocks_share_state_dicts_and_outputs_with_lif(lif_cls, plus_cls, shape):
    torch.manual_seed(0)
    if shape is None:
        lif, plus = (
            lif_cls(2, 3, 3, padding=1, sharing="channel"),
            plus_cls(2, 3, 3, padding=1, sharing="channel"),
        )
        x = torch.rand(2, 4, 2, 6, 6)
    else:
        lif, plus = lif_cls(12, 5, reset="soft"), plus_cls(12, 5, reset="soft")
        x = torch.randn(3, 4, 12)
    plus.load_state_dict(lif.state_dict())  # strict: the LIF+ constants are not in the state_dict
    assert torch.equal(lif(x), plus(x))


# -- IIM == EIM, gradients, errors ------------------------------------------------------------------------

_MIXES = [
    dict(decay="exponential", accumulation="coba", reversal=True, trigger="qdi", inhibition="sbt",
         refractory="absolute"),
    dict(decay="lid", accumulation="cobe", trigger="exi", inhibition="adt", refractory="relative",
         reset="soft", sharing="channel"),
]  # fmt: skip


@pytest.mark.parametrize("mix", _MIXES)
def test_conv_lifplus_block_iim_equals_eim(mix):
    torch.manual_seed(0)
    block = ConvLIFPlus(2, 4, 3, padding=1, pooling=2, theta=0.3, **mix).double().eval()
    x = torch.rand(3, 6, 2, 8, 8, dtype=torch.float64)
    iim = block(x)
    set_iteration_mode(block, "external")
    eim = torch.stack([block(x[:, t]) for t in range(6)], 1)
    assert iim.shape == (3, 6, 4, 4, 4)
    assert 0 < iim.mean() < 1
    assert torch.allclose(iim, eim, atol=1e-12)
    assert set(block.neuron.state) == set(lifplus_state_keys(**mix))
    reset_states(block)
    assert block.neuron.state is None and block.neuron.v is None


_SINGLE_MODES = [{stage: mode} for stage, modes in LIFPLUS_MODES.items() for mode in modes[1:]]


@pytest.mark.parametrize(
    "modes",
    [*_SINGLE_MODES, dict(accumulation="coba", reversal=True), *_MIXES],
    ids=lambda m: "-".join(map(str, m.values())),
)
def test_gradients_reach_the_conv_weight(modes):
    torch.manual_seed(0)
    block = ConvLIFPlus(2, 4, 3, padding=1, **modes)
    block(torch.rand(2, 5, 2, 6, 6)).sum().backward()
    grad = block.synapse.weight.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_exi_stays_finite_for_a_runaway_membrane():
    v = torch.full((1, 1), 100.0)
    y, state = lifplus_step(torch.zeros(1, 1), {"v": v}, trigger="exi", theta=1.0, delta_t=0.1)
    assert y.item() == 1.0 and torch.isfinite(state["v"]).all()


def test_eim_state_persists_until_reset_and_refuses_a_new_shape():
    neuron = LIFPlus(inhibition="adt", theta=1.0, b=0.5, iteration="external", eps_w=0.5)
    x = torch.full((1, 1), 1.25)
    assert [neuron(x).item() for _ in range(3)] == [1.0, 0.0, 1.0]  # the ADT trace above, alpha 0.3
    reset_states(neuron)
    assert neuron(x).item() == 1.0
    with pytest.raises(RuntimeError, match="reset_states"):
        neuron(torch.ones(2, 1))


def test_extra_repr_lists_the_modes():
    text = repr(LIFPlus(decay="lid", refractory="absolute", n_ref=4))
    for stage in LIFPLUS_MODES:
        assert f"{stage}=" in text
    assert "decay='lid'" in text and "refractory='absolute'" in text and "n_ref=4" in text


@pytest.mark.parametrize("stage", list(LIFPLUS_MODES))
def test_unknown_mode_names_the_keyword_and_the_choices(stage):
    with pytest.raises(ValueError, match=stage) as info:
        LIFPlus(**{stage: "bogus"})
    assert str(LIFPLUS_MODES[stage]) in str(info.value)
    with pytest.raises(ValueError, match=stage):
        lifplus_step(torch.zeros(1, 1), None, **{stage: "bogus"})


def test_invalid_options_raise_naming_the_key():
    with pytest.raises(ValueError, match="reversal"):
        LIFPlus(reversal=True)  # accumulation="cub"
    with pytest.raises(ValueError, match="reversal"):
        lifplus_step(torch.zeros(1, 1), None, reversal=True)
    for n_ref in (0, -1, 1.5):
        with pytest.raises(ValueError, match="n_ref"):
            LIFPlus(refractory="absolute", n_ref=n_ref)
    with pytest.raises(TypeError, match="tau_rcp"):
        LIFPlus(tau_rcp=0.1)
    with pytest.raises(TypeError, match="tau_rcp"):
        lifplus_step(torch.zeros(1, 1), None, tau_rcp=0.1)
    with pytest.raises(TypeError, match="liaf_mode"):
        ConvLIFPlus(2, 4, 3, liaf_mode="TR")
    assert set(LIFPLUS_CONSTANTS) >= {"tau_recip", "n_ref", "v_leak"}


# -- the CIFAR10-DVS network with LIF+ -------------------------------------------------------------------

_SMALL = dict(channels=(4, 4, 8, 8, 8), hidden=16, height=64, width=64)


@pytest.mark.parametrize("name", ["cifar10_dvs", "cifar10_dvs_authors"])
def test_cifar10_dvs_with_default_lifplus_equals_lif(name):
    torch.manual_seed(0)
    lif = create_model(name, neuron="lif", **_SMALL)
    plus = create_model(name, neuron="lifplus", **_SMALL)
    assert isinstance(plus.blocks[0], ConvLIFPlus)
    plus.load_state_dict(lif.state_dict())
    x = (torch.rand(2, 3, 2, 64, 64) < 0.3).float()
    assert torch.equal(lif(x), plus(x))


def test_conv_pool_classifier_with_lifplus_stages_trains():
    torch.manual_seed(0)
    net = ConvPoolClassifier(
        in_channels=2, height=16, width=16, channels=(4, 8), kernels=(3, 3), strides=(1, 1), hidden=(8,),
        n_classes=3, neuron="lifplus", decay="lid", accumulation="coba", trigger="exi", inhibition="adt",
        refractory="relative", v_leak=0.05,
    )  # fmt: skip
    assert net.blocks[0].neuron.modes["decay"] == "lid" and net.blocks[0].neuron.constants["v_leak"] == 0.05
    out = net(torch.rand(2, 4, 2, 16, 16))
    assert out.shape == (2, 3)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    assert net.blocks[0].synapse.weight.grad.abs().sum() > 0


def test_model_options_are_checked_per_neuron():
    with pytest.raises(ValueError, match="only for neuron='liaf'"):
        create_model("cifar10_dvs", neuron="lifplus", liaf_mode="TR", **_SMALL)
    with pytest.raises(ValueError, match="only for neuron='lifplus'"):
        create_model("cifar10_dvs", neuron="lif", decay="lid", **_SMALL)
    with pytest.raises(ValueError, match="lifplus"):
        create_model("cifar10_dvs", neuron="lif+", **_SMALL)
    net = create_model("cifar10_dvs_authors", neuron="lifplus", refractory="absolute", n_ref=3, **_SMALL)
    assert net.blocks[0].neuron.constants["n_ref"] == 3


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_default_lifplus_runs_the_fused_kernel_with_the_loops_results(reset):
    """All stages at their defaults, lifplus_multi_step takes lif_multi_step's fused path (not a Python loop
    of lifplus_step): the reference loop's spikes, final state and gradients, from a given state too."""
    from bidl.functional import fused_kernel_for, lifplus_step

    torch.manual_seed(3)
    x = torch.randn(9, 2, 3, 5, dtype=torch.float64)
    v0 = torch.rand(2, 3, 5, dtype=torch.float64)
    kwargs = dict(alpha=0.7, theta=0.4, reset=reset, tau_recip=0.2)  # a constant that the defaults ignore
    lif_kwargs = {k: v for k, v in kwargs.items() if k != "tau_recip"}
    if fused_kernel_for(x, **lif_kwargs) is None:
        pytest.skip("no fused kernel on this machine (numba missing)")
    fused_x, loop_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_fused, state = lifplus_multi_step(fused_x, {"v": v0}, **kwargs)
    v, outputs = {"v": v0}, []
    for x_t in loop_x:
        y_t, v = lifplus_step(x_t, v, **kwargs)
        outputs.append(y_t)
    y_loop = torch.stack(outputs)
    assert torch.equal(y_fused, y_loop) and torch.equal(state["v"], v["v"])
    weights = torch.randn_like(x)
    (y_fused * weights).sum().backward()
    (y_loop * weights).sum().backward()
    torch.testing.assert_close(fused_x.grad, loop_x.grad, atol=1e-10, rtol=1e-10)
