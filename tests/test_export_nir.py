"""NIR export (bidl.export.nir): round trip, determinism, refusals, the graph's meaning under the NIR
spec (a reference Euler simulation of its nodes), and a spike-exact cross-check against snnTorch's and
Norse's NIR importers (the Norse cases skip without the ``norse`` package)."""

from __future__ import annotations

import copy
import json
import time
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

nir = pytest.importorskip("nir")
pytest.importorskip("snntorch")

from bidl import FCLIF, LIF, ConvLIF, FCLIFPlus, TemporalAggregation, get_iteration_mode  # noqa: E402
from bidl.export.nir import (  # noqa: E402
    NIRExportError,
    bidl_spikes,
    export_nir,
    import_norse,
    import_snntorch,
    run_norse,
    run_snntorch,
    to_nir,
)
from bidl.models import create_model  # noqa: E402

SMALL_DVS = dict(channels=(8, 8, 16), hidden=16, height=16, width=16, n_classes=4)


def randomize_batchnorms(network: nn.Module, seed: int = 0) -> nn.Module:
    """Random but sane running statistics and affine parameters (gamma > 0, so a * alpha < 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                c = module.num_features
                module.running_mean.copy_(torch.randn(c, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(c, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(c, generator=generator) * 0.1)
    return network.eval()


def small_dvs(name: str = "dvs128_gesture_authors", seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorms(create_model(name, **{**SMALL_DVS, **kwargs}), seed)


def event_counts(steps: int, shape: tuple[int, ...], rate: float = 0.3, seed: int = 0) -> torch.Tensor:
    """Poisson-like event counts ``[T, 1, *shape]``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((steps, 1, *shape), rate), generator=generator)


def channel_leak_fc() -> tuple[nn.Module, torch.Tensor]:
    """Two FCLIF layers with one leak per neuron (``sharing="channel"``), and 12 steps of analog input."""
    torch.manual_seed(1)
    net = nn.Sequential(
        FCLIF(10, 16, norm=None, sharing="channel"),
        FCLIF(16, 5, norm=None, sharing="channel"),
    )
    with torch.no_grad():
        net[0].neuron.alpha.copy_(torch.linspace(0.0, 0.9, 16))
        net[1].neuron.alpha.copy_(torch.linspace(0.2, 0.6, 5))
    inputs = torch.rand(12, 1, 10, generator=torch.Generator().manual_seed(1)) * 2
    return net, inputs


Importer = tuple[Callable[..., nn.Module], Callable[[nn.Module, torch.Tensor], torch.Tensor]]


@pytest.fixture(params=["snntorch", "norse"])
def importer(request) -> Importer:
    """``(import_graph, run_module)`` of one NIR importer."""
    if request.param == "norse":
        pytest.importorskip("norse")
        return import_norse, run_norse
    return import_snntorch, run_snntorch


def run_imported(importer: Importer, graph, inputs: torch.Tensor) -> torch.Tensor:
    import_graph, run_module = importer
    return run_module(import_graph(graph), inputs)


def nir_reference(graph, inputs: torch.Tensor) -> torch.Tensor:
    """The graph's output spikes ``[T, 1, n]`` by the NIR spec, each node integrated in float64 with the
    forward Euler step ``metadata["dt"]`` (a CubaLIF's synaptic current and membrane updated from the
    previous step's values and this step's input, every state starting at rest)."""
    dt = graph.metadata["dt"]
    order = [name for name in graph.nodes if name != "input"]  # the exporter writes nodes in dataflow order
    source = {dst: src for src, dst in graph.edges}
    states: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    steps = []

    def t64(x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float64))

    for x in inputs:
        values = {"input": x.double()}
        for name in order:
            node, y = graph.nodes[name], values[source[name]]
            if isinstance(node, nir.Conv2d):
                y = F.conv2d(y, t64(node.weight), t64(node.bias), node.stride, node.padding, node.dilation)
            elif isinstance(node, nir.Affine):
                y = y @ t64(node.weight).T + t64(node.bias)
            elif isinstance(node, nir.Flatten):
                end = node.end_dim + 1 if node.end_dim >= 0 else node.end_dim
                y = y.flatten(node.start_dim + 1, end)
            elif isinstance(node, nir.AvgPool2d):
                y = F.avg_pool2d(y, tuple(node.kernel_size), tuple(node.stride), tuple(node.padding))
            elif isinstance(node, nir.CubaLIF):
                leak = t64(node.v_leak)
                current, v = states.get(name, (torch.zeros_like(y), leak.expand_as(y)))
                current = current + dt / t64(node.tau_syn) * (-current + t64(node.w_in) * y)
                v = v + dt / t64(node.tau_mem) * (leak - v + t64(node.r) * current)
                spikes = (v > t64(node.v_threshold)).double()
                states[name] = (current, torch.where(spikes > 0, t64(node.v_reset).expand_as(v), v))
                y = spikes
            elif not isinstance(node, nir.Output):
                raise AssertionError(f"{name}: no reference for {type(node).__name__}")
            values[name] = y
        steps.append(values["output"].reshape(x.shape[0], -1).float())
    return torch.stack(steps)


