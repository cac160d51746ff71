"""Render the chip export of every experiment (bidl.export.bundle): the graph's states and built-in
nodes, the fp32 ONNX graph against PyTorch (spikes and outputs over every timestep of evaluation samples),
the fp16 variant's error, the top-1 of PyTorch and of the fp32 and fp16 graphs on the test split (each graph
streamed step by step through ONNX Runtime on the CPU, with 95 % Wilson intervals), and the NIR graph
(written or why not, and the snnTorch cross-check); Markdown, CSV, LaTeX."""

import argparse
import json
from pathlib import Path
from typing import Any

from bidl.io import redirect_output
from bidl.pipeline.tables import source_note, write_table

COLUMNS = (
    "network",
    "model",
    "states",
    "neuron layers",
    "ONNX MB",
    "spikes compared",
    "differing spikes",
    "max output error",
    "reproducible",
    "fp16 differing spikes",
    "fp16 max output error",
    "fp16 top-1 agreement",
    "test samples",
    "PyTorch top-1",
    "fp32 graph top-1",
    "fp16 graph top-1",
    "fp16 - fp32 (points)",
    "fp16 class = PyTorch's",
    "fp16 precision",
    "graph evaluation s",
    "NIR",
    "snnTorch (NIR import)",
    "data source",
)


def _snntorch(nir: dict[str, Any]) -> str:
    if not nir["written"]:
        return "-"
    check = nir.get("snntorch", {})
    if not check.get("imported"):
        return f"not imported: {check.get('reason', '?')}"
    return (
        f"{check['differing_spikes']} of {check['elements']:,} output spikes differ "
        f"({check['samples']} samples)"
    )


def _differing(check: dict[str, Any]) -> str:
    """The differing spikes, and where samples parted at a threshold tie, how many and how close."""
    text = f"{check['differing_spikes']:,}"
    if check["parted_at_tie"]:
        margin = max(d["max_margin"] for d in check["first_divergence"].values())
        text += (
            f" ({len(check['parted_at_tie'])} of {check['samples']} samples parted at a threshold tie, "
            f"|U - theta| <= {margin:.1e})"
        )
    return text


ACCURACY_COLUMNS = (
    "test samples",
    "PyTorch top-1",
    "fp32 graph top-1",
    "fp16 graph top-1",
    "fp16 - fp32 (points)",
    "fp16 class = PyTorch's",
    "graph evaluation s",
)


def _top1(summary: dict[str, Any] | None) -> str:
    """``top-1 % [95 % interval]``, or ``-`` where the graph was not evaluated."""
    if not summary:
        return "-"
    low, high = summary["ci95"]
    return f"{summary['top1']:.1f} [{low:.1f}, {high:.1f}]"


def _precision(half: dict[str, Any] | None) -> str:
    """What the fp16 graph computes in fp16 and what in float32."""
    if not half or "precision" not in half:
        return "-"
    precision = half["precision"]
    if all(value == "float16" for value in precision.values()):
        return "all fp16"
    return f"fp16 synapses, {precision['states']} states and threshold compare"


def _accuracy(report: dict[str, Any]) -> dict[str, str]:
    accuracy = report.get("accuracy")
    if not accuracy:
        return {key: "-" for key in ACCURACY_COLUMNS}
    fp32, half = accuracy.get("onnx"), accuracy.get("onnx_fp16")
    samples = f"{accuracy['samples']:,}"
    if accuracy["samples"] < accuracy["split_samples"]:
        samples += f" of {accuracy['split_samples']:,}"
    seconds = sum(accuracy[key]["seconds"] for key in ("onnx", "onnx_fp16") if key in accuracy)
    return {
        "test samples": samples,
        "PyTorch top-1": _top1(accuracy["pytorch"]),
        "fp32 graph top-1": _top1(fp32),
        "fp16 graph top-1": _top1(half),
        "fp16 - fp32 (points)": f"{half['top1'] - fp32['top1']:+.1f}" if half and fp32 else "-",
        "fp16 class = PyTorch's": f"{accuracy['agreement']['onnx_fp16']:.1f} %" if half else "-",
        "graph evaluation s": f"{seconds:.1f}",
    }


