"""Render the paper's Table 1 (cost formulas of five ST layers) with their values at Figure 4's shape, the
counts measured by running each layer, the multiplications among them (synaptic and element-wise), and the
ratios to ConvLIF; Markdown, CSV and LaTeX, from the counts written by measure_st_layers.py (no
re-measuring)."""

import argparse
import json
from pathlib import Path
from typing import Any

from bidl.cost import KINDS, LAYER_NAMES, MULTIPLICATION_KEYS, TABLE1_FORMULAS
from bidl.io import redirect_output
from bidl.pipeline.tables import write_table

COLUMNS = (
    "layer",
    "synaptic ops",
    "element-wise ops",
    "synaptic muls",
    "element-wise muls",
    "weights",
    "ops at the shape",
    "ops measured",
    "muls at the shape",
    "muls measured",
    "weights at the shape",
    "weights measured",
    "ops vs ConvLIF",
    "synaptic ops vs ConvLIF",
    "weights vs ConvLIF",
)


def check_multiplications(counts: dict[str, Any]) -> None:
    """The multiplication counts of the formulas must be those measured (as measure_st_layers.py checks the
    other counts); a counts file without them was written by an older bidl.cost."""
    problems = []
    for kind in KINDS:
        formula, measured = counts["formula"][kind], counts["measured"][kind]
        missing = [key for key in MULTIPLICATION_KEYS if key not in formula or key not in measured]
        if missing:
            raise ValueError(
                f"table 1: the counts of {kind} have no {missing} (written by an older bidl.cost): rerun the "
                "st_layers rule"
            )
        problems += [
            f"{kind}.{key}: formula {formula[key]} != measured {measured[key]}"
            for key in MULTIPLICATION_KEYS
            if formula[key] != measured[key]
        ]
    if problems:
        raise RuntimeError(
            "Table 1 multiplications disagree with the measured counts:\n  " + "\n  ".join(problems)
        )


def table_rows(counts: dict[str, Any]) -> list[dict[str, Any]]:
    check_multiplications(counts)
    rows = []
    for kind in KINDS:
        formula, measured = counts["formula"][kind], counts["measured"][kind]
        text, ratios = TABLE1_FORMULAS[kind], counts["ratios"][kind]
        kinds = [label for label, key in (("MACs", "macs"), ("ACs", "acs")) if formula[key]]
        rows.append(
            {
                "layer": LAYER_NAMES[kind],
                "synaptic ops": text["synaptic"],
                "element-wise ops": (
                    f"{text['elementwise']} ({text['elementwise_split']})"
                    if formula["elementwise"]
                    else text["elementwise"]
                ),
                "synaptic muls": text["synaptic_mul"],
                "element-wise muls": text["elementwise_mul"],
                "weights": text["weights"],
                "ops at the shape": f"{formula['ops']:,} ({' + '.join(kinds)}"
                + (f" + {formula['elementwise']:,} element-wise)" if formula["elementwise"] else ")"),
                "ops measured": f"{measured['ops']:,}",
                "muls at the shape": f"{formula['multiplications']:,} "
                f"({formula['synaptic_mul']:,} synaptic + {formula['elementwise_mul']:,} element-wise)",
                "muls measured": f"{measured['multiplications']:,}",
                "weights at the shape": f"{formula['weights']:,}",
                "weights measured": f"{measured['weights']:,}",
                "ops vs ConvLIF": f"{ratios['ops_vs_convlif']:.2f}x",
                "synaptic ops vs ConvLIF": f"{ratios['synaptic_ops_vs_convlif']:.2f}x",
                "weights vs ConvLIF": f"{ratios['weights_vs_convlif']:.2f}x",
            }
        )
    return rows


def main(counts_file: Path, preset: str, stem: Path) -> None:
    counts = json.loads(Path(counts_file).read_text())
    shape = ", ".join(f"{k} = {v}" for k, v in counts["setting"].items())
    notes = [
        f"Config: `{preset}`. Data: none (each layer runs once on a random input of the shape).",
        "Output [T, H, W, C] at batch 1, I x J kernel (Conv3D U x I x J), K input channels; R = T·H·W·C, "
        f"Q = I·J·K. Values at {shape} (Figure 4's setting unless the config's cost.table1 differs).",
        "Measured = counted while running each layer (bidl.cost.measure_st_layer): synapses with PyTorch's "
        "FlopCounterMode (MACs = FLOPs / 2), element-wise neuron and gate ops at the aten level, weights "
        "from the parameters. ConvLIF's synaptic ops are accumulates (ACs): its inputs are spikes. Weights "
        "exclude biases (C per layer, 4·C for ConvLSTM) and the 4 neuron constants of ConvLIF / ConvLIAF.",
        "Multiplications: one per MAC, none per AC (synaptic muls: ConvLIF needs none), and the neurons' or "
        "gates' element-wise ones (LIF / LIAF: the leak's product with alpha and the hard reset's two, "
        "F·v_reset and (1 - F)·U, per neuron and step; LSTM: the cell's three per hidden element and step). "
        "Element-wise ops by class: mul = multiply; add = add, subtract, compare, select (ReLU is a "
        "compare-and-select); non-linear = sigmoid, tanh. Measured muls: FlopCounterMode's MACs and the "
        "element-wise multiplications counted at the aten level.",
        "Element-wise ops per neuron and step as this library runs them: LIF "
        f"{TABLE1_FORMULAS['convlif']['elementwise']}, LIAF {TABLE1_FORMULAS['convliaf']['elementwise']}, "
        f"LSTM gates {TABLE1_FORMULAS['convlstm']['elementwise']} (bidl.cost constants).",
    ]
    rows = table_rows(counts)
    title = f"Table 1: cost of spatio-temporal layers (preset `{preset}`)"
    paths = write_table(stem, title, COLUMNS, rows, notes)
    print(f"Table 1: {len(rows)} layers -> {', '.join(map(str, paths))}", flush=True)


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(Path(smk.input.counts), smk.params.preset, Path(smk.output.markdown).with_suffix(""))


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("counts", type=Path, help="results/<preset>/measurements/st_layers.json")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md, OUT.csv and OUT.tex")
    args = parser.parse_args()
    main(args.counts, args.preset, args.out)
