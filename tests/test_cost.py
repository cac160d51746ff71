"""Cost model (paper Table 1, Fig. 4): formulas against counts of what runs, Fig. 4 ratios, per-model cost."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from bidl import LIAF, LIF, LIFPlus
from bidl.ann import ConvLSTM
from bidl.cost import (
    KINDS,
    LIAF_OPS,
    LIF_OPS,
    LSTM_OPS,
    NORM_STATE_OPS,
    TABLE1_FORMULAS,
    ElementwiseCounter,
    event_accumulates,
    figure4_counts,
    flop_counter_macs,
    is_binary,
    measure_st_layer,
    model_cost,
    neuron_step_ops,
    st_layer_cost,
    table1_markdown,
)
from bidl.models import create_model
from bidl.models.resnet import ElectricallyCoupledLIAF

COUNT_KEYS = ("macs", "acs", "elementwise", "ops", "weights", "biases", "neuron_params", "params")

# odd sizes, K != C, different T, non-square kernels, a 1x1 kernel, U from 1 to 4 (stride 1 throughout)
SHAPES = [
    dict(T=3, H=5, W=7, C=4, K=3, I=3, J=5, U=2),
    dict(T=2, H=4, W=4, C=3, K=5, I=3, J=3, U=3),
    dict(T=1, H=3, W=2, C=2, K=1, I=1, J=1, U=1),
    dict(T=4, H=6, W=5, C=6, K=2, I=5, J=5, U=4),
]


def _shape_id(shape: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in shape.items())


# -- Table 1 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
@pytest.mark.parametrize("kind", KINDS)
def test_formula_equals_measured_count(kind: str, shape: dict) -> None:
    if kind == "convlstm" and shape["I"] != shape["J"]:
        shape = {**shape, "J": shape["I"]}  # ConvLSTM's kernel is square
    formula = st_layer_cost(kind, **shape)
    measured = measure_st_layer(kind, **shape)
    assert {k: formula[k] for k in COUNT_KEYS} == {k: measured[k] for k in COUNT_KEYS}
    assert measured["flop_counter_macs"] == formula["macs"] + formula["acs"]
    assert measured["binary_input"] == (kind == "convlif")


@pytest.mark.parametrize("kind", KINDS)
def test_formula_matches_table1_expressions(kind: str) -> None:
    """The paper's expressions written out here, independently of the module."""
    T, H, W, C, K, I, J, U = 3, 5, 7, 4, 6, 3, 5, 2  # noqa: E741
    R, Q = T * H * W * C, I * J * K
    synaptic, weights = {
        "conv2d": (R * Q, Q * C),
        "conv3d": (U * R * Q, U * Q * C),
        "convlstm": (4 * R * I * J * (K + C), 4 * I * J * C * (K + C)),
        "convliaf": (R * Q, Q * C),
        "convlif": (R * Q, Q * C),
    }[kind]
    elementwise = {"conv2d": 0, "conv3d": 0, "convlstm": 13 * R, "convliaf": 10 * R, "convlif": 9 * R}[kind]
    cost = st_layer_cost(kind, T=T, H=H, W=W, C=C, K=K, I=I, J=J, U=U)
    assert cost["macs"] + cost["acs"] == synaptic
    assert cost["acs"] == (synaptic if kind == "convlif" else 0)  # only ConvLIF's input is spikes
    assert cost["elementwise"] == elementwise
    assert cost["ops"] == synaptic + elementwise
    assert cost["weights"] == weights
    assert cost["formulas"] == TABLE1_FORMULAS[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_spike_input_turns_input_synapses_into_accumulates(kind: str) -> None:
    shape = dict(T=2, H=3, W=5, C=3, K=4, I=3, J=3, U=2)
    for spikes in (True, False):
        formula = st_layer_cost(kind, spike_input=spikes, **shape)
        measured = measure_st_layer(kind, spike_input=spikes, **shape)
        assert measured["binary_input"] is spikes
        assert (formula["macs"], formula["acs"]) == (measured["macs"], measured["acs"])
    lstm = st_layer_cost("convlstm", spike_input=True, **shape)
    R = 2 * 3 * 5 * 3
    assert lstm["acs"] == 4 * R * 9 * 4 and lstm["macs"] == 4 * R * 9 * 3  # the hidden state stays analog


@pytest.mark.parametrize("kind", ["convlif", "convliaf"])
def test_channel_sharing_neuron_constants(kind: str) -> None:
    shape = dict(T=2, H=3, W=3, C=5, K=2)
    formula = st_layer_cost(kind, sharing="channel", **shape)
    measured = measure_st_layer(kind, sharing="channel", **shape)
    assert formula["neuron_params"] == measured["neuron_params"] == 4 * 5
    assert formula["params"] == measured["params"] == 3 * 3 * 2 * 5 + 5 + 20


def test_table1_markdown_has_every_kind() -> None:
    table = table1_markdown()
    for name in ("Conv2D", "Conv3D", "ConvLSTM", "ConvLIAF", "ConvLIF"):
        assert f"| {name} |" in table
    assert "U·R·Q MACs" in table and "R·Q ACs" in table


# -- element-wise constants against what runs --------------------------------------------------------------
def _counted_ops_per_neuron_step(neuron: nn.Module, steps: int = 4, width: int = 6) -> float:
    x = torch.randn(2, steps, width)
    neuron.eval()
    with torch.no_grad(), ElementwiseCounter() as counter:
        neuron(x)
    return counter.total / x.numel()


@pytest.mark.parametrize(
    ("neuron", "expected"),
    [
        (LIF(), 9),
        (LIF(reset="soft"), 7),
        (LIAF(), 10),
        (LIAF(liaf_readout="post_leak"), 10),
        (LIAF(liaf_mode="TR"), 11),
        (LIAF(activation="identity"), 9),
        (LIAF(activation="sigmoid", reset="soft"), 8),
        (LIFPlus(), 9),
        (LIFPlus(inhibition="adt"), None),
        (LIFPlus(decay="lid", accumulation="cobe", refractory="absolute"), None),
        (LIFPlus(trigger="qdi", sharing="channel", channels=6), None),
    ],
    ids=lambda v: repr(v) if isinstance(v, nn.Module) else str(v),
)
def test_neuron_step_ops_match_the_executed_ops(neuron: LIF, expected: int | None) -> None:
    counted = _counted_ops_per_neuron_step(neuron)
    assert neuron_step_ops(neuron) == counted
    if expected is not None:
        assert counted == expected
    assert LIF_OPS == 9 and LIAF_OPS == 10


def test_neuron_step_ops_counts_membrane_norm_and_rejects_other_modules() -> None:
    assert neuron_step_ops(LIF(norm=nn.BatchNorm1d(4))) == LIF_OPS + NORM_STATE_OPS
    with pytest.raises(TypeError, match="Linear"):
        neuron_step_ops(nn.Linear(2, 2))


def test_lstm_ops_match_the_executed_ops() -> None:
    layer = ConvLSTM(2, 3, 3).eval()
    x = torch.rand(1, 4, 2, 5, 5)
    with torch.no_grad(), ElementwiseCounter() as counter:
        y = layer(x)
    assert counter.total == LSTM_OPS * y.numel() == 13 * y.numel()


def test_elementwise_counter_skips_views_copies_and_paused_blocks() -> None:
    x = torch.rand(3, 4)
    with ElementwiseCounter() as counter:
        y = (x.t().contiguous().float() > 0.5).to(torch.float32)  # one compare; view, copy, cast are free
        torch.zeros_like(y).add_(y)  # in-place add counted, the fill not
        with counter.pause():
            _ = x * 2
    assert counter.total == 24
    assert dict(counter.by_op) == {"gt": 12, "add": 12}


# -- Figure 4 ----------------------------------------------------------------------------------------------
def test_figure4_ratios() -> None:
    fig = figure4_counts()
    assert fig["setting"] == dict(T=8, H=16, W=16, C=64, K=64, U=3, I=3, J=3)
    R, Q = 8 * 16 * 16 * 64, 3 * 3 * 64
    formula, measured, ratios = fig["formula"], fig["measured"], fig["ratios"]
    assert formula["convlif"]["acs"] == R * Q == 75_497_472
    assert formula["conv3d"]["macs"] == 3 * R * Q
    assert formula["convlstm"]["macs"] == 4 * R * 3 * 3 * (64 + 64)
    for kind in KINDS:
        assert {k: formula[kind][k] for k in COUNT_KEYS} == {k: measured[kind][k] for k in COUNT_KEYS}
    # independent of the module's ratio code: from the counts
    conv3d_ops = formula["conv3d"]["ops"] / formula["convlif"]["ops"]
    lstm_ops = formula["convlstm"]["ops"] / formula["convlif"]["ops"]
    assert conv3d_ops == pytest.approx(ratios["conv3d"]["ops_vs_convlif"])
    assert lstm_ops == pytest.approx(ratios["convlstm"]["ops_vs_convlif"])
    assert 2.8 < conv3d_ops < 3.0 and 7.5 < lstm_ops < 8.0  # "3x" and "8x", less with element-wise ops
    assert ratios["conv3d"]["synaptic_ops_vs_convlif"] == 3.0
    assert ratios["convlstm"]["synaptic_ops_vs_convlif"] == 8.0
    assert ratios["conv3d"]["weights_vs_convlif"] == 3.0
    assert ratios["convlstm"]["weights_vs_convlif"] == 8.0
    assert 2.8 < ratios["conv3d"]["ops_vs_convliaf"] < 3.0
    assert 7.5 < ratios["convlstm"]["ops_vs_convliaf"] < 8.0
    assert ratios["conv2d"]["ops_vs_convliaf"] < 1.0  # LIAF adds its element-wise ops to Conv2D's
    print("\nFigure 4 (T=8, H=W=16, C=K=64, U=I=J=3)")
    for kind in KINDS:
        r = ratios[kind]
        print(
            f"  {kind:9s} MACs {formula[kind]['macs']:>11,} ACs {formula[kind]['acs']:>10,} "
            f"elementwise {formula[kind]['elementwise']:>9,} ops {formula[kind]['ops']:>11,} "
            f"weights {formula[kind]['weights']:>7,} | vs ConvLIF: synaptic "
            f"{r['synaptic_ops_vs_convlif']:.3f} all {r['ops_vs_convlif']:.3f} "
            f"weights {r['weights_vs_convlif']:.3f} | vs ConvLIAF: all {r['ops_vs_convliaf']:.3f}"
        )


# -- per-model cost ----------------------------------------------------------------------------------------
def _frames(*shape: int) -> torch.Tensor:
    return (torch.rand(*shape) < 0.3).float() * 2  # DVS-like event counts 0 / 2: not binary


MODELS = {
    "dvs128_gesture": (dict(channels=(4, 8, 8), hidden=16, theta=0.2), lambda: _frames(2, 4, 2, 40, 40)),
    "rgb_gesture": (
        dict(channels=(4, 8, 8), hidden=16, height=16, width=16, theta=0.2),
        lambda: _frames(2, 3, 2, 16, 16),
    ),
    "cifar10_dvs": (
        dict(channels=(4, 4, 8, 8, 8), hidden=16, height=64, width=64, theta=0.2),
        lambda: _frames(2, 3, 2, 64, 64),
    ),
    "luna16_cls": (
        dict(channels=(4, 8, 8), hidden=(16, 8), height=16, width=16, theta=0.2),
        lambda: torch.rand(2, 3, 1, 16, 16),
    ),
    "imdb": (dict(vocab_size=30, embedding_dim=8, hidden=16), lambda: torch.randint(0, 30, (2, 7))),
    "jester_v1": (dict(widths=(4, 4, 8, 8)), lambda: torch.rand(2, 3, 3, 32, 32)),
    "jester_v2": (dict(widths=(4, 4, 8, 8)), lambda: torch.rand(2, 3, 3, 32, 32)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_model_cost_dense_macs_equal_flop_counter(name: str) -> None:
    torch.manual_seed(0)
    kwargs, make_input = MODELS[name]
    model = create_model(name, **kwargs)
    batches = [make_input(), make_input()[:1]]
    cost = model_cost(model, batches)
    assert cost["n_samples"] == 3
    flops = flop_counter_macs(model, batches)
    assert cost["totals"]["dense_synaptic_ops"] == flops > 0
    assert sum(layer["dense_macs"] for layer in cost["layers"]) == flops
    assert cost["totals"]["macs"] + cost["totals"]["acs"] <= flops
    assert cost["dense_synaptic_ops"] == pytest.approx(flops / 3)
    assert cost["params"] == sum(p.numel() for p in model.parameters())
    assert cost["neuron_elementwise"] > 0


def test_model_cost_spiking_network_uses_accumulates() -> None:
    torch.manual_seed(0)
    kwargs, make_input = MODELS["dvs128_gesture"]
    cost = model_cost(create_model("dvs128_gesture", **kwargs), [make_input()])
    layers = {layer["name"]: layer for layer in cost["layers"]}
    # conv1 sees the batch-normalised input (analog), every later synapse sees spikes
    assert not layers["conv1.synapse"]["binary_input"] and layers["conv1.synapse"]["acs"] == 0
    assert layers["conv1.synapse"]["macs"] == layers["conv1.synapse"]["dense_macs"]
    for name in ("conv2.synapse", "conv3.synapse", "fc1.synapse", "fc2.synapse"):
        assert layers[name]["binary_input"] and layers[name]["macs"] == 0
        assert 0 < layers[name]["acs"] < layers[name]["dense_macs"]
    assert 0 < cost["spike_rate"] < 1 and 0 < cost["ac_fraction"] < 1


@pytest.mark.parametrize(
    ("name", "kwargs", "make_input"),
    [
        (
            "dvs128_gesture",
            dict(channels=(4, 8, 8), hidden=16, theta=0.2, learnable=False, norm="input"),
            lambda: _frames(2, 3, 2, 40, 40),
        ),
        (
            "imdb",
            dict(vocab_size=30, embedding_dim=8, hidden=16, learnable=False),
            lambda: torch.randint(0, 30, (2, 5)),
        ),
    ],
)
def test_model_cost_neuron_ops_equal_counted_ops(name, kwargs, make_input) -> None:
    """In these networks every counted element-wise op is a neuron's (BatchNorm, means, lookups are not)."""
    model = create_model(name, **kwargs).eval()
    x = make_input()
    with torch.no_grad(), ElementwiseCounter() as counter:
        model(x)
    cost = model_cost(model, [x])
    assert cost["totals"]["neuron_elementwise"] == counter.total


def test_model_cost_coupled_neurons_and_lstm_count_their_ops() -> None:
    neuron = ElectricallyCoupledLIAF(3, reset="soft")
    nn.init.normal_(neuron.coupling.weight, std=0.1)
    lstm = nn.Sequential(ConvLSTM(2, 3, 3))
    for module, x in ((neuron, torch.randn(2, 4, 3, 5, 5)), (lstm, torch.rand(2, 4, 2, 5, 5))):
        module.eval()
        with torch.no_grad(), ElementwiseCounter() as counter:
            module(x)
        cost = model_cost(module, [x])
        assert cost["totals"]["elementwise"] == counter.total
    assert model_cost(lstm, [x])["totals"]["lstm_elementwise"] == 2 * 4 * 3 * 5 * 5 * 13
    # the coupled neuron: soft-reset LIAF (8) every step, one coupling add from the second step on
    assert model_cost(neuron, [torch.randn(2, 4, 3, 5, 5)])["totals"]["neuron_elementwise"] == 150 * (
        4 * 8 + 3
    )


def test_linear_accumulates_by_hand() -> None:
    layer = nn.Linear(4, 3)
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    assert event_accumulates(layer, x) == (3 + 1) * 3
    cost = model_cost(layer, [x])
    assert cost["n_samples"] == 2
    assert cost["totals"] == dict(
        macs=0, acs=12, dense_synaptic_ops=24, neuron_elementwise=0, lstm_elementwise=0, elementwise=0, ops=12
    )
    assert cost["acs"] == 6 and cost["spike_rate"] == 4 / 8
    assert cost["layers"][0]["binary_input"] and cost["layers"][0]["input_rate"] == 0.5


def _brute_force_conv_acs(conv: nn.Conv2d, x: torch.Tensor) -> int:
    """Sum over every output of the active inputs inside its receptive field (zero padding is inactive)."""
    (n, c_in, h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        x.shape,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
    )
    g, c_out = conv.groups, conv.out_channels
    out_h = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    total = 0
    for b, o, i, j in itertools.product(range(n), range(c_out), range(out_h), range(out_w)):
        group = o // (c_out // g)
        channels = range(group * (c_in // g), (group + 1) * (c_in // g))
        for c, u, v in itertools.product(channels, range(kh), range(kw)):
            row, col = i * sh - ph + u * dh, j * sw - pw + v * dw
            if 0 <= row < h and 0 <= col < w and x[b, c, row, col] != 0:
                total += 1
    return total


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(2, 3, 3, stride=2, padding=1),
        nn.Conv2d(4, 6, (3, 2), padding=(1, 0), dilation=(1, 2), groups=2),
        nn.Conv2d(1, 2, 1),
    ],
    ids=["stride2-pad1", "grouped-dilated", "1x1"],
)
def test_conv_accumulates_equal_brute_force(conv: nn.Conv2d) -> None:
    torch.manual_seed(1)
    x = (torch.rand(2, conv.in_channels, 7, 6) < 0.4).float()
    expected = _brute_force_conv_acs(conv, x)
    assert event_accumulates(conv, x) == expected
    cost = model_cost(conv, [x])
    assert cost["totals"]["acs"] == expected and cost["totals"]["macs"] == 0
    dense = conv(x).numel() * (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]
    assert cost["totals"]["dense_synaptic_ops"] == dense
    assert expected < dense * x.mean().item() * 1.5  # an event count, not the dense count


def test_binary_detection() -> None:
    assert is_binary(torch.tensor([0.0, 1.0, 1.0]))
    assert is_binary(torch.zeros(3))
    assert not is_binary(torch.tensor([0.0, 2.0]))
    assert not is_binary(torch.tensor([0.5, 1.0]))


class _TwoInputs(nn.Module):
    """Two linear layers, one on the first 2 features of the input, one on the other 10."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(2, 3)
        self.b = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x[:, :2]) + self.b(x[:, 2:])


def test_spike_rate_is_weighted_by_input_size() -> None:
    x = torch.zeros(4, 12)
    x[:, :2] = 1.0  # layer a: rate 1
    x[0, 2:4] = 1.0  # layer b: 2 of 40 inputs, rate 0.05
    cost = model_cost(_TwoInputs(), [x])
    assert cost["spike_rate"] == pytest.approx(10 / 48)  # not the mean of the rates, (1 + 0.05) / 2
    rates = {layer["name"]: layer["input_rate"] for layer in cost["layers"]}
    assert rates == pytest.approx({"a": 1.0, "b": 0.05})
    assert cost["totals"]["acs"] == 8 * 3 + 2 * 3
    assert cost["ac_fraction"] == pytest.approx(30 / (4 * 3 * 2 + 4 * 3 * 10))


def test_analog_and_silent_inputs_count_dense_macs() -> None:
    layer = nn.Linear(5, 4)
    for x in (torch.rand(3, 5) + 0.1, torch.zeros(3, 5)):
        cost = model_cost(layer, [x])
        assert cost["totals"]["macs"] == 3 * 4 * 5 and cost["totals"]["acs"] == 0
        assert cost["spike_rate"] is None
    assert cost["layers"][0]["silent_input"]
    mixed = model_cost(layer, [torch.ones(1, 5), torch.full((1, 5), 0.5)])  # binary in one batch only
    assert mixed["totals"]["macs"] == 2 * 20 and not mixed["layers"][0]["binary_input"]


def test_model_cost_restores_mode_and_accepts_pairs() -> None:
    model = create_model("imdb", vocab_size=30, embedding_dim=8, hidden=16)
    model.train()
    tokens = torch.randint(0, 30, (2, 5))
    cost = model_cost(model, [(tokens, torch.zeros(2))])
    assert model.training and cost["n_samples"] == 2
    with pytest.raises(ValueError, match="no samples"):
        model_cost(model, [])
    with pytest.raises(TypeError, match="batches"):
        model_cost(model, ["text"])


# -- errors ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [st_layer_cost, measure_st_layer])
def test_unknown_kind_names_it_and_the_known_kinds(fn) -> None:
    with pytest.raises(ValueError) as error:
        fn("conv4d", T=1, H=2, W=2, C=1, K=1)
    message = str(error.value)
    assert "conv4d" in message
    for kind in KINDS:
        assert kind in message


def test_bad_sizes_and_non_square_lstm() -> None:
    with pytest.raises(ValueError, match="T"):
        st_layer_cost("conv2d", T=0, H=2, W=2, C=1, K=1)
    with pytest.raises(ValueError, match="square"):
        measure_st_layer("convlstm", T=1, H=2, W=2, C=1, K=1, I=3, J=5)
