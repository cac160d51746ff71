"""The state-aware ONNX export (bidl.export): states and their ids, the neuron built-ins as single nodes, the
ONNX functions, the runtime over T steps, spikes and outputs against PyTorch, fp16, reproducible files."""

import uuid
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml
from helpers import randomise_batchnorm
from torch import nn

from bidl import FCLIF, LIF, ConvLIF, FCLIFPlus, TemporalAggregation, attach_plasticity, reset_states
from bidl.ann import CausalConv3d, ConvLSTM
from bidl.export import OPERATORS, ExportError, state_id, state_specs
from bidl.export.onnx import export_onnx, read_metadata, save_onnx
from bidl.export.runtime import StepRuntime
from bidl.export.verify import compare_runs, onnx_run, reference_run
from bidl.functional import inference_builtins, lif_step
from bidl.models import create_model
from bidl.models.baselines import structural_kwargs
from bidl.state import iteration_mode

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
EXPERIMENTS = CONFIG["experiments"]
BASELINES = CONFIG["baselines"]

# a short input per dataset family, batch 2 (the graph is traced with batch 1's example, run with 2)
INPUTS = {
    "dvs128_gesture": (2, 2, 40, 40),
    "rgb_gesture": (2, 2, 40, 40),
    "cifar10_dvs": (2, 2, 64, 64),
    "luna16": (1, 1, 32, 32),
    "jester": (3, 3, 32, 32),
}
STEPS = {"imdb": 16, "cifar10_dvs": 4, "jester": 3}


def make_input(dataset: str, batch: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    steps = STEPS.get(dataset, 6)
    if dataset == "imdb":
        return torch.randint(0, 1001, (batch, steps), generator=generator)
    channels, height, width = INPUTS[dataset][1:]
    return (torch.rand(batch, steps, channels, height, width, generator=generator) < 0.3).float() * 2


randomise = randomise_batchnorm


def check_matches(model: nn.Module, graph, inputs: torch.Tensor) -> dict:
    reference = reference_run(model, inputs)
    exported = onnx_run(graph, inputs)
    report = compare_runs(reference, exported)
    assert report["spikes"] > 0, "the network never fired: the check would prove nothing"
    assert report["differing_spikes"] == 0, report["layers"]
    assert report["max_abs_output_error"] <= 1e-4
    return report


# -- the built-ins and the state protocol ----------------------------------------------------------------


class _Plain:
    from bidl.functional import cmp_and_fire, reset_with_decay, soft_reset_with_decay

    cmp_and_fire = staticmethod(cmp_and_fire)
    reset_with_decay = staticmethod(reset_with_decay)
    soft_reset_with_decay = staticmethod(soft_reset_with_decay)


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("analog", [False, True])
def test_the_inference_built_ins_compute_what_the_training_step_does(reset, analog):
    x, v = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    params = dict(
        alpha=torch.rand(1, 3, 1, 1), beta=0.05, theta=0.3, v_reset=-0.1, reset=reset, analog=analog
    )
    expected = lif_step(x, v, **params)
    with inference_builtins(_Plain):
        got = lif_step(x, v, **params)
    assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])


def test_every_stateful_module_gives_and_takes_its_state():
    modules = {
        "lif": (LIF(iteration="external"), torch.randn(2, 4)),
        "sum": (TemporalAggregation("sum", iteration="external"), torch.randn(2, 4)),
        "mean": (TemporalAggregation("mean", iteration="external"), torch.randn(2, 4)),
        "conv3d": (CausalConv3d(2, 3, 3, padding=1, iteration="external"), torch.randn(2, 2, 6, 6)),
        "convlstm": (ConvLSTM(2, 3, 3, padding=1, iteration="external"), torch.randn(2, 2, 6, 6)),
    }
    for name, (module, x) in modules.items():
        module.eval()
        assert module.get_state() == {}, name
        module(x)
        held = {k: v.clone() for k, v in module.get_state().items()}
        assert held, name
        second = module(x * 0.5)
        module.reset_state()
        module.set_state(held)
        assert torch.allclose(module(x * 0.5), second), name
    with pytest.raises(KeyError, match="state needs exactly"):
        modules["mean"][0].set_state({"accumulator": torch.zeros(2, 4)})


