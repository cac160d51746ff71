"""Fault injection: mistyped configuration keys and values, a diverging loss, an unsafe checkpoint.

Every wrong key, type or value in a preset is a schema error that names the key (checked in-process on the
default preset, and once through Snakemake, which must exit non-zero without running a job); a NaN loss
stops training with a message and keeps the last good checkpoint; a checkpoint that carries code is refused
by ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from test_training import RECIPE, order_task, tiny_model

from bidl.config import validate_config
from bidl.errors import ConfigError
from bidl.io import load_checkpoint
from bidl.training import train

pytestmark = pytest.mark.fault

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def _set(config: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        config = config[key]
    config[last] = value


def _drop(config: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        config = config[key]
    del config[last]


# (what is wrong, the edit, the key the error must name, a word of the message)
BAD_CONFIGS = [
    ("a misspelt top-level key", lambda c: _set(c, "sed", 0), "sed", "unknown key"),
    ("a misspelt recipe key", lambda c: _set(c, "experiments.imdb.recipe.epoch", 5), "epoch", "unknown key"),
    ("a string for a number", lambda c: _set(c, "experiments.dvs128_asm.recipe.lr", "fast"),
     "experiments.dvs128_asm.recipe.lr", "number"),
    ("a float for an integer", lambda c: _set(c, "experiments.imdb.recipe.batch_size", 32.5),
     "experiments.imdb.recipe.batch_size", "integer"),
    ("zero epochs", lambda c: _set(c, "experiments.imdb.recipe.epochs", 0), "experiments.imdb.recipe.epochs",
     "minimum"),
    ("a negative seed", lambda c: _set(c, "seed", -1), "seed", "minimum"),
    ("an unknown optimizer", lambda c: _set(c, "experiments.luna16_cls.recipe.optimizer", "adamw2"),
     "experiments.luna16_cls.recipe.optimizer", "is not one of"),
    ("an unknown data source", lambda c: _set(c, "datasets.imdb.source", "kaggle"), "datasets.imdb.source",
     "is not one of"),
    ("a list where a mapping belongs", lambda c: _set(c, "datasets.jester.preprocess", [32, 16]),
     "datasets.jester.preprocess", "object"),
    ("a required key removed", lambda c: _drop(c, "experiments.imdb.dataset"), "experiments.imdb", "dataset"),
    ("deterministic as text", lambda c: _set(c, "deterministic", "yes"), "deterministic", "boolean"),
    ("a bad-sample policy mistyped", lambda c: _set(c, "datasets.luna16.preprocess.on_bad_sample", "skipp"),
     "datasets.luna16.preprocess.on_bad_sample", "is not one of"),
    ("a device that does not exist", lambda c: _set(c, "device", "tpu"), "device", "is not one of"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "edit", "key", "word"), BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_a_bad_config_is_a_schema_error_naming_the_key(what, edit, key, word, fault_log) -> None:
    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    edit(config)
    with pytest.raises(ConfigError) as err:
        validate_config(config, SCHEMA)
    message = str(err.value)
    assert key in message and word in message, message
    fault_log("configuration", what, err.value)


def test_snakemake_stops_on_a_bad_config_before_any_job(tmp_path: Path, fault_log) -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["experiments"]["dvs128_csm"]["recipe"] = {
        **config["experiments"]["dvs128_csm"]["recipe"],
        "lr": "1e-2x",
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--directory", str(tmp_path), "--snakefile",
         str(REPO / "workflow" / "Snakefile"), "--configfile", str(bad)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "experiments.dvs128_csm.recipe.lr: '1e-2x' is not of type 'number'" in output, output[-3000:]
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()
    line = next(x for x in output.splitlines() if "experiments.dvs128_csm.recipe.lr" in x).strip()
    outcome = f"exit {result.returncode}, no job run: {line}"
    fault_log("configuration", "a mistyped learning rate, run through Snakemake", outcome)


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path: Path, fault_log) -> None:
    data = order_task(n=32)
    train(tiny_model(), data, None, replace(RECIPE, epochs=2), tmp_path, seed=0)
    kept = (tmp_path / "checkpoint.pt").read_bytes()
    diverged = tiny_model()
    diverged.load_state_dict(load_checkpoint(tmp_path / "model.pt"))
    calls = []

    def nan_from_the_second_batch(module, inputs, output):  # the loss turns NaN in epoch 3, batch 2
        calls.append(1)
        return output * float("nan") if len(calls) >= 2 else output

    diverged.aggregate.register_forward_hook(nan_from_the_second_batch)
    with pytest.raises(FloatingPointError) as err:
        train(diverged, data, None, replace(RECIPE, epochs=4), tmp_path, seed=0)
    message = str(err.value)
    assert "epoch 3/4 train, batch 2: the loss became nan" in message and "after epoch 2) is kept" in message
    assert (tmp_path / "checkpoint.pt").read_bytes() == kept
    fault_log("training", "the loss turns NaN in epoch 3 (batch 2)", f"{err.value} (checkpoint.pt unchanged)")


class _Payload:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_a_checkpoint_carrying_code_is_refused(tmp_path: Path, fault_log) -> None:
    evil = tmp_path / "model.pt"
    torch.save({"weights": torch.ones(2), "extra": _Payload()}, evil)
    with pytest.raises(Exception) as err:
        load_checkpoint(evil)
    assert "weights_only" in str(err.value) or "Unsupported global" in str(err.value)
    fault_log("checkpoint load", "a model.pt whose pickle calls a function when loaded", err.value)
