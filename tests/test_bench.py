"""The neuron speed bench (bidl.pipeline.bench): the timing harness (warm-up, median, round-robin, peak
memory), the bandwidth floor's arithmetic, the same neuron and the same DVS128 network in bidl and
SpikingJelly (and the same spikes in snnTorch), settings errors that name the key, a missing peer named with
its install command, and the table and figure rendered from a measurement file. No test asserts a wall-clock
bound."""

import copy
import csv
import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bidl.pipeline.bench as bench
from bidl.errors import ConfigError
from bidl.pipeline.bench import (
    COLUMNS,
    BenchSettings,
    MissingPeerError,
    SpikingJellyDVS128,
    bench_setup,
    copy_bandwidth,
    dvs128_networks,
    floor_seconds,
    lif_floor_bytes,
    measure,
    measure_interleaved,
    peak_rss,
    require_peer,
    snntorch_leaky,
    snntorch_sequence,
    speedups,
    spikingjelly_lif,
    summary_rows,
)
from bidl.pipeline.config import SCHEMA, load_yaml, validate_config

REPO = Path(__file__).resolve().parents[1]
DEFAULT = load_yaml(REPO / "config" / "config.yaml")


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class FakeClock:
    """``time.perf_counter`` that advances only when a call 'runs' for its scripted duration."""

    def __init__(self, durations):
        self.now, self.durations, self.calls = 0.0, list(durations), 0

    def perf_counter(self):
        return self.now

    def run(self):
        self.now += self.durations[self.calls]
        self.calls += 1


def test_measure_warms_up_then_times_each_repeat_and_keeps_the_median(monkeypatch):
    clock = FakeClock([8.0, 0.5, 0.125, 0.375, 0.25, 0.4375, 4.0])  # warm-up, 5 timed, the memory run
    monkeypatch.setattr(bench.time, "perf_counter", clock.perf_counter)
    timing = measure(clock.run, repeats=5, warmup=1, memory=True)
    assert timing.times == (0.5, 0.125, 0.375, 0.25, 0.4375)  # neither the warm-up nor the memory run
    assert (timing.median, timing.min, timing.max) == (0.375, 0.125, 0.5)
    assert clock.calls == 7
    assert timing.peak_rss_status != "not measured"


def test_measure_interleaved_times_the_calls_round_robin_after_warming_each_up():
    order = []
    calls = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "c")}
    timings = measure_interleaved(calls, repeats=5, warmup=2, memory=False)
    assert order == ["a", "a", "b", "b", "c", "c"] + ["a", "b", "c"] * 5
    assert all(len(t.times) == 5 and t.peak_rss_bytes is None for t in timings.values())
    assert all(t.peak_rss_status == "not measured" for t in timings.values())


def test_peak_rss_sees_an_allocation_made_and_freed_inside_the_call():
    def allocate():
        block = np.ones(50_000_000 // 8)  # 50 MB, every page touched
        return float(block[-1])

    peak, status = peak_rss(allocate)
    if peak is None:  # a kernel without clear_refs: said so, never estimated
        assert status.startswith("unavailable")
        pytest.skip(status)
    assert 45e6 <= peak <= 120e6, (peak, status)
    assert "clear_refs" in status


def test_peak_rss_counts_the_fused_kernels_outputs_even_when_their_pool_held_buffers_before():
    pytest.importorskip("numba")
    from bidl.functional import lif_multi_step

    x = torch.randn(20, 4, 64, 1024)  # 21 MB: y (and the pool's buffer) as large

    def call():
        return float(lif_multi_step(x, alpha=0.5)[0][-1, 0, 0, 0])

    call()  # the pool now holds a free buffer of y's size
    peak, status = peak_rss(call)
    if peak is None:
        pytest.skip(status)
    assert peak >= 0.9 * x.numel() * 4, (peak, status)
    assert "kernel buffers released" in status


def test_peak_rss_is_reported_unavailable_where_clear_refs_is_refused(tmp_path):
    ran = []
    peak, status = peak_rss(lambda: ran.append(1), clear_refs=tmp_path / "missing" / "clear_refs")
    assert peak is None and status.startswith("unavailable") and "clear_refs" in status
    assert ran == [1]


def test_floor_counts_two_tensors_forward_and_five_with_the_backward():
    assert lif_floor_bytes(1000, "forward") == 2 * 1000 * 4
    assert lif_floor_bytes(1000, "forward+backward") == 5 * 1000 * 4
    assert floor_seconds(lif_floor_bytes(1_000_000, "forward"), 8e9) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="pass"):
        lif_floor_bytes(10, "backward")
    with pytest.raises(ValueError, match="bytes_per_s"):
        floor_seconds(10, 0.0)


