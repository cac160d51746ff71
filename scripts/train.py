"""Train one experiment of the config by BPTT in IIM (resumes from its last checkpoint)."""

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from bidl.data.catalog import open_split
from bidl.io import load_checkpoint, redirect_output
from bidl.models import count_parameters, create_model, load_matching_weights
from bidl.training import Recipe, resolve_device, seed_everything, train


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
    loader: dict[str, Any] | None = None,
    init_file: Path | None = None,
) -> None:
    torch.set_num_threads(threads)
    seed_everything(seed)
    recipe = Recipe.from_mapping(experiment["recipe"], where=f"experiments.{name}.recipe")
    model = create_model(experiment["model"], **experiment.get("model_kwargs", {}))
    if init_file is not None:
        skipped = load_matching_weights(model, load_checkpoint(init_file))
        print(f"initialised from {init_file}; kept the new model's own {skipped or 'nothing'}", flush=True)
    loader = dict(loader or {})
    train_set = open_split(experiment["dataset"], train_file, train=True, **loader)
    val_set = open_split(experiment["dataset"], val_file, **loader)
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
        "init_from": experiment.get("init_from"),
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
            name=smk.params.name,
            train_file=Path(smk.input.train),
            val_file=Path(smk.input.val),
            out_dir=Path(smk.output.model).parent,
            seed=smk.params.seed,
            threads=smk.threads,
            device=smk.params.device,
            loader=smk.params.loader,
            init_file=Path(smk.input.init[0]) if len(smk.input.init) else None,
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
    parser.add_argument("--loader-json", default="{}", help="dataset class keywords, as JSON")
    parser.add_argument(
        "--init", type=Path, default=None, help="model.pt to initialise matching weights from"
    )
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
        loader=json.loads(args.loader_json),
        init_file=args.init,
    )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
