"""Latency measurement and the cost rules' scripts: Table 1 / Figure 4 from the measured layer counts, the
cost table and Table 3 from per-network JSON files, each rendered without re-measuring."""

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from bidl.latency import deadline, measure_latency, percentile
from bidl.models import create_model

REPO = Path(__file__).resolve().parents[1]


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_percentile_interpolates_like_numpy():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 5.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_measure_latency_times_every_eim_step_and_iim_batches():
    torch.manual_seed(0)
    model = create_model("dvs128_gesture", channels=(4, 4, 4), hidden=8, height=16, width=16)
    samples = [torch.rand(5, 2, 16, 16) for _ in range(3)]
    result = measure_latency(model, samples, warmup=1, batch_size=4, batches=2, timestep_hz=40.0)
    eim, iim = result["eim"], result["iim"]
    assert result["timesteps"] == 5 and eim["n_samples"] == 3 and eim["n_steps"] == 15
    assert 0 < eim["step_ms_median"] <= eim["step_ms_p95"] <= eim["step_ms_max"]
    # a sample is its 5 steps: samples/s and timesteps/s are consistent
    assert eim["timesteps_per_s"] == pytest.approx(5 * eim["samples_per_s"])
    assert iim["batch_size"] == 4 and iim["timesteps_per_s"] == pytest.approx(5 * iim["samples_per_s"])
    assert result["real_time_factor"] == pytest.approx(eim["timesteps_per_s"] / 40.0)
    assert result["device"] == "cpu" and result["threads"] == torch.get_num_threads()
    compiled = result["eim_compiled"]  # the same streams through the compiled stream, timed the same way
    assert compiled["n_samples"] == 3 and compiled["n_steps"] == 15 and compiled["compile_s"] > 0
    assert 0 < compiled["step_ms_median"] <= compiled["step_ms_p95"] <= compiled["step_ms_max"]
    with pytest.raises(ValueError, match="no samples"):
        measure_latency(model, [])


def test_a_stream_is_real_time_when_its_p95_and_max_steps_fit_the_sensor_step():
    eim = {"step_ms_median": 2.0, "step_ms_p95": 8.0, "step_ms_max": 40.0}
    limits = deadline(eim, 40.0)  # a 40 Hz sensor: 25 ms per step
    assert limits["period_ms"] == 25.0
    assert (limits["factor_median"], limits["factor_p95"], limits["factor_max"]) == (12.5, 3.125, 0.625)
    assert limits["real_time_p95"] and not limits["real_time_max"]
    assert deadline(eim, None) is None and deadline(eim, 0) is None
    with pytest.raises(ValueError, match="timestep_hz"):
        deadline(eim, -1.0)


def test_measure_latency_records_why_a_network_was_not_compiled():
    from bidl import FCLIF, TemporalAggregation, attach_plasticity

    block = FCLIF(6, 4, norm=None)
    model = torch.nn.Sequential(block, TemporalAggregation("mean"))
    attach_plasticity(block, "stdp")  # an active local-learning rule: its weights change every step
    result = measure_latency(model, [torch.rand(4, 6)], warmup=0, batch_size=2, batches=1)
    assert result["eim"]["n_steps"] == 4
    assert result["eim_compiled"].startswith("not measured") and "plasticity" in result["eim_compiled"]
    assert measure_latency(model, [torch.rand(4, 6)], compiled=False)["eim_compiled"].startswith("not")


SHAPE = {"T": 3, "H": 5, "W": 4, "C": 6, "K": 3, "U": 3, "I": 3, "J": 3}


