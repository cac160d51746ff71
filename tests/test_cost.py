"""Cost model (paper Table 1, Fig. 4): formulas against counts of what runs, Fig. 4 ratios, per-model cost."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from bidl import LIAF, LIF, LIFPlus
from bidl.ann import LSTM, ConvLSTM
from bidl.cost import (
    ELEMENTWISE_OPS,
    ELEMENTWISE_SPLIT,
    KINDS,
    LIAF_OPS,
    LIF_OPS,
    LSTM_OPS,
    MULTIPLICATION_KEYS,
    NORM_STATE_OPS,
    TABLE1_FORMULAS,
    ElementwiseCounter,
    OpClasses,
    energy,
    event_accumulates,
    figure4_counts,
    flop_counter_macs,
    is_binary,
    measure_st_layer,
    model_cost,
    neuron_step_ops,
    neuron_step_split,
    st_layer_cost,
    table1_markdown,
)
from bidl.layers import ConvLIAF, ConvLIF
from bidl.models import create_model
from bidl.models.resnet import ElectricallyCoupledLIAF

COUNT_KEYS = (
    "macs",
    "acs",
    "elementwise",
    "ops",
    *MULTIPLICATION_KEYS,
    "weights",
    "biases",
    "neuron_params",
    "params",
)

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
    x = torch.randn(2, 4, 6)  # the same by class: multiplications, additions, non-linear functions
    with torch.no_grad(), ElementwiseCounter() as counter:
        neuron.eval()(x)
    assert neuron_step_split(neuron) * x.numel() == counter.split()
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
    assert counter.split() == OpClasses(mul=3, add=5, nonlinear=5) * y.numel()


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
        macs=0,
        acs=12,
        dense_synaptic_ops=24,
        neuron_elementwise=0,
        lstm_elementwise=0,
        activation_elementwise=0,
        elementwise=0,
        ops=12,
        macs_dense=0,
        macs_zero_skipped=0,
        acs_dense=24,
        elementwise_mul=0,
        elementwise_add=0,
        elementwise_nonlinear=0,
        multiplications=0,
        multiplications_zero_skipped=0,
        additions=24,
        additions_zero_skipped=12,
        nonlinear=0,
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


# -- operation classes and energy, by hand -----------------------------------------------------------------
def test_elementwise_constants_split_into_classes() -> None:
    """Each neuron's element-wise operations by class, read off bidl.functional.lif_step / bidl.ann.lstm_cell:
    LIF (hard reset) = integrate (1 add) + fire (sub, compare: 2 adds) + reset (F*v_reset, (1 - F)*U: 2 muls;
    1 - F, the sum: 2 adds) + leak (alpha*R: 1 mul; + beta: 1 add); LIAF adds the ReLU (a compare-and-select);
    LSTM = 4 gate sums (4 adds) + 3 sigmoids, 2 tanhs, 3 muls, 1 add."""
    assert ELEMENTWISE_SPLIT["convlif"] == OpClasses(mul=3, add=6, nonlinear=0)
    assert ELEMENTWISE_SPLIT["convliaf"] == OpClasses(mul=3, add=7, nonlinear=0)
    assert ELEMENTWISE_SPLIT["convlstm"] == OpClasses(mul=3, add=5, nonlinear=5)
    assert ELEMENTWISE_SPLIT["conv2d"] == ELEMENTWISE_SPLIT["conv3d"] == OpClasses()
    assert {kind: split.total for kind, split in ELEMENTWISE_SPLIT.items()} == ELEMENTWISE_OPS
    assert neuron_step_split(LIF(reset="soft")) == OpClasses(mul=2, add=5)
    assert neuron_step_split(LIAF(activation="sigmoid")) == OpClasses(mul=3, add=6, nonlinear=1)
    assert neuron_step_split(LIF(norm=nn.BatchNorm1d(4))) == OpClasses(mul=4, add=7)


@pytest.mark.parametrize("kind", KINDS)
def test_table1_multiplications(kind: str) -> None:
    """Synaptic multiplications (one per MAC, none per AC) and the neurons' / gates' by hand."""
    T, H, W, C, K, I, J, U = 2, 3, 4, 5, 6, 3, 3, 2  # noqa: E741
    R, Q = T * H * W * C, I * J * K
    synaptic_mul, elementwise_mul, text = {
        "conv2d": (R * Q, 0, "R·Q"),
        "conv3d": (U * R * Q, 0, "U·R·Q"),
        "convlstm": (4 * R * I * J * (K + C), 3 * R, "4·R·(Q + I·J·C) + 3·R"),
        "convliaf": (R * Q, 3 * R, "R·Q + 3·R"),
        "convlif": (0, 3 * R, "3·R"),  # ACs: no synaptic multiplication; the leak and the reset multiply
    }[kind]
    cost = st_layer_cost(kind, T=T, H=H, W=W, C=C, K=K, I=I, J=J, U=U)
    assert (cost["synaptic_mul"], cost["elementwise_mul"]) == (synaptic_mul, elementwise_mul)
    assert cost["multiplications"] == synaptic_mul + elementwise_mul
    assert TABLE1_FORMULAS[kind]["multiplications"] == text
    measured = measure_st_layer(kind, T=T, H=H, W=W, C=C, K=K, I=I, J=J, U=U)
    assert {k: measured[k] for k in MULTIPLICATION_KEYS} == {k: cost[k] for k in MULTIPLICATION_KEYS}


# per-op energies that are exact binary fractions, so that the sums below are exact
PER_OP = dict(mac_pj=4.0, ac_pj=1.0, mul_pj=3.0, add_pj=0.5, nonlinear_pj=8.0, source="test")


def _assert_counts_and_energy(model: nn.Module, x: torch.Tensor, expected: dict, dense_pj, skipped_pj):
    cost = model_cost(model, [x])
    assert cost["n_samples"] == 1  # per sample = totals
    assert {key: cost["totals"][key] for key in expected} == expected
    result = energy(cost, PER_OP)
    assert (result["dense_pj"], result["zero_skipped_pj"]) == (dense_pj, skipped_pj)
    return cost, result


def test_linear_on_spikes_by_hand() -> None:
    """Linear 4 -> 3 on 2 steps of spikes [1 0 1 1], [0 0 0 1]: 2 * 4 * 3 = 24 synapses at full rate, 4 spikes
    reach 3 outputs each: 12 ACs; no multiplication. Energy: dense 24 AC = 24 pJ, zero-skipped 12 pJ."""
    x = torch.tensor([[[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]]])
    expected = dict(
        macs_dense=0,
        macs_zero_skipped=0,
        acs_dense=24,
        acs=12,
        elementwise_mul=0,
        multiplications=0,
        additions=24,
        additions_zero_skipped=12,
    )
    _assert_counts_and_energy(nn.Linear(4, 3), x, expected, 24.0, 12.0)


def test_conv2d_on_relu_output_by_hand() -> None:
    """ReLU then Conv2d(1 -> 2, 2x2, no padding) on a 3x3 input; after the ReLU
        1 0 2
        0 3 0
        0 1 1
    the four 2x2 windows hold 2, 2, 2, 3 nonzeros: 9 * 2 channels = 18 MACs with zeros skipped, of 2 * 2 * 2
    outputs * 4 = 32 dense MACs (the input is not binary: MACs). The ReLU: 9 adds (compare-and-select).
    Energy: dense 32 * 4 + 9 * 0.5 = 132.5 pJ; zero-skipped 18 * 4 + 4.5 = 76.5 pJ."""
    x = torch.tensor([[[[1.0, -1.0, 2.0], [0.0, 3.0, -2.0], [-1.0, 1.0, 1.0]]]])
    expected = dict(
        macs_dense=32,
        macs_zero_skipped=18,
        acs_dense=0,
        acs=0,
        activation_elementwise=9,
        elementwise_mul=0,
        elementwise_add=9,
        elementwise_nonlinear=0,
        multiplications=32,
        multiplications_zero_skipped=18,
        additions=41,
        additions_zero_skipped=27,
    )
    cost, result = _assert_counts_and_energy(
        nn.Sequential(nn.ReLU(), nn.Conv2d(1, 2, 2)), x, expected, 132.5, 76.5
    )
    assert result["zero_skipped"] == dict(
        macs=72.0, acs=0.0, elementwise_mul=0.0, elementwise_add=4.5, elementwise_nonlinear=0.0
    )
    assert cost["layers"][0]["zero_skipped"] == 18 and not cost["layers"][0]["binary_input"]


# two 3x3 frames; the 2x2 windows hold 2, 1, 1, 2 nonzeros in the first and 0, 0, 2, 1 in the second: 9
FRAMES = [
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]],
]


def test_convlif_by_hand() -> None:
    """ConvLIF 1 -> 1, 2x2 kernel, on 2 steps of 3x3 spikes (FRAMES): 4 neurons x 2 steps = 8 neuron steps,
    each 4 synapses: 32 ACs at full rate, 9 with zeros skipped; no synaptic multiplication. The neurons: 8 x
    (3 muls + 6 adds) = 24 muls, 48 adds. Energy: dense 32 + 24 * 3 + 48 * 0.5 = 128 pJ; zero-skipped 9 + 72 +
    24 = 105 pJ."""
    x = torch.tensor(FRAMES).reshape(1, 2, 1, 3, 3)
    expected = dict(
        macs_dense=0,
        macs_zero_skipped=0,
        acs_dense=32,
        acs=9,
        neuron_elementwise=72,
        elementwise_mul=24,
        elementwise_add=48,
        elementwise_nonlinear=0,
        multiplications=24,
        multiplications_zero_skipped=24,
        additions=80,
        additions_zero_skipped=57,
    )
    _assert_counts_and_energy(ConvLIF(1, 1, 2, norm=None), x, expected, 128.0, 105.0)


def test_convliaf_by_hand() -> None:
    """ConvLIAF 1 -> 1, 2x2 kernel, on FRAMES with analog values (0.5 and 2 for the ones): 32 MACs dense, 9
    with zeros skipped. The neurons: 8 x (3 muls + 7 adds). Energy: dense 32 * 4 + 24 * 3 + 56 * 0.5 = 228 pJ;
    zero-skipped 9 * 4 + 72 + 28 = 136 pJ."""
    x = torch.tensor(FRAMES).reshape(1, 2, 1, 3, 3)
    x = x * torch.tensor([0.5, 2.0, 0.5]).repeat(3).reshape(3, 3)  # 0.5 / 2: not binary
    expected = dict(
        macs_dense=32,
        macs_zero_skipped=9,
        acs_dense=0,
        acs=0,
        neuron_elementwise=80,
        elementwise_mul=24,
        elementwise_add=56,
        elementwise_nonlinear=0,
        multiplications=56,
        multiplications_zero_skipped=33,
        additions=88,
        additions_zero_skipped=65,
    )
    _assert_counts_and_energy(ConvLIAF(1, 1, 2, norm=None), x, expected, 228.0, 136.0)


def _constant_weights(module: nn.Module) -> nn.Module:
    """Every weight and bias 0.5: on a nonnegative input every gate is positive, so every h is nonzero."""
    for parameter in module.parameters():
        nn.init.constant_(parameter, 0.5)
    return module


def test_convlstm_by_hand() -> None:
    """ConvLSTM 1 -> 1, 1x1 kernel, 2 steps of 2x2 frames [[1, 0], [0, 2]], [[0, 0], [3, 0]]: the input conv
    (1 -> 4 gates) has 2 x 4 x 4 = 32 dense MACs, the hidden conv too (at t = 0 on the zero state): 64. With
    zeros skipped: the input's 2 + 1 nonzeros x 4 gates = 12, the hidden state's 0 (t = 0) + 4 (t = 1) x 4 =
    16: 28 MACs. The cells: 2 x 4 hidden elements x (3 muls + 5 adds + 5 non-linear). Energy: dense
    64 * 4 + 24 * 3 + 40 * 0.5 + 40 * 8 = 668 pJ; zero-skipped 28 * 4 + 412 = 524 pJ."""
    x = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[0.0, 0.0], [3.0, 0.0]]]).reshape(1, 2, 1, 2, 2)
    expected = dict(
        macs_dense=64,
        macs_zero_skipped=28,
        acs_dense=0,
        acs=0,
        lstm_elementwise=104,
        elementwise_mul=24,
        elementwise_add=40,
        elementwise_nonlinear=40,
        multiplications=88,
        multiplications_zero_skipped=52,
        additions=104,
        additions_zero_skipped=68,
        nonlinear=40,
    )
    layer = _constant_weights(ConvLSTM(1, 1, 1))
    _assert_counts_and_energy(layer, x, expected, 668.0, 524.0)


def test_lstm_by_hand() -> None:
    """LSTM 3 -> 2 on 2 steps [1, 0, 0.5], [0, 2, 0]: input map 2 x 8 gates x 3 = 48 dense MACs, hidden map
    2 x 8 x 2 = 32 (t = 0 on the zero state): 80. Zeros skipped: (2 + 1) x 8 = 24 and 0 + 2 x 8 = 16: 40.
    The cells: 4 hidden elements x (3 muls + 5 adds + 5 non-linear). Energy: dense 80 * 4 + 12 * 3 + 20 * 0.5
    + 20 * 8 = 526 pJ; zero-skipped 40 * 4 + 206 = 366 pJ."""
    x = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 2.0, 0.0]]])
    expected = dict(
        macs_dense=80,
        macs_zero_skipped=40,
        acs_dense=0,
        acs=0,
        lstm_elementwise=52,
        elementwise_mul=12,
        elementwise_add=20,
        elementwise_nonlinear=20,
        multiplications=92,
        multiplications_zero_skipped=52,
        additions=100,
        additions_zero_skipped=60,
        nonlinear=20,
    )
    _assert_counts_and_energy(_constant_weights(LSTM(3, 2)), x, expected, 526.0, 366.0)


def test_energy_of_horowitz_figures_and_bad_inputs() -> None:
    """45 nm, 32-bit float (Horowitz 2014): MAC 4.6 pJ, AC 0.9 pJ; 1000 MACs, 2000 ACs at full rate."""
    horowitz = dict(mac_pj=4.6, ac_pj=0.9, mul_pj=3.7, add_pj=0.9, nonlinear_pj=4.6)
    counts = dict(
        macs_dense=1000,
        macs_zero_skipped=500,
        acs_dense=2000,
        acs=100,
        elementwise_mul=10,
        elementwise_add=20,
        elementwise_nonlinear=1,
    )
    result = energy(counts, horowitz)
    assert result["dense_pj"] == pytest.approx(4600 + 1800 + 37 + 18 + 4.6)
    assert result["zero_skipped_pj"] == pytest.approx(2300 + 90 + 37 + 18 + 4.6)
    for key, value in (("ac_pj", 0), ("mul_pj", -1.0), ("add_pj", "0.9"), ("nonlinear_pj", None)):
        with pytest.raises(ValueError, match=key):
            energy(counts, {**horowitz, key: value})
    with pytest.raises(ValueError, match="macs_zero_skipped"):
        energy({k: v for k, v in counts.items() if k != "macs_zero_skipped"}, horowitz)


def test_zero_skipped_counts_of_a_real_network() -> None:
    """Every layer's zero-skipped count is at most its dense count, and the totals add up."""
    torch.manual_seed(0)
    kwargs, make_input = MODELS["dvs128_gesture"]
    cost = model_cost(create_model("dvs128_gesture", **kwargs), [make_input()])
    totals = cost["totals"]
    assert totals["macs_dense"] == totals["macs"]
    assert totals["macs_dense"] + totals["acs_dense"] == totals["dense_synaptic_ops"]
    assert 0 < totals["macs_zero_skipped"] <= totals["macs_dense"]
    assert 0 < totals["acs"] < totals["acs_dense"]
    elementwise = totals["elementwise_mul"] + totals["elementwise_add"] + totals["elementwise_nonlinear"]
    assert elementwise == totals["elementwise"]
    for layer in cost["layers"]:
        assert layer["zero_skipped"] <= layer["dense_macs"]
        assert layer["zero_skipped"] == layer["acs"] + layer["macs_zero_skipped"]
    result = energy(cost, PER_OP)
    assert result["zero_skipped_pj"] < result["dense_pj"]


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
