"""Train one experiment of the config by BPTT in IIM (resumes from its last checkpoint); data-parallel on
several processes, GPUs and nodes under torchrun, which the rule starts itself when the config's
``distributed`` section asks for more than one process (bidl.distributed)."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from bidl.data.augment import describe as describe_augment
from bidl.data.augment import parse_augment
from bidl.data.catalog import open_split
from bidl.distributed import DistributedSettings, slurm_head_node, torchrun_command, world
from bidl.io import file_digest, load_checkpoint, redirect_output
from bidl.models import count_parameters, create_model, load_matching_weights
from bidl.training import Recipe, resolve_device, seed_everything, set_deterministic, train


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
    backend: str = "auto",
    deterministic: bool = True,
    augment: dict[str, Any] | None = None,
) -> None:
    torch.set_num_threads(threads)
    set_deterministic(deterministic)
    seed_everything(seed)
    recipe = Recipe.from_mapping(experiment["recipe"], where=f"experiments.{name}.recipe")
    # the dataset's training augmentation; an unknown transform or parameter stops here, naming the key
    parse_augment(augment, where=f"datasets.{experiment['dataset']}.augment")
    model = create_model(experiment["model"], **experiment.get("model_kwargs", {}))
    if init_file is not None:
        skipped = load_matching_weights(model, load_checkpoint(init_file))
        print(f"initialised from {init_file}; kept the new model's own {skipped or 'nothing'}", flush=True)
    loader = dict(loader or {})
    train_set = open_split(experiment["dataset"], train_file, train=True, **loader)
    val_set = open_split(experiment["dataset"], val_file, **loader)
    here = world()
    print(
        f"experiment {name} (process {here.rank + 1} of {here.size}): model {experiment['model']} "
        f"({count_parameters(model):,} trainable parameters), {len(train_set)} train / {len(val_set)} val "
        f"samples, recipe {recipe}, training augmentation {describe_augment(augment)}, threads {threads}",
        flush=True,
    )
    # what the weights depend on beyond the recipe and seed: a checkpoint of another model, other data
    # (the preprocessed splits' bytes) or other initial weights is not resumed (bidl.training.resumable_state)
    fingerprint = {
        "model": experiment["model"],
        "model_kwargs": experiment.get("model_kwargs", {}),
        "dataset": experiment["dataset"],
        "loader": loader,
        "data": {"train": file_digest(train_file), "val": file_digest(val_file)},
        "init_from": experiment.get("init_from"),
        "init": file_digest(init_file) if init_file is not None else None,
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
        backend=backend,
        augment=augment,
    )


def _cli_arguments(**values: Any) -> list[str]:
    """The command-line form of :func:`main`'s arguments (what each torchrun process parses)."""
    arguments = [
        "--experiment-json", json.dumps(values["experiment"]), "--name", values["name"],
        "--train", str(values["train_file"]), "--val", str(values["val_file"]),
        "--out-dir", str(values["out_dir"]), "--seed", str(values["seed"]),
        "--threads", str(values["threads"]),
        *([] if values.get("deterministic", True) else ["--nondeterministic"]),
        "--device", values["device"], "--loader-json", json.dumps(values["loader"] or {}),
        "--backend", values["backend"], "--augment-json", json.dumps(values.get("augment")),
    ]  # fmt: skip
    if values["init_file"] is not None:
        arguments += ["--init", str(values["init_file"])]
    return arguments


def launch(settings: DistributedSettings, log_path: Path, **values: Any) -> None:
    """Run :func:`main` under torchrun with ``settings``' processes (each with an equal share of the
    job's threads), its output appended to ``log_path``; a failed process fails the job."""
    values["threads"] = max(1, values["threads"] // settings.nproc_per_node)
    values["backend"] = settings.backend
    head = slurm_head_node() if settings.launcher == "srun" and settings.nnodes > 1 else None
    job_id = os.environ.get("SLURM_JOB_ID", f"bidl-{values['name']}")
    command = torchrun_command(settings, __file__, _cli_arguments(**values), head_node=head, job_id=job_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as log:
        print(f"launching {settings.processes} processes: {command[:8]} ...", file=log, flush=True)
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        sys.exit(f"train {values['name']}: torchrun exited with status {result.returncode}; see {log_path}")


def _from_snakemake(smk) -> None:
    values = dict(
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
        deterministic=smk.params.deterministic,
        augment=getattr(smk.params, "augment", None),  # rules without the parameter train unaugmented
    )
    settings = DistributedSettings.from_mapping(smk.params.distributed)
    if settings.launches:
        launch(settings, Path(smk.log[0]), **values)
        return
    with redirect_output(smk.log[0]):
        main(**values)


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
    parser.add_argument("--backend", default="auto", help="process group backend under torchrun")
    parser.add_argument(
        "--nondeterministic", action="store_true", help="allow non-deterministic kernels (faster on a GPU)"
    )
    parser.add_argument(
        "--augment-json",
        default="null",
        help="the dataset's training augmentation (bidl.data.augment), as JSON",
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
        backend=args.backend,
        deterministic=not args.nondeterministic,
        augment=json.loads(args.augment_json),
    )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