def test_state_ids_are_uuids_fixed_by_the_module_path():
    net = create_model(
        "dvs128_gesture", channels=(4, 4, 8), hidden=8, height=16, width=16, n_classes=3
    ).eval()
    first = state_specs(net, torch.rand(1, 2, 16, 16))
    again = state_specs(
        create_model("dvs128_gesture", channels=(4, 4, 8), hidden=8, height=16, width=16, n_classes=3).eval(),
        torch.rand(1, 2, 16, 16),
    )
    assert [s.id for s in first] == [s.id for s in again]
    assert len({s.id for s in first}) == len(first) == 5 + 2  # 5 membranes, the mean's accumulator and count
    assert all(uuid.UUID(s.id).version == 5 for s in first)
    assert first[0].id == state_id(net, "conv1.neuron", "v")
    assert {(s.module, s.name) for s in first} >= {("conv1.neuron", "v"), ("aggregate", "steps")}
    assert all(s.init == 0.0 for s in first)


# -- the graph ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dvs128_graph():
    spec = EXPERIMENTS["dvs128_asm"]
    model = randomise(create_model(spec["model"], **spec["model_kwargs"]))
    return model, export_onnx(model, make_input("dvs128_gesture")[:1, 0])


def test_the_graph_has_one_node_per_built_in_and_states_named_by_their_ids(dvs128_graph):
    model, graph = dvs128_graph
    specs = read_metadata(graph)["states"]
    bidl_nodes = [n for n in graph.graph.node if n.domain == "bidl"]
    neurons = [path for path, m in model.named_modules() if isinstance(m, LIF)]
    for op, count in [
        ("cmp_and_fire", len(neurons)),
        ("reset_with_decay", len(neurons)),
        ("load_state", len(specs)),
        ("save_state", len(specs)),
    ]:
        assert sum(n.op_type == op for n in bidl_nodes) == count, op
    assert {n.name for n in bidl_nodes if n.op_type == "cmp_and_fire"} == {
        f"{p}/cmp_and_fire" for p in neurons
    }
    assert [i.name for i in graph.graph.input] == ["input", *(s.id for s in specs)]
    assert [o.name for o in graph.graph.output] == ["output", *(f"{s.id}:next" for s in specs)]
    attributes = {
        n.name: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        for n in bidl_nodes
        if n.op_type in ("load_state", "save_state")
    }
    for (
        n
    ) in bidl_nodes:  # each load node reads the graph input named by its id, each save node writes it back
        if n.op_type == "load_state":
            assert n.input[0] == attributes[n.name]["state_id"].decode()
            assert attributes[n.name]["init"] == 0.0
        if n.op_type == "save_state":
            consumers = [o.name for o in graph.graph.output]
            assert (
                n.output[0] == attributes[n.name]["state_id"].decode() + ":next" or n.output[0] in consumers
            )
    # the built-ins are ONNX functions of the bidl domain, defined in standard ops
    functions = {f.name: f for f in graph.functions}
    assert set(functions) == set(OPERATORS) - {"soft_reset_with_decay"}
    assert all(f.domain == "bidl" and all(n.domain == "" for n in f.node) for f in functions.values())
    assert [n.op_type for n in functions["cmp_and_fire"].node] == ["Greater", "CastLike"]
    assert list(functions["load_state"].attribute) == ["state_id", "init"]
    meta = read_metadata(graph)
    assert meta["neurons"]["conv1.neuron"]["alpha"] == pytest.approx(0.8)
    assert meta["input"]["shape"] == [2, 40, 40]


def test_the_runtime_runs_the_graph_over_t_steps_with_the_same_spikes_as_pytorch(dvs128_graph):
    model, graph = dvs128_graph
    inputs = make_input("dvs128_gesture", batch=3)
    check_matches(model, graph, inputs)
    runtime = StepRuntime(graph)
    with pytest.raises(RuntimeError, match="reset"):
        runtime.step(inputs[:, 0].numpy())
    # reset between samples: a batch run equals each sample run alone, twice in a row
    together = runtime.run(inputs.numpy())
    for i in range(3):
        for _ in range(2):
            assert np.allclose(runtime.run(inputs[i : i + 1].numpy()), together[i : i + 1], atol=1e-6)
    with torch.no_grad():
        iim = model(inputs).numpy()
    assert np.allclose(together[:, -1], iim, atol=1e-5)


def test_exporting_the_same_model_twice_gives_identical_files(tmp_path, dvs128_graph):
    model, graph = dvs128_graph
    again = export_onnx(model, make_input("dvs128_gesture")[:1, 0])
    first, second = save_onnx(graph, tmp_path / "a.onnx"), save_onnx(again, tmp_path / "b.onnx")
    assert first.read_bytes() == second.read_bytes()
    assert b"/tests/" not in first.read_bytes()  # no source paths of the machine that exported it