def test_copy_bandwidth_counts_the_bytes_read_and_written():
    result = copy_bandwidth(4, repeats=5, warmup=1)
    assert result["bytes_moved"] == 2 * 4_000_000
    assert result["median_s"] == sorted(result["times_s"])[2]
    assert result["bytes_per_s"] == pytest.approx(result["bytes_moved"] / result["median_s"])


@pytest.mark.parametrize("surrogate", ["sigmoid", "arctan"])
def test_bidl_spikingjelly_and_snntorch_lif_give_the_same_spikes(surrogate):
    """The mapped parameters compute the same function (random input: no exact threshold ties); bidl and
    SpikingJelly also give the same input gradient (both differentiate through the reset; snnTorch detaches
    it), so the backward passes do the same work."""
    torch.manual_seed(0)
    x = torch.randn(25, 3, 4, 5, 5)
    grad = torch.rand_like(x)
    lif = bench.bidl_lif(0.3, 0.5, surrogate)
    x_bidl = x.transpose(0, 1).contiguous().requires_grad_()
    x_sj, x_snn = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_bidl = lif(x_bidl).transpose(0, 1)
    y_sj = spikingjelly_lif(0.3, 0.5, surrogate)(x_sj)
    y_snn = snntorch_sequence(snntorch_leaky(0.3, 0.5, surrogate), x_snn)
    assert 0.1 < y_bidl.mean().item() < 0.9
    assert torch.equal(y_bidl, y_sj) and torch.equal(y_bidl, y_snn)
    y_bidl.backward(grad)
    y_sj.backward(grad)
    torch.testing.assert_close(x_bidl.grad.transpose(0, 1), x_sj.grad, rtol=1e-5, atol=1e-6)


def _small_dvs128(**model_kwargs):
    settings = BenchSettings.from_mapping(
        {
            "dvs128": {
                "model_kwargs": {
                    "channels": [4, 8, 8],
                    "hidden": 16,
                    "height": 24,
                    "width": 24,
                    **model_kwargs,
                }
            }
        }
    )
    net, sj_net, same = dvs128_networks(DEFAULT["experiments"]["dvs128_asm"], settings)
    assert same == (net.conv1.neuron.norm is None)
    return net, sj_net


def test_the_spikingjelly_dvs128_network_is_bidls_network():
    """Copied weights: the same outputs in eval mode, the same loss and gradients in train mode (batch
    statistics over the same frames), on a batch of spike-like frames."""
    net, sj_net = _small_dvs128()
    torch.manual_seed(1)
    frames = (torch.rand(4, 12, 2, 24, 24) < 0.2).float()
    frames_time = frames.transpose(0, 1).contiguous()
    labels = torch.randint(0, 11, (4,))
    net.train(), sj_net.train()
    loss = torch.nn.functional.cross_entropy(net(frames), labels)
    sj_loss = torch.nn.functional.cross_entropy(sj_net(frames_time), labels)
    torch.testing.assert_close(sj_loss, loss, rtol=1e-5, atol=1e-6)
    loss.backward()
    sj_loss.backward()
    torch.testing.assert_close(
        sj_net.body[1].weight.grad, net.conv1.synapse.weight.grad, rtol=1e-4, atol=1e-6
    )
    net.eval(), sj_net.eval()
    bench._reset_spikingjelly(sj_net)
    with torch.no_grad():
        out, sj_out = net(frames), sj_net(frames_time)
    assert out.sum() > 0  # some class neuron fires: the comparison is not of zeros
    torch.testing.assert_close(sj_out, out, rtol=1e-5, atol=1e-6)


def test_for_a_membrane_batchnorm_the_spikingjelly_network_is_the_one_its_users_build():
    """SpikingJelly's LIFNode cannot hold a BatchNorm on the membrane: its network for bidl's paper
    configuration puts the BatchNorm on the synaptic current, with the same synapse weights."""
    net, sj_net = _small_dvs128(norm="state")
    assert net.conv1.input_norm is None and net.conv1.neuron.norm is not None
    torch.testing.assert_close(sj_net.body[1].weight, net.conv1.synapse.weight)
    assert isinstance(sj_net.body[2], torch.nn.BatchNorm2d)


