# Configuration validation, paths and input functions shared by the rules.
import os
import sys
from pathlib import Path

import torch
from bidl.pipeline.bench import bench_setup
from bidl.pipeline.config import (
    check_interpreter,
    check_machine,
    network_names,
    resolve_experiment,
    table3_names,
    validate_config,
)
from bidl.data.catalog import DATASET_NAMES, describe_source, get_dataset, timestep_rate_hz
from bidl.data.sources import SOURCES
from bidl.distributed import DistributedSettings
from bidl.runtime import retaining_environment
from snakemake.exceptions import WorkflowError


# `--config seeds=[0,1,2]` reaches here as strings: digits become the integers they spell (anything else is
# left for the schema to name)
if isinstance(config.get("seeds"), list):
    config["seeds"] = [int(s) if isinstance(s, str) and s.strip().isdigit() else s for s in config["seeds"]]

# Everything in the config that can be checked before a job runs, in every run and dry run (-n): the schema,
# what names refer to, every model built once from its keywords (bidl.pipeline.config.model_problems)...
validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
# ...and the device against this machine where the jobs run on it: not in a job of a cluster run, nor where
# --jobs sizes a submission to a cluster (a cluster profile sets it), whose nodes are not this machine
JOBS_RUN_HERE = workflow.is_main_process and workflow.resource_settings.nodes is None
check_machine(config, torch.cuda.device_count() if JOBS_RUN_HERE else None)
# ...and an interpreter that script rules can start (a path with a space cannot be, snakemake#2645)
check_interpreter(sys.executable)

# The jobs' malloc keeps what it frees (bidl.runtime): set for every process the jobs start, not this one
if config.get("allocator", "retain") == "retain":
    os.environ.update(retaining_environment())

PRESET = config["name"]
RESULTS = f"results/{PRESET}"
CACHE = f"resources/cache/{PRESET}"
LOGS = f"logs/{PRESET}"
THREADS = config.get("threads", 2)
EXPERIMENTS = sorted(config["experiments"])
# every accuracy comes from each of these training seeds (the data split fixed); the first is the reference
# seed, whose models are costed, timed and exported; the seed is a wildcard, so one seed reruns alone
SEEDS = list(config["seeds"])
REFERENCE_SEED = SEEDS[0]
MODELS = network_names(config)  # everything trained, evaluated, costed and timed
TABLE3_MODELS = table3_names(config)  # each experiment that has baselines, then its baselines
COST = config.get("cost") or {}
EXPORT = config.get("export")  # the chip export of every experiment (bidl.export); absent: not exported
TABLE1_SHAPE = COST.get("table1", {})  # {}: Figure 4's setting, bidl.cost.figure4_counts' defaults
BENCH = config.get("bench")  # the neuron speed bench (bidl.pipeline.bench); absent: not run
BENCH_SETUP = bench_setup(config) if BENCH is not None else None  # (settings, experiment, input shape)
# data-parallel training (bidl.distributed): the train rule starts torchrun where this asks for > 1 process
DISTRIBUTED = config.get("distributed") or {}
DISTRIBUTED_SETTINGS = DistributedSettings.from_mapping(DISTRIBUTED)
# what a training job requests beyond memory: its nodes, and on CUDA a GPU per process on each node (`gpu`,
# the job's total, on one node; `gres: gpu:<n>`, per node, on several, as SLURM counts them); nothing on the
# CPU (an executor plugin may read a gpu key, even 0, as a GPU request)
TRAIN_RESOURCES = {}
if DISTRIBUTED_SETTINGS.nnodes > 1:
    TRAIN_RESOURCES["nodes"] = DISTRIBUTED_SETTINGS.nnodes
if config.get("device") == "cuda":
    if DISTRIBUTED_SETTINGS.nnodes > 1:
        TRAIN_RESOURCES["gres"] = f"gpu:{DISTRIBUTED_SETTINGS.nproc_per_node}"
    else:
        TRAIN_RESOURCES["gpu"] = DISTRIBUTED_SETTINGS.nproc_per_node