def export_row(folder: Path) -> dict[str, Any]:
    manifest = json.loads((folder / "manifest.json").read_text())
    report = json.loads((folder / "verification.json").read_text())
    onnx, half, nir = report["onnx"], report.get("onnx_fp16"), report["nir"]
    size = (folder / "model.onnx").stat().st_size / 1e6
    return {
        "network": manifest["experiment"],
        "model": manifest["registered_model"],
        "states": len(manifest["states"]),
        "neuron layers": manifest["builtin_nodes"].get("cmp_and_fire", 0),
        "ONNX MB": f"{size:.2f}",
        "spikes compared": f"{onnx['elements']:,}",
        "differing spikes": _differing(onnx),
        "max output error": f"{onnx['max_abs_output_error']:.2e}",
        "reproducible": "yes" if report["reproducible"] else "NO",
        "fp16 differing spikes": f"{half['differing_spikes']:,} of {half['spikes']:,}" if half else "-",
        "fp16 max output error": f"{half['max_abs_output_error']:.2e}" if half else "-",
        "fp16 top-1 agreement": f"{100 * half['top1_agreement']:.0f} %" if half else "-",
        **_accuracy(report),
        "fp16 precision": _precision(half),
        "NIR": f"written (dt {nir['dt']:g} s)" if nir["written"] else f"not expressible: {nir['reason']}",
        "snnTorch (NIR import)": _snntorch(nir),
        "data source": manifest.get("data_source", ""),
    }


def render(folders: list[Path], stem: Path, *, preset: str, description: str) -> list[Path]:
    """The export table of the experiments' export ``folders``, as ``<stem>.md``, ``.csv`` and ``.tex``
    (returned); ``preset`` and ``description`` the preset's name and description."""
    rows = [export_row(folder) for folder in folders]
    first = json.loads((folders[0] / "verification.json").read_text())
    notes = [
        source_note({"name": preset, "description": description}, (row["data source"] for row in rows)),
        "Each network's EIM step exported as a state-aware ONNX graph (bidl.export: states as inputs and "
        "outputs named by UUIDs, through load_state / save_state nodes; one cmp_and_fire and one "
        "reset_with_decay node per neuron layer), run by ONNX Runtime over every timestep of the first "
        f"{first['samples']} evaluation samples with the states fed back, against the PyTorch network: "
        "spikes compared = every neuron of every layer at every step. The rule fails unless every sample "
        f"gives the same spikes and outputs within {first['onnx']['atol']:g}, or parts from PyTorch first at "
        f"a threshold tie (a membrane within {first['onnx']['tie_atol']:g} of theta, on which float sums in "
        "another order may fall either side; after that the runs legitimately differ). Reproducible: a "
        "second export gives the same bytes.",
        "fp16: the half-precision graph against the fp32 PyTorch network on those samples (measured, not "
        "required to agree). fp16 precision: what the fp16 graph computes in half precision; with float32 "
        "states the synapses (Conv, Linear, Embedding: weights and products) run in fp16 and their outputs "
        "are cast to float32, where the membranes integrate, BatchNorm, the threshold compare against theta, "
        "reset, leak and the readout run, as in the float32 network.",
        "Top-1 (%, [95 % Wilson interval]) on the test split the evaluate rule uses (test samples: all of "
        "it, or N of the split's size, evenly spaced, where export.eval_samples caps it): PyTorch in EIM, "
        "and each exported graph streamed one timestep at a time through ONNX Runtime on the CPU, states fed"
        " back and the class read after the last step, as a deployment runs it; fp16 class = PyTorch's: the "
        "share of those samples on which the fp16 graph picks PyTorch's class; graph evaluation s: the "
        "seconds both graphs took, on the export job's threads.",
        "NIR: written where NIR can express the network (LIF layers, BatchNorm folded); snnTorch: the NIR "
        "file imported with snntorch.import_nir and run sample by sample, its output spikes against bidl's.",
    ]
    title = f"Chip export, verified by running it (preset `{preset}`)"
    paths = write_table(stem, title, COLUMNS, rows, notes)
    print(f"export table: {len(rows)} networks -> {', '.join(map(str, paths))}", flush=True)
    return paths


def main(config: dict[str, Any], folders: list[Path], stem: Path) -> list[Path]:
    """The export table with the preset's name and description taken from ``config``."""
    return render(folders, stem, preset=config["name"], description=config.get("description", ""))


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        render(
            [Path(p) for p in smk.input.folders],
            Path(smk.output.markdown).with_suffix(""),
            preset=smk.params.preset,
            description=smk.params.description,
        )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    from bidl.pipeline.config import load_yaml

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True, help="results/<preset>")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md, OUT.csv and OUT.tex")
    args = parser.parse_args()
    config = load_yaml(args.config)
    main(config, [args.results / "export" / name for name in sorted(config["experiments"])], args.out)
