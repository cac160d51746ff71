"""Render the chip export of every experiment (bidl.export.bundle): the graph's states and built-in
nodes, the fp32 ONNX graph against PyTorch (spikes and outputs over every timestep of evaluation samples),
the fp16 variant's error, and the NIR graph (written or why not, and the snnTorch cross-check); Markdown,
CSV, LaTeX."""

import argparse
import json
from pathlib import Path
from typing import Any

from bidl.tables import source_note, write_table

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
        "NIR": f"written (dt {nir['dt']:g} s)" if nir["written"] else f"not expressible: {nir['reason']}",
        "snnTorch (NIR import)": _snntorch(nir),
        "data source": manifest.get("data_source", ""),
    }


def main(config: dict[str, Any], folders: list[Path], stem: Path) -> None:
    rows = [export_row(folder) for folder in folders]
    first = json.loads((folders[0] / "verification.json").read_text())
    notes = [
        source_note(config, (row["data source"] for row in rows)),
        "Each network's EIM step exported as a state-aware ONNX graph (bidl.export: states as inputs and "
        "outputs named by UUIDs, through load_state / save_state nodes; one cmp_and_fire and one "
        "reset_with_decay node per neuron layer), run by ONNX Runtime over every timestep of the first "
        f"{first['samples']} evaluation samples with the states fed back, against the PyTorch network: "
        "spikes compared = every neuron of every layer at every step. The rule fails unless every sample "
        f"gives the same spikes and outputs within {first['onnx']['atol']:g}, or parts from PyTorch first at "
        f"a threshold tie (a membrane within {first['onnx']['tie_atol']:g} of theta, on which float sums in "
        "another order may fall either side; after that the runs legitimately differ). Reproducible: a "
        "second export gives the same bytes.",
        "fp16: the half-precision graph against the fp32 PyTorch network (measured, not required to agree).",
        "NIR: written where NIR can express the network (LIF layers, BatchNorm folded); snnTorch: the NIR "
        "file imported with snntorch.import_nir and run sample by sample, its output spikes against bidl's.",
    ]
    title = f"Chip export, verified by running it (preset `{config['name']}`)"
    write_table(stem, title, COLUMNS, rows, notes)


if "snakemake" in globals():
    main(
        snakemake.config,  # noqa: F821
        [Path(p) for p in snakemake.input.folders],  # noqa: F821
        Path(snakemake.output.markdown).with_suffix(""),  # noqa: F821
    )
elif __name__ == "__main__":
    from bidl.config import load_yaml

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True, help="results/<preset>")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md, OUT.csv and OUT.tex")
    args = parser.parse_args()
    config = load_yaml(args.config)
    main(config, [args.results / "export" / name for name in sorted(config["experiments"])], args.out)