# a network's name and a seed are one path segment each (results/<preset>/experiments/<name>/seed<k>/...)
wildcard_constraints:
    experiment=r"[^/]+",
    seed=r"\d+",
    variant=r"[^/]+",


DATASETS_DECLARED = [d for d in DATASET_NAMES if d in config["datasets"]]

# wildcard patterns: dataset names, and the real sources that download by script or are placed by hand
DATASET_PATTERN = "|".join(DATASET_NAMES)
SCRIPTED_SOURCE_PATTERN = "|".join(sorted({s.name for d in SOURCES.values() for s in d.values() if not s.manual}))
MANUAL_SOURCE_PATTERN = "|".join(sorted({s.name for d in SOURCES.values() for s in d.values() if s.manual}))


def all_cores(wildcards):
    """Every core Snakemake was given, so that a job using them runs alone (the latency measurements); 1
    where no core count applies (``snakemake --report`` or a dry run without ``--cores``)."""
    try:
        return workflow.cores
    except WorkflowError:
        return 1


def dataset_source(dataset):
    return config["datasets"][dataset]["source"]


def describe_dataset_source(dataset):
    """The dataset's source in words, for tables and figures (stand-in or real, and its layout)."""
    return describe_source(dataset, dataset_source(dataset))


STANDIN_FOLDER = config.get("standin_folder", "standin")


def raw_folder(dataset):
    """The raw copy's folder under resources/<dataset>/: the source's name, or the preset's stand-in folder."""
    source = dataset_source(dataset)
    return STANDIN_FOLDER if source == "standin" else source


def raw_marker(dataset):
    """The marker file whose presence says the raw data of ``dataset`` is complete."""
    return f"resources/{dataset}/{raw_folder(dataset)}/.complete"


def preprocess_params(dataset):
    """Keyword arguments of the dataset's ``preprocess``: the config's, plus the raw layout where it takes one."""
    params = dict(config["datasets"][dataset].get("preprocess", {}))
    info = get_dataset(dataset)
    if info.layout_param:
        params["layout"] = info.layout(dataset_source(dataset))
    return params


def experiment(name):
    """An experiment's config entry, or a baseline's experiment-like entry (bidl.pipeline.config.resolve_experiment)."""
    return resolve_experiment(config, name)


def dataset_loader(dataset):
    """Keyword arguments of the dataset class (Jester's frame sampling), from ``datasets.<name>.loader``."""
    return dict(config["datasets"][dataset].get("loader", {}))


def experiment_loader(name):
    """The dataset's loader keywords, updated by the experiment's own (``experiments.<name>.loader``)."""
    entry = experiment(name)
    return {**dataset_loader(entry["dataset"]), **(entry.get("loader") or {})}


def run_file(name, seed, file):
    """``results/<preset>/experiments/<name>/seed<seed>/<file>``: one training seed's model, history or
    metrics."""
    return f"{RESULTS}/experiments/{name}/seed{seed}/{file}"


def seeded_files(names, file):
    """``file`` of every seed of every network in ``names`` (network-major, then seed)."""
    return [run_file(name, seed, file) for name in names for seed in SEEDS]


def reference_model(name):
    """The reference seed's trained model: what the cost, latency and export rules measure."""
    return run_file(name, REFERENCE_SEED, "model.pt")


def experiment_init(name, seed):
    """The trained model an experiment starts from (``init_from: <experiment>``), of the same seed, as a
    list of 0 or 1 paths."""
    source = experiment(name).get("init_from")
    return [run_file(source, seed, "model.pt")] if source else []


def experiment_timestep_hz(name):
    dataset = experiment(name)["dataset"]
    preprocess = config["datasets"][dataset].get("preprocess", {})
    return timestep_rate_hz(dataset, preprocess, dataset_loader(dataset))


def experiment_split(name, split):
    return f"{CACHE}/{experiment(name)['dataset']}/{split}.npz"