def test_table1_and_fig4_are_rendered_from_the_measured_counts(tmp_path):
    measure = _load_script("measure_st_layers")
    counts = measure.main(SHAPE, "tiny", tmp_path / "st.json", tmp_path / "fig4.csv")
    rows = list(csv.DictReader((tmp_path / "fig4.csv").open()))
    assert [r["layer"] for r in rows] == ["Conv2D", "Conv3D", "ConvLSTM", "ConvLIAF", "ConvLIF"]
    r_q = 3 * 5 * 4 * 6 * (3 * 3 * 3)  # R * Q
    assert int(rows[1]["macs"]) == 3 * r_q == int(rows[1]["ops_measured"])  # Conv3D: U * R * Q
    assert int(rows[4]["acs"]) == r_q and int(rows[4]["macs"]) == 0  # ConvLIF: spike inputs accumulate
    assert float(rows[1]["synaptic_ops_vs_convlif"]) == 3.0
    assert float(rows[2]["synaptic_ops_vs_convlif"]) == pytest.approx(4 * (3 + 6) / 3)  # 4 (K + C) / K
    assert counts["setting"] == SHAPE

    render = _load_script("render_table1")
    render.main(tmp_path / "st.json", "tiny", tmp_path / "table1")
    table = list(csv.DictReader((tmp_path / "table1.csv").open()))
    assert table[2]["synaptic ops"] == "4·R·(Q + I·J·C) MACs"
    assert all(r["ops measured"] == r["ops at the shape"].split(" ")[0] for r in table)
    assert all(r["muls measured"] == r["muls at the shape"].split(" ")[0] for r in table)
    # ConvLIF: no synaptic multiplication, 3 per neuron and step (leak, hard reset); R = 3 * 5 * 4 * 6
    assert (table[4]["synaptic muls"], table[4]["element-wise muls"]) == ("0", "3·R")
    assert table[4]["muls at the shape"] == f"{3 * 360:,} (0 synaptic + {3 * 360:,} element-wise)"
    assert table[1]["muls at the shape"].startswith(f"{3 * r_q:,} ")  # Conv3D: a multiply per MAC
    assert table[4]["element-wise ops"] == "9·R (3·R mul + 6·R add)"
    assert "Table 1" in (tmp_path / "table1.tex").read_text()

    plot = _load_script("plot_fig4")
    printed = plot.main(tmp_path / "fig4.csv", tmp_path / "fig4.png")
    assert "3.00x" in printed and (tmp_path / "fig4.png").stat().st_size > 0


def test_measure_st_layers_refuses_formulas_that_disagree_with_the_counts(tmp_path, monkeypatch):
    measure = _load_script("measure_st_layers")
    real = measure.figure4_counts

    def off_by_one(**shape):
        counts = real(**shape)
        counts["formula"]["conv3d"]["macs"] += 1
        return counts

    monkeypatch.setattr(measure, "figure4_counts", off_by_one)
    with pytest.raises(RuntimeError, match="conv3d.macs"):
        measure.main(SHAPE, "tiny", tmp_path / "st.json", tmp_path / "fig4.csv")
    assert not (tmp_path / "st.json").exists() and not (tmp_path / "fig4.csv").exists()


def test_table1_refuses_multiplications_that_disagree_or_are_missing(tmp_path):
    render = _load_script("render_table1")
    counts = _load_script("measure_st_layers").main(SHAPE, "tiny", tmp_path / "st.json", tmp_path / "f.csv")
    counts["measured"]["convlif"]["elementwise_mul"] += 1
    with pytest.raises(RuntimeError, match="convlif.elementwise_mul"):
        render.table_rows(counts)
    del counts["formula"]["convlstm"]["multiplications"]
    with pytest.raises(ValueError, match="rerun the st_layers rule"):
        render.table_rows(counts)