def assert_same_value(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            assert_same_value(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, str | bytes) or a is None:
        assert a == b, where
    else:
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        assert a_arr.shape == b_arr.shape and np.array_equal(a_arr, b_arr), where
        if a_arr.dtype.kind == "f":
            assert a_arr.dtype == b_arr.dtype, where


# -- round trip, summary, determinism -----------------------------------------------------------------------
def test_round_trip_keeps_nodes_edges_parameters_and_metadata(tmp_path):
    net = small_dvs()
    summary = export_nir(net, torch.zeros(1, 2, 16, 16), tmp_path / "dvs.nir")
    graph = to_nir(net, torch.zeros(1, 2, 16, 16))
    read = nir.read(tmp_path / "dvs.nir")

    assert set(read.nodes) == set(graph.nodes)
    assert read.edges == graph.edges
    for name, node in graph.nodes.items():
        assert type(read.nodes[name]) is type(node), name
        expected = node.to_dict()
        if isinstance(node, nir.AvgPool2d):
            expected.pop("metadata")
        got = {k: v for k, v in read.nodes[name].to_dict().items() if k in expected}
        assert_same_value(expected, got, name)
    assert read.metadata["dt"] == pytest.approx(1e-4)
    assert read.metadata["readout"] == {"aggregation": "mean", "module": "aggregate", "node": "fc2.neuron"}
    assert read.metadata["bidl_version"] == graph.metadata["bidl_version"]
    assert "V_0 = 0" in read.metadata["initial_state"]

    assert [n["name"] for n in summary["nodes"]] == list(graph.nodes)
    assert [n["type"] for n in summary["nodes"]][:4] == ["Input", "Conv2d", "Conv2d", "CubaLIF"]
    assert summary["dt"] == 1e-4 and summary["readout"]["aggregation"] == "mean"
    lif = summary["lif"]["conv1.neuron"]
    assert lif["batchnorm_folded"] and lif["theta"] == 0.5 and lif["v_reset"] == 0.0
    bn = net.conv1.neuron.norm
    a = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    assert lif["alpha"] == pytest.approx((0.3 * a).tolist())
    json.dumps(summary)  # JSON-able


def test_export_restores_modes_and_training_flags(tmp_path):
    net = small_dvs().train()
    to_nir(net, torch.zeros(1, 2, 16, 16))
    assert net.training and all(m.training for m in net.modules())
    assert get_iteration_mode(net) == "internal"
    assert net.conv1.neuron.v is None


def test_export_is_byte_identical(tmp_path):
    example = torch.zeros(1, 2, 16, 16)
    export_nir(small_dvs(), example, tmp_path / "a.nir")
    time.sleep(1.1)  # HDF5 object timestamps have a resolution of one second
    export_nir(small_dvs(), example, tmp_path / "b.nir")  # a second, identically built model
    assert (tmp_path / "a.nir").read_bytes() == (tmp_path / "b.nir").read_bytes()


# -- the graph's meaning -----------------------------------------------------------------------------------
def test_neurons_are_cuba_lifs_with_an_instantaneous_synapse():
    net, inputs = channel_leak_fc()
    for dt in (1e-4, 1e-3):
        graph = to_nir(net, inputs[0], dt=dt)
        node = graph.nodes["0.neuron"]
        assert isinstance(node, nir.CubaLIF)
        alpha = net[0].neuron.alpha.detach().double().numpy()
        assert np.all(node.tau_syn == np.float32(dt)) and np.all(node.w_in == 1)
        assert np.allclose(np.float32(1) - np.float32(dt) / node.tau_mem, alpha, rtol=0, atol=1e-7)
        assert np.array_equal(node.r, (1 / (1 - alpha)).astype(np.float32))  # = tau_mem / dt
        assert np.allclose(node.r, node.tau_mem / dt, rtol=1e-6)
        assert np.all(node.v_leak == 0) and np.all(node.v_threshold == 0.5) and np.all(node.v_reset == 0)


@pytest.mark.parametrize("dt", [1e-4, 1e-3])
def test_graphs_spike_as_bidl_under_the_nir_spec(dt):
    """A float64 Euler simulation of the NIR equations (no importer involved) reproduces bidl's spikes."""
    cases = [channel_leak_fc(), (small_dvs(), event_counts(12, (2, 16, 16)))]
    torch.manual_seed(2)
    pooled = nn.Sequential(
        ConvLIF(2, 4, 3, padding=1, norm="input", pooling=2, pool_type="avg"),
        FCLIF(4 * 4 * 4, 5, norm="input"),
    )
    cases.append((randomize_batchnorms(pooled, seed=2), event_counts(12, (2, 8, 8), rate=0.5, seed=2)))
    for net, inputs in cases:
        expected = bidl_spikes(net, inputs)
        assert 0 < expected.sum() < expected.numel()
        graph = to_nir(net, inputs[0], dt=dt)
        assert torch.equal(nir_reference(graph, inputs), expected)
        wrong = copy.deepcopy(graph)  # the reference can fail: a synapse that keeps half its current
        for node in wrong.nodes.values():
            if isinstance(node, nir.CubaLIF):
                node.tau_syn = node.tau_syn * 2
        assert not torch.equal(nir_reference(wrong, inputs), expected)


# -- cross-check against snnTorch and Norse -----------------------------------------------------------------
def test_dvs128_spikes_match_with_folded_batchnorm(tmp_path, importer):
    import_graph, run_module = importer
    net = small_dvs()
    inputs = event_counts(12, (2, 16, 16))
    expected = bidl_spikes(net, inputs)
    assert expected.shape == (12, 1, 4)
    assert 0 < expected.sum() < expected.numel(), "the output layer must spike, at a moderate rate"

    export_nir(net, inputs[0], tmp_path / "dvs.nir")
    got = run_module(import_graph(tmp_path / "dvs.nir"), inputs)
    assert torch.equal(got, expected)
    module = import_graph(to_nir(net, inputs[0]))  # from the in-memory graph too, and twice (reset)
    assert torch.equal(run_module(module, inputs), expected)
    assert torch.equal(run_module(module, inputs), expected)


def test_cross_check_detects_a_wrong_fold(importer):
    """The same graph with the unfolded leak alpha (BatchNorm scale ignored) no longer matches."""
    net = small_dvs()
    inputs = event_counts(12, (2, 16, 16))
    expected = bidl_spikes(net, inputs)
    graph = to_nir(net, inputs[0])
    wrong = copy.deepcopy(graph)
    for node in wrong.nodes.values():
        if isinstance(node, nir.CubaLIF):
            node.tau_mem = np.full_like(node.tau_mem, 1e-4 / (1 - 0.3))
            node.r = np.full_like(node.r, 1 / (1 - 0.3))
    assert not torch.equal(run_imported(importer, wrong, inputs), expected)
    assert torch.equal(run_imported(importer, graph, inputs), expected)


def test_fc_network_without_norm_matches_with_channel_leaks_and_any_dt(importer):
    net, inputs = channel_leak_fc()
    expected = bidl_spikes(net, inputs)
    assert 0 < expected.sum() < expected.numel()
    graph = to_nir(net, inputs[0])
    assert graph.metadata["readout"] == {"aggregation": "none", "node": "1.neuron"}
    assert torch.equal(run_imported(importer, graph, inputs), expected)
    # another Euler step: the time constants change (snnTorch's import, dt fixed at 1e-4, is rescaled to
    # match; Norse's integrates with the graph's dt)
    coarse = to_nir(net, inputs[0], dt=1e-3)
    assert np.allclose(coarse.nodes["0.neuron"].tau_mem, 10 * graph.nodes["0.neuron"].tau_mem)
    assert np.allclose(coarse.nodes["0.neuron"].tau_syn, 10 * graph.nodes["0.neuron"].tau_syn)
    assert np.array_equal(coarse.nodes["0.neuron"].r, graph.nodes["0.neuron"].r)
    assert torch.equal(run_imported(importer, coarse, inputs), expected)


def test_norse_integrates_with_the_graphs_dt():
    pytest.importorskip("norse")
    net, inputs = channel_leak_fc()
    expected = bidl_spikes(net, inputs)
    graph = to_nir(net, inputs[0], dt=1e-4)
    assert torch.equal(run_norse(import_norse(graph, dt=1e-4), inputs), expected)
    # Norse's own default step (1e-3) on a graph written for 1e-4: a leak of 1 - 10 (1 - alpha)
    assert not torch.equal(run_norse(import_norse(graph, dt=1e-3), inputs), expected)
    del graph.metadata["dt"]
    with pytest.raises(ValueError, match="dt"):
        import_norse(graph)


def test_a_plain_lif_spikes_as_bidl_in_only_one_importer():
    """Why the neurons are CubaLIFs: snnTorch leaves a LIF's r out of its dynamics, Norse ignores r."""
    norse_torch = pytest.importorskip("norse.torch")
    net, inputs = channel_leak_fc()
    expected = bidl_spikes(net, inputs)
    graph = to_nir(net, inputs[0])
    lif = copy.deepcopy(graph)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.CubaLIF):
            lif.nodes[name] = nir.LIF(
                tau=node.tau_mem, r=node.r, v_leak=node.v_leak, v_threshold=node.v_threshold
            )
    assert torch.equal(nir_reference(graph, inputs), expected)
    assert torch.equal(run_snntorch(import_snntorch(lif), inputs), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Norse 1.1 calls the deprecated nirtorch.load
        norse_module = norse_torch.from_nir(lif, dt=1e-4, ignore_warnings=True)
    assert not torch.equal(run_norse(norse_module, inputs), expected)
    with pytest.raises(ValueError, match="r != 1"):
        import_norse(lif)


def test_input_norm_and_average_pooling_match_snntorch():
    torch.manual_seed(2)
    net = nn.Sequential(
        ConvLIF(2, 4, 3, padding=1, norm="input", pooling=2, pool_type="avg"),
        FCLIF(4 * 4 * 4, 5, norm="input"),
    )
    randomize_batchnorms(net, seed=2)
    inputs = event_counts(12, (2, 8, 8), rate=0.5, seed=2)
    expected = bidl_spikes(net, inputs)
    assert 0 < expected.sum() < expected.numel()
    graph = to_nir(net, inputs[0])
    assert [type(graph.nodes[n]).__name__ for n in ("0.synapse", "0.pool", "0.neuron", "1.flatten")] == [
        "Conv2d",
        "AvgPool2d",
        "CubaLIF",
        "Flatten",
    ]
    assert graph.nodes["0.neuron"].metadata["folded_norm"] == "input"
    assert torch.equal(run_snntorch(import_snntorch(graph), inputs), expected)


def test_bare_layers_and_a_root_block_match(importer):
    torch.manual_seed(3)
    bare = nn.Sequential(
        nn.Flatten(),
        nn.Linear(2 * 4 * 4, 8),
        LIF(norm=nn.BatchNorm1d(8)),
        nn.Dropout(0.5),
        nn.Linear(8, 3),
        LIF(),
    )
    root = FCLIF(2 * 4 * 4, 5)  # the network is the block itself: nodes named without a prefix
    grouped = nn.Sequential(  # a grouped conv is written dense (block-diagonal), 'same' padding explicitly
        nn.Conv2d(2, 4, 3, padding="same", groups=2),
        LIF(sharing="channel", channels=4, theta=0.2),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 3),
        LIF(theta=0.1),
    )
    cases = [
        (bare, ["0", "1", "2.norm", "2", "4", "5"]),
        (root, ["flatten", "synapse", "neuron"]),
        (grouped, ["0", "1", "2", "3", "4", "5"]),
    ]
    for net, names in cases:
        randomize_batchnorms(net, seed=3)
        inputs = event_counts(12, (2, 4, 4), rate=1.0, seed=3)
        expected = bidl_spikes(net, inputs)
        assert 0 < expected.sum() < expected.numel()
        graph = to_nir(net, inputs[0])
        assert list(graph.nodes) == ["input", *names, "output"]
        if importer[0] is import_norse and any(isinstance(n, nir.AvgPool2d) for n in graph.nodes.values()):
            # Norse 1.1 maps no average pooling
            with pytest.raises(ValueError, match="2: Norse's importer has no AvgPool2d"):
                import_norse(graph)
            continue
        assert torch.equal(run_imported(importer, graph, inputs), expected)