def dataset_raw(dataset):
    """The raw copy's marker as a list of 0 or 1 paths: 1 where the dataset class reads the raw files when a
    split is opened (catalog ``reads_raw``: Jester decodes its frames from the JPEG folders), so that a rule
    opening a split keeps the raw copy as a dependency."""
    return [raw_marker(dataset)] if get_dataset(dataset).reads_raw else []


def experiment_raw(name):
    return dataset_raw(experiment(name)["dataset"])


# the studies: optional config sections
COLEARN = config.get("colearning")
LIFPLUS = config.get("lifplus_study")
LIFPLUS_VARIANTS = sorted(LIFPLUS["variants"]) if LIFPLUS else []


def _study_experiment(section, key):
    name = section["experiment"]
    if name not in config["experiments"]:
        raise ValueError(f"{key}.experiment: {name!r} is not an experiment of this config")
    return name


COLEARN_EXPERIMENT = _study_experiment(COLEARN, "colearning") if COLEARN else None
LIFPLUS_EXPERIMENT = _study_experiment(LIFPLUS, "lifplus_study") if LIFPLUS else None


def colearn_study(method):
    """The co-learning section for fine-tuning ``method``: ``bptt`` / ``rstdp``, or ``<method>.<variant>``
    with the named variant's ``bptt`` / ``rstdp`` keys updating the study's (``colearning.variants``)."""
    base, _, variant = method.partition(".")
    study = {k: v for k, v in COLEARN.items() if k != "variants"}
    if variant:
        spec = (COLEARN.get("variants") or {}).get(variant)
        if spec is None:
            known = sorted(COLEARN.get("variants") or {})
            raise ValueError(f"colearning.variants: no variant {variant!r} (variants: {known})")
        study |= {key: {**study[key], **spec[key]} for key in ("bptt", "rstdp") if key in spec}
    return study


def colearn_input_bptt(method, seed):
    """R-STDP that starts from the BPTT fine-tuned head (``rstdp.init: bptt``) needs that model first (of
    the same variant and seed)."""
    base, dot, variant = method.partition(".")
    if base == "rstdp" and colearn_study(method)["rstdp"].get("init", "copies") == "bptt":
        return [f"{RESULTS}/colearning/bptt{dot}{variant}/seed{seed}/model.pt"]
    return []


def lifplus_experiment(variant):
    """The LIF+ study's row ``variant``: the base experiment with LIF+ neurons and the variant's stages."""
    base = experiment(LIFPLUS_EXPERIMENT)
    kwargs = {**base.get("model_kwargs", {}), "neuron": "lifplus", **LIFPLUS["variants"][variant]}
    return {**base, "model_kwargs": kwargs}


def final_outputs():
    outputs = [
        f"{RESULTS}/tables/datasets.md",
        f"{RESULTS}/tables/table2.md",
        f"{RESULTS}/tables/table2.csv",
        f"{RESULTS}/tables/table1.md",
        f"{RESULTS}/figures/fig4.png",
        f"{RESULTS}/tables/cost.md",
        *expand(f"{RESULTS}/experiments/{{experiment}}/history.png", experiment=MODELS),
    ]
    if TABLE3_MODELS:  # Table 3's baselines, trained side by side with the experiments
        outputs += [f"{RESULTS}/tables/table3.md", f"{RESULTS}/figures/table3.png"]
    if COLEARN:
        outputs += [f"{RESULTS}/figures/fig11.png", f"{RESULTS}/figures/fig11.csv"]
    if LIFPLUS:
        outputs += [f"{RESULTS}/tables/table4.md", f"{RESULTS}/tables/table4.csv"]
    if EXPORT is not None:
        outputs += [f"{RESULTS}/tables/export.md"]
    if BENCH is not None:
        outputs += [f"{RESULTS}/tables/bench.md", f"{RESULTS}/figures/bench.png"]
    return outputs


def exported(name):
    """The experiment's export folder as a list of 0 or 1 paths (baselines are not exported)."""
    return [f"{RESULTS}/export/{name}"] if EXPORT is not None and name in EXPERIMENTS else []
