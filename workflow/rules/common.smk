# Configuration validation, paths and input functions shared by the rules.
from pathlib import Path

from bidl.config import validate_config


validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")

PRESET = config["name"]
RESULTS = f"results/{PRESET}"
CACHE = f"resources/cache/{PRESET}"
LOGS = f"logs/{PRESET}"
THREADS = config.get("threads", 2)
EXPERIMENTS = sorted(config["experiments"])

# raw on-disk layout read by the preprocessing for each (dataset, source)
RAW_LAYOUTS = {
    ("dvs128_gesture", "standin"): "ibm_aedat31",
    ("dvs128_gesture", "ibm"): "ibm_aedat31",
    ("dvs128_gesture", "tonic"): "tonic_npy",
}


def dataset_source(dataset):
    return config["datasets"][dataset]["source"]


def raw_marker(dataset):
    """The marker file whose presence says the raw data of ``dataset`` is complete."""
    return f"resources/{dataset}/{dataset_source(dataset)}/.complete"


def experiment(name):
    return config["experiments"][name]


def experiment_split(name, split):
    return f"{CACHE}/{experiment(name)['dataset']}/{split}.npz"


def final_outputs():
    return [
        f"{RESULTS}/tables/table2.md",
        f"{RESULTS}/tables/table2.csv",
        *expand(f"{RESULTS}/experiments/{{experiment}}/history.png", experiment=EXPERIMENTS),
    ]