# -- every network of the pipeline, and the paper's registered networks --------------------------------


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_every_pipeline_network_exports_and_runs_as_pytorch(experiment):
    spec = EXPERIMENTS[experiment]
    model = randomise(create_model(spec["model"], **spec["model_kwargs"]))
    inputs = make_input(spec["dataset"])
    check_matches(model, export_onnx(model, inputs[:1, 0]), inputs)


@pytest.mark.parametrize("name", ["dvs128_asm_convlstm", "luna16_cls_conv3d", "imdb_lstm"])
def test_conventional_baselines_export_with_their_states(name):
    spec = BASELINES[name]
    of = EXPERIMENTS[spec["of"]]
    model = randomise(create_model(spec["model"], **structural_kwargs(of["model_kwargs"])))
    inputs = make_input(of["dataset"])
    graph = export_onnx(model, inputs[:1, 0])
    assert read_metadata(graph)["states"]
    reference, exported = reference_run(model, inputs), onnx_run(graph, inputs)
    assert np.abs(reference["output"] - exported["output"]).max() <= 1e-4


@pytest.mark.parametrize(
    ("name", "kwargs", "dataset"),
    [
        (
            "dvs128_gesture_authors",
            dict(channels=(4, 8, 8), hidden=16, height=40, width=40),
            "dvs128_gesture",
        ),
        (
            "cifar10_dvs_authors",
            dict(channels=(4, 4, 8, 8, 8), hidden=16, height=64, width=64),
            "cifar10_dvs",
        ),
        ("luna16_cls_authors", dict(channels=(4, 8, 8), hidden=(16, 8)), "luna16"),
        ("imdb_authors", dict(n_classes=2), "imdb"),
        ("jester_v1_authors", dict(widths=(4, 8, 8, 8)), "jester"),
        ("jester_v2", dict(widths=(4, 8, 8, 8)), "jester"),
    ],
)
def test_the_authors_variants_export_too(name, kwargs, dataset):
    model = randomise(create_model(name, theta=0.2, **kwargs))
    inputs = make_input(dataset)
    graph = export_onnx(model, inputs[:1, 0])
    check_matches(model, graph, inputs)
    if name == "jester_v2":  # RMP soft reset: its own built-in
        assert any(n.op_type == "soft_reset_with_decay" for n in graph.graph.node)


def test_lifplus_neurons_export_with_every_state_variable():
    model = nn.Sequential(
        FCLIFPlus(8, 6, inhibition="adt", refractory="absolute", norm=None, iteration="external", theta=0.2),
        TemporalAggregation("sum", iteration="external"),
    ).eval()
    inputs = torch.rand(2, 10, 8)
    graph = export_onnx(model, inputs[:1, 0])
    names = {s.name for s in read_metadata(graph)["states"]}
    assert {"v", "accumulator"} < names and len(names) > 3
    check_matches(model, graph, inputs)


def test_fp16_variant_runs_and_its_error_is_measured(dvs128_graph):
    model, _ = dvs128_graph
    inputs = make_input("dvs128_gesture")
    half = export_onnx(model, inputs[:1, 0], dtype=torch.float16)
    assert read_metadata(half)["dtype"] == "float16"
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    report = compare_runs(reference_run(model, inputs), onnx_run(half, inputs.half()))
    assert report["spikes"] > 0 and report["max_abs_output_error"] < 0.5  # measured, not exact
    assert model.conv1.synapse.weight.dtype == torch.float32  # the model itself is left in fp32


# -- what the exporter refuses ---------------------------------------------------------------------------


def test_export_refuses_training_mode_and_active_plasticity():
    net = nn.Sequential(FCLIF(4, 3, norm=None, iteration="external"))
    with pytest.raises(ExportError, match="training mode"):
        export_onnx(net, torch.rand(1, 4))
    net.eval()
    rule = attach_plasticity(net[0], "stdp")
    with pytest.raises(ExportError, match=r"0\.plasticity: an active plasticity rule"):
        export_onnx(net, torch.rand(1, 4))
    rule.active = False
    graph = export_onnx(net.eval(), torch.rand(1, 4))
    assert [s.name for s in read_metadata(graph)["states"]] == ["v"]