def test_the_spikingjelly_network_refuses_what_a_lifnode_cannot_express():
    with pytest.raises(ConfigError, match="learned or per-channel"):
        _small_dvs128(learnable=True)
    net, _ = _small_dvs128()
    net.readout = torch.nn.Linear(11, 11)
    with pytest.raises(ValueError, match="mean-rate readout"):
        SpikingJellyDVS128(net)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"repeats": 3}, "bench.repeats"),
        ({"warmup": -1}, "bench.warmup"),
        ({"surrogate": "rectangle"}, "bench.surrogate"),
        ({"repeat": 5}, "bench: unknown key(s) ['repeat']"),
        ({"lif_layer": {"shape": [60, 16]}}, "bench.lif_layer.shape"),
        ({"lif_layer": {"alpha": 1.0}}, "bench.lif_layer.alpha"),
        ({"linear_lif": {"neurons": []}}, "bench.linear_lif.neurons"),
        ({"linear_lif": {"timesteps": 0}}, "bench.linear_lif.timesteps"),
        ({"linear_lif": {"n": [512]}}, "bench.linear_lif: unknown key(s) ['n']"),
        ({"dvs128": {"input_density": 0.0}}, "bench.dvs128.input_density"),
        ({"memory": "yes"}, "bench.memory"),
        ({"lif_layer": {"theta": "high"}}, "bench.lif_layer.theta"),
        ({"dvs128": 5}, "bench.dvs128: 5 is not of type 'object'"),
        ({"lif_bn_layer": {"shape": [60, 16, 8]}}, "bench.lif_bn_layer.shape"),
        ({"lif_bn_layer": {"shape": [4, 2, 3, 5], "noise": -0.1}}, "bench.lif_bn_layer.noise"),
        ({"dvs128": {"paper_model_kwargs": "state"}}, "bench.dvs128.paper_model_kwargs"),
    ],
)
def test_bad_settings_name_the_key(section, key):
    with pytest.raises(ConfigError) as err:
        BenchSettings.from_mapping(section)
    assert key in str(err.value)


def test_bench_setup_takes_the_experiments_network_and_input_from_the_preset():
    settings, experiment, shape = bench_setup(DEFAULT)
    assert settings.repeats >= 5 and list(settings.lif_shape) == [60, 16, 32, 40, 40]
    assert experiment["model"] == "dvs128_gesture" and experiment["model_kwargs"]["norm"] == "input"
    assert shape == [16, 60, 2, 40, 40]


@pytest.mark.parametrize(
    ("experiment", "message"),
    [
        ("imdb", "bench.dvs128.experiment: 'imdb' trains on imdb, not dvs128_gesture"),
        ("nope", "bench.dvs128.experiment: 'nope' is not an experiment of this config"),
    ],
)
def test_the_config_check_names_a_bench_experiment_that_is_not_a_dvs128_one(experiment, message):
    config = copy.deepcopy(DEFAULT)
    config["bench"]["dvs128"] = {"experiment": experiment}
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config, SCHEMA)


def test_a_missing_peer_is_named_with_its_install_command(monkeypatch):
    real_import = importlib.import_module

    def without_spikingjelly(name, *args):
        if name == "spikingjelly":
            raise ModuleNotFoundError("No module named 'spikingjelly'")
        return real_import(name, *args)

    monkeypatch.setattr(bench.importlib, "import_module", without_spikingjelly)
    with pytest.raises(MissingPeerError) as err:
        require_peer("spikingjelly")
    message = str(err.value)
    assert "spikingjelly is not installed" in message
    assert "pip install --no-deps spikingjelly==2.0.0" in message and "'.[bench]'" in message
    monkeypatch.setattr(bench.importlib, "import_module", real_import)
    monkeypatch.setattr(bench.importlib.metadata, "version", lambda name: "0.0.0.0.14")
    with pytest.raises(MissingPeerError, match=r"snntorch 0.0.0.0.14 is installed; .* snnTorch 1.x"):
        require_peer("snntorch")


