"""Export a trained network for neuromorphic chips and verify the export by running it (bidl.export.bundle):
the state-aware single-step ONNX graph (fp32 and fp16), the NIR graph where NIR can express the network, a
manifest and a verification report, in one folder. The report holds the top-1 of the PyTorch network and of
both graphs on the test split the evaluate rule uses (``eval_samples`` of it, evenly spaced; null: all of it),
each graph streamed step by step through ONNX Runtime on the CPU."""

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from bidl.data.catalog import open_split
from bidl.export.bundle import export_bundle
from bidl.io import redirect_output
from bidl.models import load_trained
from bidl.pipeline.cli import add_trained_arguments, trained_from_args, trained_from_snakemake


def main(
    *,
    experiment: dict[str, Any],
    name: str,
    model_file: Path,
    test_file: Path,
    out_file: Path,
    threads: int = 1,
    loader: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    data_source: str = "",
) -> dict[str, Any]:
    settings = dict(settings or {})
    torch.set_num_threads(threads)
    model = load_trained(experiment, model_file).eval()
    test_set = open_split(experiment["dataset"], test_file, **dict(loader or {}))
    count = min(settings.get("samples", 8), len(test_set))
    samples = [test_set[i][0] for i in range(count)]
    report = export_bundle(
        model,
        samples,
        out_file,
        name=name,
        atol=settings.get("atol", 1e-4),
        tie_atol=settings.get("tie_atol", 1e-5),
        fp16=settings.get("fp16", True),
        fp16_state=settings.get("fp16_state", "float32"),
        nir_dt=settings.get("nir_dt", 1e-4),
        metadata={"experiment": name, "registered_model": experiment["model"], "data_source": data_source},
        test_set=test_set,
        eval_samples=settings.get("eval_samples"),
        eval_batch_size=experiment.get("eval_batch_size", 64),
        threads=threads,
    )
    print(json.dumps(report, indent=1), flush=True)
    return report


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(
            **trained_from_snakemake(smk, "folder"),
            settings=smk.params.settings,
            data_source=smk.params.source,
        )


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_trained_arguments(parser)  # --out: the bundle's folder
    parser.add_argument("--settings-json", default="{}", help="the config's export section, as JSON")
    parser.add_argument("--source", default="", help="the data the samples come from (stand-in or real)")
    args = parser.parse_args()
    main(**trained_from_args(args), settings=json.loads(args.settings_json), data_source=args.source)


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