CONFIG = {
    "name": "tiny",
    "description": "test",
    "datasets": {"luna16": {"source": "standin"}},
    "experiments": {
        "luna16_cls": {
            "dataset": "luna16",
            "model": "luna16_cls",
            "model_kwargs": {"channels": [4, 4, 4], "alpha": 0.8},
            "recipe": {"epochs": 20},
            "paper": {"top1": 90.4},
        }
    },
    "baselines": {
        "luna16_cls_conv3d": {"of": "luna16_cls", "model": "luna16_cls_conv3d"},
        "luna16_cls_convlstm": {"of": "luna16_cls", "model": "luna16_cls_convlstm", "recipe": {"epochs": 6}},
    },
}
STREAMS = {  # luna16_cls read as a 100 Hz stream: 10 ms steps against EIM steps of 0.5 / 0.7 / 20 ms
    "luna16_cls": {"sensor_timesteps_per_s": 100.0, "real_time_factor": 20.0},
}
COMPILED = {  # the compiled stream's record: measured, refused, absent (a file written before it existed)
    "luna16_cls": {"eim_compiled": {"step_ms_median": 0.2, "step_ms_p95": 0.25, "compile_s": 0.1}},
    "luna16_cls_conv3d": {"eim_compiled": "not measured: compile_stream refused the network: ..."},
}
RUNS = {  # name: (model, neuron, top-1, MACs, ACs)
    "luna16_cls": ("luna16_cls", "LIF", 96.2, 1.0e6, 3.0e6),
    "luna16_cls_conv3d": ("luna16_cls_conv3d", "none", 97.0, 12.0e6, 0.0),
    "luna16_cls_convlstm": ("luna16_cls_convlstm", "none", 80.0, 40.0e6, 0.0),
}
# each network's top-1 per training seed (RUNS' top-1 plus these): against the paper network's 96.2, 97.2,
# 95.2, Conv3D differs by +0.8, -1.2, +4.8 (within the noise between seeds), ConvLSTM by -16.2, -16.0, -16.1
SEED_OFFSETS = {
    "luna16_cls": (0.0, 1.0, -1.0),
    "luna16_cls_conv3d": (0.0, -1.0, 3.0),
    "luna16_cls_convlstm": (0.0, 1.2, -0.9),
}
PER_OP = {"mac_pj": 4.6, "ac_pj": 0.9, "mul_pj": 3.7, "add_pj": 0.9, "nonlinear_pj": 4.6}
ENERGY = {  # name: (multiplications, zero-skipped MACs, energy dense pJ, energy zero-skipped pJ)
    "luna16_cls": (1.5e6, 0.5e6, 5.0e6, 2.0e6),
    "luna16_cls_conv3d": (12.0e6, 6.0e6, 55.2e6, 30.0e6),
    "luna16_cls_convlstm": (40.5e6, 19.0e6, 184.0e6, 90.0e6),
}


def _write_runs(root: Path) -> dict[str, list[Path]]:
    """Every network's files: ``metrics`` of all its seeds (seed<k>/metrics.json), ``reference`` its first
    seed's metrics, ``cost`` and ``latency`` (one per network)."""
    files = {"metrics": [], "reference": [], "cost": [], "latency": []}
    for name, (model, neuron, top1, macs, acs) in RUNS.items():
        run = root / "experiments" / name
        run.mkdir(parents=True)
        for seed, offset in enumerate(SEED_OFFSETS[name]):
            metrics = {"model": model, "dataset": "luna16", "neuron": neuron, "top1_iim": top1 + offset}
            (run / f"seed{seed}").mkdir()
            (run / f"seed{seed}" / "metrics.json").write_text(json.dumps({**metrics, "seed": seed}))
            files["metrics"].append(run / f"seed{seed}" / "metrics.json")
            if seed == 0:
                files["reference"].append(run / "seed0" / "metrics.json")
        entries = {
            "cost": {
                "macs": macs,
                "acs": acs,
                "multiplications": ENERGY[name][0],
                "macs_zero_skipped": ENERGY[name][1],
                "params": 1000,
                "spike_rate": 0.1 if acs else None,
                "n_samples": 8,
                "energy": {
                    "per_op": PER_OP,
                    "source": "Horowitz, ISSCC 2014, 45 nm, 32-bit float",
                    "note": "A sigmoid or tanh is assumed to cost one MAC.",
                    "dense_pj": ENERGY[name][2],
                    "zero_skipped_pj": ENERGY[name][3],
                },
            },
            "latency": {
                "eim": {
                    "step_ms_median": 0.5,
                    "step_ms_p95": 0.7,
                    "step_ms_max": 20.0,
                    "samples_per_s": 250.0,
                    "timesteps_per_s": 2e3,
                },
                **COMPILED.get(name, {}),
                "iim": {"samples_per_s": 900.0, "batch_size": 16},
                "real_time_factor": None,
                **STREAMS.get(name, {}),
                "device": "cpu",
                "device_name": "test CPU",
                "threads": 2,
                "torch": "2",
                "onnxruntime": (  # the paper network is exported and timed with ONNX Runtime too
                    {"eim": {"step_ms_median": 0.25, "step_ms_p95": 0.3}, "onnxruntime": "1"}
                    if neuron != "none"
                    else "not measured: this network is not exported"
                ),
            },
        }
        for key, value in entries.items():
            (run / f"{key}.json").write_text(json.dumps(value))
            files[key].append(run / f"{key}.json")
    return files