def test_export_leaves_the_network_as_it_was():
    net = nn.Sequential(ConvLIF(2, 4, 3, padding=1), TemporalAggregation("mean")).eval()
    x = torch.rand(1, 5, 2, 8, 8)
    with torch.no_grad():
        before = net(x)
    export_onnx(net, x[:, 0])
    assert net[0].iteration == "internal" and net[0].neuron.v is None
    with torch.no_grad():
        assert torch.equal(net(x), before)
    with iteration_mode(net, "external"):
        reset_states(net)


# -- the verification and the bundle the pipeline writes ---------------------------------------------------


def _run(spikes: np.ndarray, margins: np.ndarray, output: np.ndarray) -> dict:
    return {"output": output, "spikes": {"a": spikes}, "margins": {"a": margins}}


def test_compare_runs_accepts_a_divergence_only_where_it_starts_at_a_threshold_tie():
    spikes = np.zeros((2, 3, 4), dtype=np.float32)
    margins = np.full((2, 3, 4), 0.3, dtype=np.float32)
    output = np.zeros((2, 3, 2), dtype=np.float32)
    reference = _run(spikes, margins, output)
    flipped = spikes.copy()
    flipped[1, 1, 2] = 1.0  # sample 1 parts at step 1 ...
    flipped[1, 2, :] = 1.0  # ... and differs from then on
    tie_margins = margins.copy()
    tie_margins[1, 1, 2] = 6e-8  # at a membrane 1 ulp from theta: a tie
    parted = output.copy()
    parted[1] += 0.5  # the sample that parted may end anywhere
    report = compare_runs(_run(spikes, tie_margins, output), _run(flipped, margins, parted))
    assert report["passed"] and report["parted_at_tie"] == [1] and report["identical_samples"] == 1
    assert report["first_divergence"]["1"] == {
        "step": 1,
        "layer": "a",
        "spikes": 1,
        "max_margin": pytest.approx(6e-8),
        "tie": True,
    }
    report = compare_runs(reference, _run(flipped, margins, output))  # the same flip far from theta
    assert not report["passed"] and report["parted_at_tie"] == []
    report = compare_runs(reference, _run(spikes, margins, output + 1e-3))  # same spikes, outputs apart
    assert not report["passed"] and report["identical_samples"] == 0


def test_export_bundle_writes_every_file_and_leaves_nothing_when_verification_fails(tmp_path, monkeypatch):
    from bidl.export import bundle

    spec = EXPERIMENTS["dvs128_asm"]
    model = randomise(create_model(spec["model"], **spec["model_kwargs"]))
    samples = list(make_input("dvs128_gesture", batch=3))
    report = bundle.export_bundle(model, samples, tmp_path / "dvs", name="dvs128_asm")
    assert sorted(p.name for p in (tmp_path / "dvs").iterdir()) == sorted(bundle.FILES.values())
    manifest = yaml.safe_load((tmp_path / "dvs" / "manifest.json").read_text())
    assert manifest["builtin_nodes"]["cmp_and_fire"] == 5 and len(manifest["states"]) == 7
    assert set(manifest["files"]) == {"model.onnx", "model_fp16.onnx", "model.nir"}
    assert report["onnx"]["passed"] and report["reproducible"] and report["nir"]["snntorch"]["same_spikes"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary folder left

    def wrong(graph, inputs, **kwargs):  # a graph whose spikes are all off: must fail the export
        run = onnx_run(graph, inputs, **kwargs)
        return {**run, "spikes": {k: 1 - v for k, v in run["spikes"].items()}}

    monkeypatch.setattr(bundle, "onnx_run", wrong)
    with pytest.raises(bundle.ExportVerificationError, match="does not match"):
        bundle.export_bundle(model, samples, tmp_path / "bad", name="bad")
    assert not (tmp_path / "bad").exists() and (tmp_path / "bad.verification.failed.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.verification.failed.json", "dvs"]


def test_onnxruntime_latency_streams_the_exported_graph(tmp_path, dvs128_graph):
    from bidl.latency import measure_onnxruntime

    _, graph = dvs128_graph
    path = save_onnx(graph, tmp_path / "model.onnx")
    samples = list(make_input("dvs128_gesture", batch=2))
    timing = measure_onnxruntime(path, samples, threads=1, warmup=0)
    assert timing["eim"]["n_steps"] == 2 * samples[0].shape[0] and timing["threads"] == 1
    assert timing["eim"]["step_ms_p95"] >= timing["eim"]["step_ms_median"] > 0
