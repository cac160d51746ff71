"""The studies' rendering scripts: Table 4 from metrics files, Figure 11 from its CSV, and their errors."""

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _metrics(path: Path, name: str, top1: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"experiment": name, "top1_iim": top1, "top1_eim": top1, "parameters": 1234}))
    return path


def test_table4_names_the_stage_each_variant_changes(tmp_path):
    render = _load_script("render_table4")
    assert render.describe_variant({}) == ("none (= LIF)", "all default")
    assert render.describe_variant({"decay": "exponential"}) == ("A decay", "decay=exponential")
    assert render.describe_variant({"accumulation": "cobe", "reversal": True})[0] == "B input accumulation"
    assert render.describe_variant({"refractory": "none", "n_ref": 3}) == ("constants", "n_ref=3")
    variants = {"all_default": {}, "trigger_exi": {"trigger": "exi"}, "decay_lid": {"decay": "lid"}}
    # per seed: trigger_exi 4.5 points below all default on every seed (different), decay_lid above on two
    # seeds and below on one (within the noise)
    tops = {
        "all_default": (40.0, 42.0, 38.0),
        "trigger_exi": (35.5, 37.4, 33.6),
        "decay_lid": (43.0, 41.0, 40.5),
    }
    files = [
        _metrics(tmp_path / "lifplus" / name / f"seed{k}" / "metrics.json", f"lifplus_{name}", top1)
        for name, values in tops.items()
        for k, top1 in enumerate(values)
    ]
    lif = [
        _metrics(tmp_path / "cifar10_dvs" / f"seed{k}" / "metrics.json", "cifar10_dvs", top1)
        for k, top1 in enumerate(tops["all_default"])
    ]
    render.main(files, lif, variants, "stand-in", "default", tmp_path / "t4")
    rows = list(csv.DictReader((tmp_path / "t4.csv").open()))
    assert [r["configuration"] for r in rows] == [
        "LIF (experiment cifar10_dvs, Table 2)",
        "all_default",
        "decay_lid",
        "trigger_exi",
    ]
    assert all(r["seeds"] == "3 (0, 1, 2)" for r in rows)
    assert rows[3]["stage changed"] == "C spike trigger" and rows[3]["top-1 (IIM)"] == "35.5"
    verdict = "vs all default (paired over seeds)"
    assert rows[3][verdict].startswith("-4.5 points") and rows[3][verdict].endswith(": different at 95 %")
    assert rows[2][verdict].endswith(": not different at 95 %") and rows[1][verdict] == "-"
    assert rows[0][verdict].startswith("+0.0 points") and rows[0][verdict].endswith("not different at 95 %")
    text = (tmp_path / "t4.md").read_text()
    assert "stand-in" in text and "below all default at 95 %: trigger_exi" in text
    assert "not distinguishable from all default at 95 %" in text and "decay_lid" in text
    assert "\\caption{Table 4" in (tmp_path / "t4.tex").read_text()
    with pytest.raises(ValueError, match="inhibition_adt"):
        render.main(
            files, lif, {**variants, "inhibition_adt": {"inhibition": "adt"}}, "s", "d", tmp_path / "a"
        )


def test_table4_with_one_seed_gives_differences_without_a_verdict(tmp_path):
    render = _load_script("render_table4")
    files = [
        _metrics(tmp_path / "lifplus" / "all_default" / "seed0" / "metrics.json", "a", 40.0),
        _metrics(tmp_path / "lifplus" / "trigger_exi" / "seed0" / "metrics.json", "b", 35.5),
    ]
    lif = [_metrics(tmp_path / "cifar10_dvs" / "seed0" / "metrics.json", "cifar10_dvs", 40.0)]
    variants = {"all_default": {}, "trigger_exi": {"trigger": "exi"}}
    render.main(files, lif, variants, "stand-in", "default", tmp_path / "t4")
    rows = list(csv.DictReader((tmp_path / "t4.csv").open()))
    assert rows[2]["vs all default (paired over seeds)"] == "-4.5 points (no verdict: 1 seed)"
    assert rows[2]["top-1 (IIM) +- sd (95 % CI)"] == "35.5 (n = 1)" and rows[2]["seeds"] == "1 (0)"
    assert "One training seed per row" in (tmp_path / "t4.md").read_text()


def test_fig11_data_summarises_the_seeds_and_refuses_unmatched_ones(tmp_path):
    data = _load_script("fig11_data")
    fields = ("seed", "network", "label", "noise_ratio", "top1", "n_samples", "chance", "dataset",
              "data_source", "preset")  # fmt: skip
    files = []
    for seed, tops in enumerate(((90.0, 50.0), (86.0, 54.0), (88.0, 40.0))):
        path = tmp_path / f"seed{seed}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            for ratio, top1 in zip(("0.0", "0.1"), tops, strict=True):
                writer.writerow(dict(zip(fields, (seed, "original", "o", ratio, top1, 10, 9.1, "d", "s", "p"),
                                         strict=True)))  # fmt: skip
        files.append(path)
    rows = data.main(files, tmp_path / "fig11.csv")
    assert [(r["noise_ratio"], r["top1"], r["n_seeds"]) for r in rows] == [("0.0", 88.0, 3), ("0.1", 48.0, 3)]
    assert rows[0]["top1_sd"] == 2.0 and rows[0]["top1_by_seed"] == "0:90.0;1:86.0;2:88.0"
    assert rows[0]["top1_ci_low"] == pytest.approx(88.0 - 4.302653 * 2.0 / 3**0.5, abs=1e-3)
    plot = _load_script("plot_fig11")
    plot.main(tmp_path / "fig11.csv", tmp_path / "fig11.png")
    assert (tmp_path / "fig11.png").read_bytes()[:4] == b"\x89PNG"
    lines = files[2].read_text().splitlines()
    files[2].write_text("\n".join(lines[:2]) + "\n")  # seed 2 lost its 0.1 row
    with pytest.raises(ValueError, match="network original at noise 0.1: seeds \\[0, 1\\]"):
        data.main(files, tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()


def test_fig11_plots_the_csv_and_names_a_missing_column(tmp_path):
    plot = _load_script("plot_fig11")
    fields = (
        "network",
        "label",
        "noise_ratio",
        "top1",
        "n_samples",
        "chance",
        "dataset",
        "data_source",
        "preset",
    )
    rows = [
        dict(
            zip(
                fields, (net, net, ratio, top1, 10, 9.1, "dvs128_gesture", "stand-in", "default"), strict=True
            )
        )
        for net, curve in (("original", (90, 50, 10)), ("rstdp_finetuned", (85, 60, 12)))
        for ratio, top1 in zip((0.0, 0.01, 0.4), curve, strict=True)
    ]
    good = tmp_path / "fig11.csv"
    with good.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    plot.main(good, tmp_path / "fig11.png")
    assert (tmp_path / "fig11.png").read_bytes()[:4] == b"\x89PNG"
    bad = tmp_path / "bad.csv"
    bad.write_text("network,top1\noriginal,90\n")
    with pytest.raises(ValueError, match="noise_ratio"):
        plot.main(bad, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