def test_a_small_bench_writes_every_part_and_renders(tmp_path):
    """The whole bench at tiny shapes, through the rule's scripts: bench.csv and environment.json, then the
    table and the figure from them alone."""
    config = {
        **DEFAULT,
        "bench": {
            "repeats": 5,
            "warmup": 1,
            "copy_mb": 2,
            "lif_layer": {"shape": [6, 2, 3, 4, 4]},
            "lif_bn_layer": {"shape": [6, 2, 3, 4, 4], "noise": 0.01},
            "linear_lif": {"timesteps": 5, "batch_size": 2, "neurons": [8]},
            "dvs128": {
                "model_kwargs": {"channels": [2, 4, 4], "hidden": 8, "height": 16, "width": 16},
                "paper_model_kwargs": {
                    "channels": [2, 4, 4],
                    "hidden": 8,
                    "height": 16,
                    "width": 16,
                    "norm": "state",
                },
            },
        },
        "datasets": {
            **DEFAULT["datasets"],
            "dvs128_gesture": {
                "source": "standin",
                "preprocess": {"window_us": 25000, "n_frames": 4, "size": 16},
            },
        },
    }
    settings, experiment, shape = bench_setup(config)
    assert shape == [16, 4, 2, 16, 16]
    out = tmp_path / "bench"
    rows = _load_script("bench").main(
        settings=settings,
        experiment=experiment,
        input_shape=[2, 4, 2, 16, 16],
        csv_file=out / "bench.csv",
        environment_file=out / "environment.json",
        threads=1,
    )
    read = list(csv.DictReader((out / "bench.csv").open()))
    assert list(read[0]) == list(COLUMNS) and len(read) == len(rows)
    environment = json.loads((out / "environment.json").read_text())
    assert environment["torch_threads"] == 1 and environment["spikingjelly"].startswith("2.")
    assert environment["bandwidth"]["bytes_per_s"] > 0 and environment["cpu"]
    parts = {r["part"] for r in read}
    assert parts == {"a", "b", "c", "d"}
    bn_rows = [r for r in read if r["workload"].startswith("LIF layer, BatchNorm on the membrane")]
    assert {r["implementation"] for r in bn_rows} == {"bidl", "bidl (reference step loop)"}
    paper = [r for r in read if "paper configuration" in r["workload"]]
    assert len(paper) == 3 and "BatchNorm on the synaptic current" in paper[-1]["path"]
    eim = {
        r["implementation"].split(" ")[0] + (" eager" if "eager" in r["implementation"] else "")
        for r in read
        if r["part"] == "d"
    }
    assert eim == {"bidl", "bidl eager", "ONNX"}
    implementations = {r["implementation"].split(" ")[0] for r in read if r["part"] == "a"}
    assert {"bidl", "SpikingJelly", "snnTorch", "torch"} <= implementations
    for row in read:
        times = [float(t) for t in row["times_s"].split(";")]
        assert len(times) == 5 and float(row["median_s"]) == sorted(times)[2]
        assert float(row["min_s"]) <= float(row["median_s"]) <= float(row["max_s"])
        if row["workload"] == "LIF layer":
            assert float(row["ratio_to_floor"]) == pytest.approx(
                float(row["median_s"]) / float(row["floor_s"])
            )
    assert {r["pass"] for r in read if r["part"] == "b"} == {"training step"}
    ratios = speedups(read)
    assert ("LIF layer", "forward+backward", "SpikingJelly") in ratios
    assert (paper[0]["workload"], "training step", "SpikingJelly") in ratios
    eim_workload = next(r["workload"] for r in read if r["part"] == "d")
    assert (eim_workload, "EIM step", "ONNX Runtime") in ratios
    _load_script("render_bench").main(config, out / "bench.csv", out / "environment.json", tmp_path / "t")
    assert "bidl faster by" in (tmp_path / "t.md").read_text()
    _load_script("plot_bench").main(out / "bench.csv", tmp_path / "bench.png", "test")
    assert (tmp_path / "bench.png").stat().st_size > 0