def test_nonzero_beta_or_v_reset_export_but_the_imports_refuse_them(importer):
    import_graph = importer[0]
    net = nn.Sequential(FCLIF(6, 3, norm=None, beta=0.1))
    graph = to_nir(net, torch.zeros(1, 6))
    lif = graph.nodes["0.neuron"]
    assert np.allclose(lif.v_leak, 0.1 / 0.7)
    assert "0.neuron" in graph.metadata["caveats"]
    with pytest.raises(ValueError, match="0.neuron: v_leak"):
        import_graph(graph)
    # both importers ignore v_reset (they reset to 0): refused rather than silently wrong
    graph = to_nir(nn.Sequential(FCLIF(6, 3, norm=None, v_reset=-0.2)), torch.zeros(1, 6))
    assert np.all(graph.nodes["0.neuron"].v_reset == np.float32(-0.2))
    with pytest.raises(ValueError, match="0.neuron: v_reset"):
        import_graph(graph)


# -- which networks export -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["dvs128_gesture_authors", "rgb_gesture_authors", "dvs128_gesture", "rgb_gesture"]
)
def test_gesture_networks_export(name):
    graph = to_nir(small_dvs(name), torch.zeros(1, 2, 16, 16))
    assert sum(isinstance(node, nir.CubaLIF) for node in graph.nodes.values()) == 5
    assert graph.metadata["readout"]["aggregation"] == "mean"


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = FCLIF(6, 6, norm=None)
        self.b = FCLIF(6, 6, norm=None)

    def forward(self, x):
        return self.b(self.a(x) + x)


