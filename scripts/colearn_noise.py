"""Co-learning study (paper 5.3, Fig. 11): top-1 of the original network, the BPTT fine-tuned and the R-STDP
fine-tuned population heads on the validation set with salt noise, ratio by ratio, for the networks of one
training seed; writes that seed's CSV (fig11_data.py summarises the seeds)."""

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from bidl.colearning import noise_sweep, study_networks
from bidl.data.catalog import open_split
from bidl.io import atomic_write_csv, load_checkpoint, redirect_output

NETWORKS = {
    "original": "BPTT, 11 output neurons (original)",
    "bptt_finetuned": "BPTT fine-tuned, population coding",
    "rstdp_finetuned": "R-STDP fine-tuned, population coding",
}
FIELDS = (
    "seed",
    "network",
    "label",
    "noise_ratio",
    "noise_relative_to",
    "noise_pixel_ratio",
    "signal_density",
    "top1",
    "n_samples",
    "chance",
    "dataset",
    "data_source",
    "preset",
)


def main(
    *,
    study: dict[str, Any],
    experiment: dict[str, Any],
    model_file: Path,
    bptt_file: Path,
    rstdp_file: Path,
    val_file: Path,
    out_file: Path,
    data_source: str,
    preset: str,
    seed: int = 0,
    threads: int = 1,
) -> list[dict[str, Any]]:
    torch.set_num_threads(threads)
    model, kwargs = experiment["model"], experiment.get("model_kwargs", {})
    original, bptt, n_classes = study_networks(model, kwargs, study, model_file)
    rstdp = study_networks(model, kwargs, study, model_file)[1]
    bptt.load_state_dict(load_checkpoint(bptt_file))
    rstdp.load_state_dict(load_checkpoint(rstdp_file))
    val_set = open_split(experiment["dataset"], val_file)
    noise = study["noise"]
    rows = noise_sweep(
        {"original": original, "bptt_finetuned": bptt, "rstdp_finetuned": rstdp},
        val_set,
        noise["ratios"],
        seed=noise.get("seed", 0),
        batch_size=noise.get("batch_size", 32),
        relative_to=noise.get("relative_to", "pixels"),
    )
    for row in rows:
        row.update(
            seed=seed,
            label=NETWORKS[row["network"]],
            chance=round(100.0 / n_classes, 3),
            dataset=experiment["dataset"],
            data_source=data_source,
            preset=preset,
        )
        print(f"{row['network']:>16} noise {row['noise_ratio']:<6} top-1 {row['top1']:.1f} %", flush=True)
    atomic_write_csv(out_file, FIELDS, rows)
    return rows


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(
            study=smk.params.study,
            experiment=smk.params.experiment,
            model_file=Path(smk.input.model),
            bptt_file=Path(smk.input.bptt),
            rstdp_file=Path(smk.input.rstdp),
            val_file=Path(smk.input.val),
            out_file=Path(smk.output.csv),
            data_source=smk.params.data_source,
            preset=smk.params.preset,
            seed=smk.params.seed,
            threads=smk.threads,
        )


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--study-json", required=True, help="the config's colearning section, as JSON")
    parser.add_argument("--experiment-json", required=True, help="the trained experiment's config entry")
    parser.add_argument("--model", type=Path, required=True, help="the original network's model.pt")
    parser.add_argument("--bptt", type=Path, required=True, help="the BPTT fine-tuned model.pt")
    parser.add_argument("--rstdp", type=Path, required=True, help="the R-STDP fine-tuned model.pt")
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-source", default="unknown")
    parser.add_argument("--preset", default="unknown")
    parser.add_argument("--seed", type=int, default=0, help="the training seed of the three networks")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    main(
        study=json.loads(args.study_json),
        experiment=json.loads(args.experiment_json),
        model_file=args.model,
        bptt_file=args.bptt,
        rstdp_file=args.rstdp,
        val_file=args.val,
        out_file=args.out,
        data_source=args.data_source,
        preset=args.preset,
        seed=args.seed,
        threads=args.threads,
    )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