def _fake_rows():
    def row(part, workload, pass_, implementation, median, **extra):
        times = [median * f for f in (0.9, 1.0, 1.1, 0.95, 1.05)]
        measured = {
            "part": part,
            "workload": workload,
            "shape": "[1]",
            "pass": pass_,
            "implementation": implementation,
            "path": "p",
            "median_s": median,
            "min_s": min(times),
            "max_s": max(times),
            "times_s": ";".join(map(str, times)),
            "peak_rss_mb": 12.5,
        }
        return {**dict.fromkeys(COLUMNS, ""), **measured, **extra}

    floor = {"floor_bytes": 8, "floor_s": 0.01}
    return [
        row("a", "LIF layer", "forward+backward", "bidl", 0.1, **floor, lif_part_s=0.1, ratio_to_floor=10.0),
        row(
            "a",
            "LIF layer",
            "forward+backward",
            "SpikingJelly 2.0.0",
            0.4,
            **floor,
            lif_part_s=0.4,
            ratio_to_floor=40.0,
        ),
        row("a", "Linear+LIF n=8", "forward", "torch Linear alone", 0.05),
        row("a", "Linear+LIF n=8", "forward", "bidl", 0.06, **floor, lif_part_s=0.01, ratio_to_floor=1.0),
        row(
            "a",
            "Linear+LIF n=8",
            "forward",
            "snnTorch 1.0.0",
            0.09,
            **floor,
            lif_part_s=0.04,
            ratio_to_floor=4.0,
        ),
        row("b", "DVS128 training step (x)", "training step", "bidl", 0.2),
        row("b", "DVS128 training step (x)", "training step", "SpikingJelly 2.0.0", 0.3),
        row(
            "c",
            "memory copy (bandwidth)",
            "copy",
            "torch Tensor.copy_",
            0.01,
            floor_bytes=8,
            floor_s=0.01,
            lif_part_s=0.01,
            ratio_to_floor=1.0,
        ),
    ]


def test_the_table_and_figure_come_from_the_measurement_file_alone(tmp_path):
    rows = _fake_rows()
    (tmp_path / "bench").mkdir()
    csv_file = tmp_path / "bench" / "bench.csv"
    with csv_file.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    environment = {
        "cpu": "Test CPU",
        "cores": 2,
        "torch": "2.x",
        "torch_threads": 2,
        "numba": "0.6",
        "numba_threads": 2,
        "numba_threading_layer": "workqueue",
        "bidl": "0.1.0",
        "bidl_default_path": "fused",
        "spikingjelly": "2.0.0",
        "snntorch": "1.0.0",
        "allocator": "retain",
        "settings": {"repeats": 5, "warmup": 1, "surrogate": "sigmoid"},
        "bandwidth": {"copy_mb": 256, "bytes_per_s": 2e10},
    }
    (tmp_path / "bench" / "environment.json").write_text(json.dumps(environment))
    _load_script("render_bench").main(
        DEFAULT, csv_file, tmp_path / "bench" / "environment.json", tmp_path / "t"
    )
    table = {
        (r["workload"], r["pass"], r["implementation"]): r
        for r in csv.DictReader((tmp_path / "t.csv").open())
    }
    sj = table[("LIF layer", "forward+backward", "SpikingJelly 2.0.0")]
    assert sj["bidl faster by"] == "4.00x" and sj["x floor"] == "40.0x" and sj["median ms"] == "400.0"
    assert table[("LIF layer", "forward+backward", "bidl")]["bidl faster by"] == "-"
    snn = table[("Linear+LIF n=8", "forward", "snnTorch 1.0.0")]
    assert snn["LIF part ms"] == "40.0" and snn["bidl faster by"] == "1.50x"
    assert (
        table[("DVS128 training step (x)", "training step", "SpikingJelly 2.0.0")]["bidl faster by"]
        == "1.50x"
    )
    markdown = (tmp_path / "t.md").read_text()
    assert "LIF layer forward+backward 4.00x faster" in markdown and "DVS128 training step 1.50x" in markdown
    assert "20.00 GB/s" in markdown and "Test CPU" in markdown
    assert "glibc malloc keeping freed memory for reuse" in markdown
    assert (tmp_path / "t.tex").read_text().startswith("% generated by bidl.pipeline.tables")
    _load_script("plot_bench").main(csv_file, tmp_path / "bench.png", "test")
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert summary_rows(rows)[0]["peak MB"] == "12"


def test_a_failed_bench_leaves_no_output(tmp_path, monkeypatch):
    script = _load_script("bench")

    def failing(*args, **kwargs):
        raise MissingPeerError("spikingjelly is not installed")

    monkeypatch.setattr(script, "run_bench", failing)
    settings, experiment, shape = bench_setup(DEFAULT)
    with pytest.raises(MissingPeerError):
        script.main(
            settings=settings,
            experiment=experiment,
            input_shape=shape,
            csv_file=tmp_path / "b.csv",
            environment_file=tmp_path / "e.json",
        )
    assert not list(tmp_path.iterdir())