def test_table3_compares_each_baseline_with_its_paper_network(tmp_path):
    files = _write_runs(tmp_path)
    render = _load_script("render_table3")
    render.main(CONFIG, files["metrics"], files["cost"], tmp_path / "table3")
    rows = list(csv.DictReader((tmp_path / "table3.csv").open()))
    assert [r["kind"] for r in rows] == ["BIDL (LIF)", "Conv3D", "ConvLSTM"]
    assert [r["ops vs BIDL"] for r in rows] == ["1.00x", "3.00x", "10.00x"]
    assert [r["energy zero-skipped (uJ / sample)"] for r in rows] == ["2.000", "30.000", "90.000"]
    assert [r["energy zero-skipped vs BIDL"] for r in rows] == ["1.00x", "15.00x", "45.00x"]
    assert "Horowitz" in (tmp_path / "table3.md").read_text()
    assert rows[0]["GACs / sample"] == "0.0030" and rows[0]["top-1 paper"] == "90.4"
    assert [r["epochs"] for r in rows] == ["20", "20", "6"]
    # accuracy over the three seeds, and each baseline against the paper network paired seed by seed
    assert [r["top-1 (IIM)"] for r in rows] == ["96.2", "97.7", "80.1"]
    assert all(r["seeds"] == "3 (0, 1, 2)" for r in rows)
    assert rows[0]["top-1 (IIM) +- sd (95 % CI)"] == "96.2 +- 1.0 (95 % CI 93.7-98.7, n = 3)"
    assert rows[0]["vs BIDL (paired over seeds)"] == "-"
    assert rows[1]["vs BIDL (paired over seeds)"].endswith("): not different at 95 %")
    assert rows[2]["vs BIDL (paired over seeds)"].startswith("-16.1 points (95 % CI -16.3 to -15.9")
    assert rows[2]["vs BIDL (paired over seeds)"].endswith("): different at 95 %")
    text = (tmp_path / "table3.md").read_text()
    assert "below its dataset's paper network at 95 %: luna16_cls_convlstm" in text
    assert "not distinguishable from its dataset's paper network at 95 %" in text
    assert (tmp_path / "table3.md").read_text().startswith("# Table 3")
    plot = _load_script("plot_table3")
    plot.main(tmp_path / "table3.csv", tmp_path / "table3.png", "tiny")
    assert (tmp_path / "table3.png").stat().st_size > 0
    with pytest.raises(ValueError, match="before its experiment"):
        render.main(CONFIG, files["metrics"][3:], files["cost"][1:], tmp_path / "bad")


def test_cost_table_lists_every_network_and_names_a_missing_one(tmp_path):
    files = _write_runs(tmp_path)
    render = _load_script("render_cost")
    render.main(CONFIG, files["reference"], files["cost"], files["latency"], tmp_path / "cost")
    rows = list(csv.DictReader((tmp_path / "cost.csv").open()))
    assert [r["network"] for r in rows] == list(RUNS)
    assert rows[0]["MMACs / sample"] == "4.00" and rows[0]["input spike rate"] == "0.1000"
    assert rows[0]["multiplications / sample"] == "1,500,000"
    assert rows[2]["zero-skipped MACs / sample"] == "19,000,000"
    assert [r["energy dense (uJ / sample)"] for r in rows] == ["5.000", "55.200", "184.000"]
    assert [r["energy zero-skipped (uJ / sample)"] for r in rows] == ["2.000", "30.000", "90.000"]
    text = (tmp_path / "cost.md").read_text()  # the per-op energies, their source and what is assumed
    assert "Horowitz, ISSCC 2014" in text and "MAC 4.6 pJ" in text and "assumed to cost one MAC" in text
    assert rows[1]["compared with"] == "luna16_cls" and rows[1]["input spike rate"] == "-"
    assert rows[0]["ORT EIM step ms (median)"] == "0.250" and rows[0]["ORT vs PyTorch EIM step"] == "0.50x"
    assert rows[1]["ORT EIM step ms (median)"] == "-"
    # the compiled stream beside them: measured, refused, or absent from an older latency file
    assert (
        rows[0]["compiled EIM step ms (median)"] == "0.200"
        and rows[0]["compiled EIM step ms (p95)"] == "0.250"
    )
    assert rows[0]["ORT vs compiled EIM step"] == "1.25x"
    assert rows[1]["compiled EIM step ms (median)"] == rows[2]["compiled EIM step ms (median)"] == "-"
    assert rows[1]["ORT vs compiled EIM step"] == "-"
    assert "compile_stream" in (tmp_path / "cost.md").read_text()
    assert "test CPU" in (tmp_path / "cost.md").read_text()
    # real time judged per step: the 10 ms period over the p95 (0.7 ms) and the slowest (20 ms) step
    assert rows[0]["real-time factor (throughput)"] == "20.0x"
    assert (
        rows[0]["real-time factor (p95 step)"] == "14.3x" and rows[0]["real-time factor (max step)"] == "0.5x"
    )
    assert rows[1]["real-time factor (p95 step)"] == "n/a (not a stream)"
    with pytest.raises(ValueError, match="different networks"):
        render.main(CONFIG, files["reference"], files["cost"][:2], files["latency"], tmp_path / "bad")


