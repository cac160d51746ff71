"""Train one experiment of the config by BPTT in IIM (resumes from its last checkpoint)."""

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from bidl.data.catalog import open_split
from bidl.io import redirect_output
from bidl.models import count_parameters, create_model
from bidl.training import Recipe, seed_everything, train


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def main(
    *,
    experiment: dict[str, Any],
    name: str,
    train_file: Path,
    val_file: Path,
    out_dir: Path,
    seed: int = 0,
    threads: int = 1,
    device: str = "auto",
) -> None:
    torch.set_num_threads(threads)
    seed_everything(seed)
    recipe = Recipe.from_mapping(experiment["recipe"], where=f"experiments.{name}.recipe")
    model = create_model(experiment["model"], **experiment.get("model_kwargs", {}))
    train_set = open_split(experiment["dataset"], train_file)
    val_set = open_split(experiment["dataset"], val_file)
    print(
        f"experiment {name}: model {experiment['model']} ({count_parameters(model):,} trainable parameters), "
        f"{len(train_set)} train / {len(val_set)} val samples, recipe {recipe}, threads {threads}",
        flush=True,
    )
    fingerprint = {
        "model": experiment["model"],
        "model_kwargs": experiment.get("model_kwargs", {}),
        "dataset": experiment["dataset"],
        "train_samples": len(train_set),
    }
    train(
        model,
        train_set,
        val_set,
        recipe,
        out_dir,
        seed=seed,
        device=resolve_device(device),
        fingerprint=fingerprint,
    )


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(
            experiment=smk.params.experiment,
            name=smk.wildcards.experiment,
            train_file=Path(smk.input.train),
            val_file=Path(smk.input.val),
            out_dir=Path(smk.output.model).parent,
            seed=smk.params.seed,
            threads=smk.threads,
            device=smk.params.device,
        )


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiment-json", required=True, help="the experiment's config entry, as JSON")
    parser.add_argument("--name", required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    main(
        experiment=json.loads(args.experiment_json),
        name=args.name,
        train_file=args.train,
        val_file=args.val,
        out_dir=args.out_dir,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
    )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
