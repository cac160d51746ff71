"""Co-learning study (paper 5.3): fine-tune a population-coded head on a BPTT-trained network, by BPTT or by
R-STDP streamed per timestep with batch 1 (resumable either way)."""

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from bidl.colearning import study_networks, train_local
from bidl.data.catalog import open_split
from bidl.io import file_digest, load_checkpoint, redirect_output
from bidl.models import count_parameters
from bidl.plasticity import attach_plasticity
from bidl.training import Recipe, resolve_device, seed_everything, train

METHODS = ("bptt", "rstdp")
RSTDP_KEYS = {"init", "epochs", "lr_plus", "lr_minus", "trace_decay", "trace_eta", "interleave"}


def main(
    *,
    method: str,
    study: dict[str, Any],
    experiment: dict[str, Any],
    model_file: Path,
    train_file: Path,
    val_file: Path,
    out_dir: Path,
    bptt_file: Path | None = None,
    seed: int = 0,
    threads: int = 1,
    device: str = "cpu",
) -> None:
    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; choose one of {METHODS}")
    torch.set_num_threads(threads)
    seed_everything(seed)
    device = resolve_device(device)
    _, network, n_classes = study_networks(
        experiment["model"], experiment.get("model_kwargs", {}), study, model_file
    )
    train_set = open_split(experiment["dataset"], train_file, train=True)
    val_set = open_split(experiment["dataset"], val_file)
    # what the weights depend on beyond the recipe and seed (bidl.training.resumable_state)
    fingerprint = {
        "study": study,
        "model": experiment["model"],
        "model_kwargs": experiment.get("model_kwargs", {}),
        "data": {"train": file_digest(train_file), "val": file_digest(val_file)},
        "init": file_digest(model_file),
        "init_bptt": file_digest(bptt_file) if method == "rstdp" and bptt_file is not None else None,
    }
    head = study["head"]
    print(
        f"co-learning, {method}: {experiment['model']} with a {getattr(network, head).synapse.out_features}-"
        f"neuron population head ({n_classes} classes x {study['population']}), "
        f"{len(train_set)} train / {len(val_set)} val samples",
        flush=True,
    )
    if method == "bptt":
        recipe = Recipe.from_mapping({**study["bptt"], "train_only": [head]}, where="colearning.bptt")
        print(f"BPTT fine-tuning of {head} only: {count_parameters(network):,} parameters before freezing")
        train(network, train_set, val_set, recipe, out_dir, seed=seed, device=device, fingerprint=fingerprint)
        return
    rstdp = dict(study["rstdp"])
    unknown = sorted(set(rstdp) - RSTDP_KEYS)
    if unknown:
        raise KeyError(f"colearning.rstdp: unknown key(s) {unknown}; known: {sorted(RSTDP_KEYS)}")
    if rstdp.get("init", "copies") == "bptt":
        if bptt_file is None:
            raise ValueError("colearning.rstdp.init: 'bptt' needs the BPTT fine-tuned model")
        network.load_state_dict(load_checkpoint(bptt_file))
        print(f"R-STDP starts from the BPTT fine-tuned head {bptt_file}")
    plasticity = attach_plasticity(
        getattr(network, head),
        "rstdp",
        rule_kwargs=dict(lr_plus=rstdp.get("lr_plus", 1e-3), lr_minus=rstdp.get("lr_minus", 1e-3)),
        trace_decay=rstdp.get("trace_decay", 0.95),
        trace_eta=rstdp.get("trace_eta", 1.0),
    )
    interleave = None
    if rstdp.get(
        "interleave", False
    ):  # the unified flow: per batch a BPTT step (the bptt recipe), then R-STDP
        interleave = Recipe.from_mapping({**study["bptt"], "train_only": [head]}, where="colearning.bptt")
    print(
        f"R-STDP on {head}: {plasticity}{', interleaved with BPTT steps' if interleave else ''}", flush=True
    )
    train_local(
        network,
        train_set,
        val_set,
        plasticity,
        out_dir,
        epochs=int(rstdp.get("epochs", 1)),
        n_classes=n_classes,
        seed=seed,
        device=device,
        fingerprint=fingerprint,
        interleave=interleave,
    )


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(
            method=smk.params.method,
            study=smk.params.study,
            experiment=smk.params.experiment,
            model_file=Path(smk.input.model),
            train_file=Path(smk.input.train),
            val_file=Path(smk.input.val),
            out_dir=Path(smk.output.model).parent,
            bptt_file=Path(smk.input.bptt[0]) if len(smk.input.bptt) else None,
            seed=smk.params.seed,
            threads=smk.threads,
            device=smk.params.device,
        )


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=METHODS, required=True)
    parser.add_argument("--study-json", required=True, help="the config's colearning section, as JSON")
    parser.add_argument("--experiment-json", required=True, help="the trained experiment's config entry")
    parser.add_argument("--model", type=Path, required=True, help="the trained experiment's model.pt")
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument(
        "--bptt", type=Path, default=None, help="the BPTT fine-tuned model (rstdp init: bptt)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    main(
        method=args.method,
        study=json.loads(args.study_json),
        experiment=json.loads(args.experiment_json),
        model_file=args.model,
        train_file=args.train,
        val_file=args.val,
        out_dir=args.out_dir,
        bptt_file=args.bptt,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
    )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