def test_trained_network_scripts_take_the_same_arguments_from_the_cli_and_from_a_rule():
    import argparse
    from types import SimpleNamespace

    from bidl.pipeline.cli import add_trained_arguments, trained_from_args, trained_from_snakemake

    parser = argparse.ArgumentParser()
    add_trained_arguments(parser)
    argv = ["--experiment-json", '{"model": "imdb"}', "--name", "imdb", "--model", "m.pt", "--test", "t.npz"]
    args = parser.parse_args([*argv, "--out", "cost.json", "--loader-json", '{"n_frames": 16}'])
    smk = SimpleNamespace(
        params=SimpleNamespace(experiment={"model": "imdb"}, name="imdb", loader={"n_frames": 16}),
        input=SimpleNamespace(model="m.pt", test="t.npz"),
        output={"cost": "cost.json"},
        threads=1,
    )
    assert trained_from_args(args) == trained_from_snakemake(smk, "cost")


def test_energy_settings_must_agree_across_networks_and_with_the_config(tmp_path):
    from bidl.cost import shared_energy_settings

    files = _write_runs(tmp_path)
    costs = {path.parent.name: json.loads(path.read_text()) for path in files["cost"]}
    settings = shared_energy_settings(costs, {**PER_OP, "source": "x"})
    assert settings["per_op"] == PER_OP and settings["source"].startswith("Horowitz")
    with pytest.raises(ValueError, match="config's energy section"):
        shared_energy_settings(costs, {**PER_OP, "ac_pj": 0.03})
    other = {**costs, "luna16_cls_conv3d": {**costs["luna16_cls_conv3d"]}}
    other["luna16_cls_conv3d"]["energy"] = {
        **other["luna16_cls_conv3d"]["energy"],
        "per_op": {**PER_OP, "ac_pj": 1},
    }
    with pytest.raises(ValueError, match="luna16_cls_conv3d"):
        shared_energy_settings(other)
    stale = {**costs, "luna16_cls": {k: v for k, v in costs["luna16_cls"].items() if k != "energy"}}
    with pytest.raises(ValueError, match=r"\['luna16_cls'\].*rerun their cost rule"):
        shared_energy_settings(stale)
    none = {name: {**cost, "energy": None} for name, cost in costs.items()}
    assert shared_energy_settings(none) is None
    with pytest.raises(ValueError, match="config has an energy section"):
        shared_energy_settings(none, PER_OP)


def test_measure_cost_records_the_energy_with_its_figures():
    from bidl.cost import model_cost

    measure = _load_script("measure_cost")
    layer = torch.nn.Linear(4, 3)
    cost = model_cost(layer, [torch.tensor([[1.0, 0.0, 1.0, 1.0]])])  # 12 ACs dense, 9 zero-skipped
    record = measure.energy_record(cost, {**PER_OP, "source": "s", "note": "n"})
    assert record["per_op"] == PER_OP and (record["source"], record["note"]) == ("s", "n")
    assert record["dense_pj"] == pytest.approx(12 * 0.9) and record["zero_skipped_pj"] == pytest.approx(
        9 * 0.9
    )
