"""The exported graphs evaluated as deployed (bidl.export.accuracy): top-1 of the fp32 and fp16 graphs on a
test split, streamed step by step through ONNX Runtime, with Wilson intervals, in the bundle's report and
the export table; and the fp16 graph whose states and threshold compare stay float32."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import randomise_batchnorm
from torch import nn
from torch.utils.data import Dataset, Subset

from bidl import FCLIF, TemporalAggregation
from bidl.export.accuracy import evaluate_graphs, graph_predictions, spread_indices, wilson_interval
from bidl.export.bundle import export_bundle
from bidl.export.onnx import export_onnx, read_metadata
from bidl.export.runtime import StepRuntime
from bidl.export.verify import compare_runs, onnx_run, reference_run
from bidl.functional import lif_step
from bidl.models import create_model

REPO = Path(__file__).resolve().parents[1]


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Events(Dataset):
    """Random event frames ``[T, 2, 16, 16]`` with labels, as a cached split gives them."""

    def __init__(self, n: int, steps: int = 5, classes: int = 3, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.frames = (torch.rand(n, steps, 2, 16, 16, generator=generator) < 0.3).float()
        self.labels = torch.randint(0, classes, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int):
        return self.frames[i], int(self.labels[i])


def _tiny_network(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model(
        "dvs128_gesture", channels=(4, 4, 8), hidden=8, height=16, width=16, n_classes=3, theta=0.2
    )
    return randomise_batchnorm(model, seed)


def test_wilson_interval_has_the_textbook_values():
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    low, high = wilson_interval(450, 500)  # narrows with n around the share
    assert low < 0.9 < high and high - low < 0.06
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="correct <= n"):
        wilson_interval(11, 10)


def test_the_bundle_evaluates_the_fp16_file_it_writes_and_the_table_shows_it(tmp_path):
    network = _tiny_network()
    test_set = _Events(23)
    samples = [test_set[i][0] for i in range(3)]
    metadata = {"experiment": "tiny", "registered_model": "dvs128_gesture", "data_source": "random events"}
    report = export_bundle(
        network,
        samples,
        tmp_path / "tiny",
        name="tiny",
        test_set=test_set,
        eval_batch_size=8,
        metadata=metadata,
    )
    accuracy = report["accuracy"]
    assert accuracy["samples"] == accuracy["split_samples"] == 23
    # the fp16 number is the written fp16 file's own, streamed step by step through ONNX Runtime
    predicted, labels = graph_predictions(tmp_path / "tiny" / "model_fp16.onnx", test_set, batch_size=5)
    assert accuracy["onnx_fp16"]["correct"] == int((predicted == labels).sum())
    assert accuracy["onnx_fp16"]["top1"] == pytest.approx(100 * (predicted == labels).mean(), abs=1e-3)
    runtime = StepRuntime(tmp_path / "tiny" / "model_fp16.onnx")
    by_run = runtime.run(test_set.frames.numpy())[:, -1].argmax(1)
    assert np.array_equal(by_run, predicted)  # in batches or all at once: the same classes
    # the fp32 graph agrees with PyTorch on every sample (the strict check passed)
    assert accuracy["agreement"]["onnx"] == 100.0
    assert accuracy["onnx"]["top1"] == accuracy["pytorch"]["top1"]
    for key in ("pytorch", "onnx", "onnx_fp16"):
        low, high = wilson_interval(accuracy[key]["correct"], 23)
        assert accuracy[key]["ci95"] == pytest.approx([100 * low, 100 * high], abs=1e-3)
    assert report["onnx_fp16"]["precision"]["states"] == "float32"

    render = _load_script("render_export")
    row = render.export_row(tmp_path / "tiny")
    half, fp32 = accuracy["onnx_fp16"], accuracy["onnx"]
    assert row["test samples"] == "23"
    assert row["fp16 graph top-1"] == f"{half['top1']:.1f} [{half['ci95'][0]:.1f}, {half['ci95'][1]:.1f}]"
    assert row["fp32 graph top-1"] == f"{fp32['top1']:.1f} [{fp32['ci95'][0]:.1f}, {fp32['ci95'][1]:.1f}]"
    assert row["fp16 - fp32 (points)"] == f"{half['top1'] - fp32['top1']:+.1f}"
    assert row["fp16 precision"] == "fp16 synapses, float32 states and threshold compare"
    assert row["fp16 class = PyTorch's"] == f"{accuracy['agreement']['onnx_fp16']:.1f} %"
    config = {"name": "test", "description": "a test"}
    render.main(config, [tmp_path / "tiny"], tmp_path / "table")
    markdown = (tmp_path / "table.md").read_text()
    assert row["fp16 graph top-1"] in markdown and "fp16 graph top-1" in markdown


def test_a_capped_evaluation_says_how_many_samples_it_used(tmp_path):
    network = _tiny_network(1)
    test_set = _Events(9, seed=1)
    example = test_set[0][0][:1]
    graphs = {
        "onnx": export_onnx(network, example),
        "onnx_fp16": export_onnx(network, example, dtype=torch.float16),
    }
    accuracy = evaluate_graphs(network, graphs, test_set, samples=4, batch_size=3)
    assert accuracy["samples"] == 4 and accuracy["split_samples"] == 9
    assert all(accuracy[key]["samples"] == 4 for key in ("pytorch", "onnx", "onnx_fp16"))
    # evenly spaced over the split (a split stored class by class keeps every class), not its first four
    assert spread_indices(9, 4) == [0, 2, 4, 6]
    predicted, labels = graph_predictions(graphs["onnx_fp16"], Subset(test_set, [0, 2, 4, 6]))
    assert accuracy["onnx_fp16"]["correct"] == int((predicted == labels).sum())
    assert labels.tolist() == [test_set[i][1] for i in (0, 2, 4, 6)]
    # rendered from a bundle's files: the count of the capped run, and an fp16 graph in fp16 throughout
    folder = tmp_path / "capped"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(graphs["onnx"].SerializeToString())
    check = compare_runs(
        reference_run(network, test_set.frames[:2]), onnx_run(graphs["onnx"], test_set.frames[:2])
    )
    half = {**check, "precision": read_metadata(graphs["onnx_fp16"])["precision"]}
    nir = {"written": False, "reason": "not tried"}
    report = {"reproducible": True, "onnx": check, "onnx_fp16": half, "nir": nir, "accuracy": accuracy}
    (folder / "verification.json").write_text(json.dumps(report))
    manifest = {
        "experiment": "capped",
        "registered_model": "dvs128_gesture",
        "states": [],
        "builtin_nodes": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    row = _load_script("render_export").export_row(folder)
    assert row["test samples"] == "4 of 9" and row["fp16 precision"] == "all fp16"
    with pytest.raises(ValueError, match="fp16_state"):
        export_bundle(network, [test_set[0][0]], tmp_path / "bad", name="bad", fp16_state="bfloat16")
    with pytest.raises(ValueError, match="positive count"):
        evaluate_graphs(network, {}, test_set, samples=0)


# -- the fp16 graph with float32 states: thresholds compared exactly ---------------------------------------

THETA = 0.3  # not representable in fp16 (0.30004883 is the nearest)


def _identity_neurons(n: int, alpha: float) -> nn.Module:
    """Linear (identity weights, exact in fp16) -> LIF (theta 0.3) -> sum of spikes."""
    layer = FCLIF(n, n, bias=False, norm=None, iteration="external", theta=THETA, alpha=alpha)
    with torch.no_grad():
        layer.synapse.weight.copy_(torch.eye(n))
    return nn.Sequential(layer, TemporalAggregation("sum", iteration="external")).eval()


def _first_step_spikes(graph, membranes: np.ndarray) -> np.ndarray:
    """The spikes of one step of ``graph`` from the membranes ``membranes`` and a zero input."""
    runtime = StepRuntime(graph)
    runtime.reset(1)
    (membrane,) = [s for s in read_metadata(graph)["states"] if s.name == "v"]
    runtime.values[membrane.input_name] = membranes.astype(runtime.values[membrane.input_name].dtype)
    return runtime.step(np.zeros((1, membranes.shape[1]), dtype=np.float16))


def test_a_membrane_at_theta_compares_in_the_fp16_graph_as_in_pytorch_fp32():
    theta = np.float32(THETA)
    membranes = np.array(
        [[np.nextafter(theta, np.float32(0)), theta, np.nextafter(theta, np.float32(1)), theta + 2e-6]],
        dtype=np.float32,
    )
    expected, _ = lif_step(torch.zeros(1, 4), torch.from_numpy(membranes), alpha=1.0, theta=THETA)
    assert expected.tolist() == [[0.0, 0.0, 1.0, 1.0]]  # strict: a membrane at theta does not fire
    network = _identity_neurons(4, alpha=1.0)
    exact = export_onnx(network, torch.zeros(1, 4), dtype=torch.float16, state_dtype=torch.float32)
    assert read_metadata(exact)["precision"] == {
        "input": "float16",
        "synapses": "float16",
        "states": "float32",
        "neurons": "float32",
        "other": "float32",
    }
    assert exact.graph.input[0].type.tensor_type.elem_type == 10  # the input the host sends: fp16
    assert np.array_equal(_first_step_spikes(exact, membranes), expected.numpy())
    # in half precision throughout, theta and the membranes round to the same fp16 number: none fires
    half = export_onnx(network, torch.zeros(1, 4), dtype=torch.float16)
    assert read_metadata(half)["precision"]["states"] == "float16"
    assert _first_step_spikes(half, membranes).tolist() == [[0.0, 0.0, 0.0, 0.0]]


def test_the_fp16_graph_with_float32_states_fires_as_pytorch_where_the_synapses_are_exact():
    network = _identity_neurons(256, alpha=0.95)
    generator = torch.Generator().manual_seed(0)
    inputs = (torch.rand(4, 40, 256, generator=generator) * 0.2).half().float()  # fp16 numbers
    reference = reference_run(network, inputs)
    exact = export_onnx(network, inputs[:1, 0], dtype=torch.float16, state_dtype=torch.float32)
    report = compare_runs(reference, onnx_run(exact, inputs.half()))
    assert report["spikes"] > 1000 and report["differing_spikes"] == 0 and report["passed"]
    half = export_onnx(network, inputs[:1, 0], dtype=torch.float16)
    assert compare_runs(reference, onnx_run(half, inputs.half()))["differing_spikes"] > 0
    assert json.loads(json.dumps(report))  # the report is JSON as the bundle writes it
