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
    variants = {"all_default": {}, "trigger_exi": {"trigger": "exi"}}
    files = [
        _metrics(tmp_path / "lifplus" / "all_default" / "metrics.json", "lifplus_all_default", 40.0),
        _metrics(tmp_path / "lifplus" / "trigger_exi" / "metrics.json", "lifplus_trigger_exi", 35.5),
    ]
    lif = _metrics(tmp_path / "lif.json", "cifar10_dvs", 40.0)
    render.main(files, lif, variants, "stand-in", "default", tmp_path / "t4")
    rows = list(csv.DictReader((tmp_path / "t4.csv").open()))
    assert [r["configuration"] for r in rows] == [
        "LIF (experiment cifar10_dvs, Table 2)",
        "all_default",
        "trigger_exi",
    ]
    assert rows[2]["stage changed"] == "C spike trigger" and rows[2]["vs all default"] == "-4.5"
    assert "stand-in" in (tmp_path / "t4.md").read_text()
    assert "\\caption{Table 4" in (tmp_path / "t4.tex").read_text()
    with pytest.raises(ValueError, match="decay_lid"):
        render.main(files, lif, {**variants, "decay_lid": {"decay": "lid"}}, "s", "d", tmp_path / "a")


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