class _HeadAfterAggregation(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = FCLIF(6, 8, norm=None)
        self.aggregate = TemporalAggregation("sum")
        self.head = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x):
        return self.head(self.aggregate(self.body(x)))


def _paper(name: str, **kwargs):
    return lambda: create_model(name, **kwargs)


def _unfoldable():
    net = small_dvs()
    with torch.no_grad():
        net.conv2.neuron.norm.weight[3] = 10.0  # a = 10 / sqrt(var + eps) > 1 / 0.3
    return net


@pytest.mark.parametrize(
    "build, example, path, reason",
    [
        (
            _paper("cifar10_dvs", channels=(4,) * 5, hidden=8, height=64, width=64),
            torch.zeros(1, 2, 64, 64),
            "blocks.1",
            "max pooling",
        ),
        (
            _paper("luna16_cls", channels=(4, 4, 4), hidden=(8, 8), height=8, width=8),
            torch.zeros(1, 1, 8, 8),
            "blocks.1",
            "max pooling",
        ),
        (
            _paper("imdb", vocab_size=20, embedding_dim=8, hidden=8),
            torch.zeros(1, dtype=torch.long),
            "embedding",
            "embedding",
        ),
        (
            _paper("jester_v1", widths=(4, 4, 4, 4), blocks=(1, 1, 1, 1)),
            torch.zeros(1, 3, 16, 16),
            "stem_neuron",
            "LIAF",
        ),
        (
            _paper("jester_v2", widths=(4, 4, 4, 4), blocks=(1, 1, 1, 1)),
            torch.zeros(1, 3, 16, 16),
            "stem_neuron",
            "electrically coupled",
        ),
        (
            _paper("cifar10_dvs_authors", channels=(4,) * 5, hidden=8, height=64, width=64),
            torch.zeros(1, 2, 64, 64),
            "blocks.0.neuron",
            "LIAF",
        ),
        (lambda: nn.Sequential(FCLIF(6, 3, reset="soft")), torch.zeros(1, 6), "0.neuron", "soft reset"),
        (lambda: nn.Sequential(FCLIFPlus(6, 3)), torch.zeros(1, 6), "0.neuron", "LIF+"),
        (
            lambda: nn.Sequential(ConvLIF(2, 4, 3, pooling=2)),
            torch.zeros(1, 2, 8, 8),
            "0.pool",
            "max pooling",
        ),
        (_Residual, torch.zeros(1, 6), "b (FCLIF)", "residual sum"),
        (_HeadAfterAggregation, torch.zeros(1, 6), "head.0", "follows the temporal aggregation 'aggregate'"),
        (_unfoldable, torch.zeros(1, 2, 16, 16), "conv2.neuron", "channel 3"),
    ],
)
def test_inexpressible_networks_are_refused_naming_the_module(build, example, path, reason):
    network = build()
    with pytest.raises(NIRExportError) as error:
        to_nir(network, example)
    message = str(error.value)
    assert message.startswith(path), message
    assert reason in message, message
