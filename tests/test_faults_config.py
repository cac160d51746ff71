"""Fault injection: mistyped configuration keys and values, a diverging loss, an unsafe checkpoint.

Every wrong key, type or value in a preset is a schema error that names the key (checked in-process on the
default preset, and once through Snakemake, which must exit non-zero without running a job); so is a model
that cannot be built from its config (an unknown model, a keyword it does not take, a value of the wrong
type), and a device this machine does not have, each named by a dry run (``snakemake -n``) before any job;
``--config`` overrides apply to the default preset; a YAML syntax error names its file and line where this
project reads the file. A NaN loss stops training with a message and keeps the last good checkpoint; a
checkpoint that carries code is refused by ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from test_training import RECIPE, order_task, tiny_model

from bidl.errors import ConfigError
from bidl.io import load_checkpoint
from bidl.pipeline.config import check_machine, main, validate_config
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
    ("a negative seed", lambda c: _set(c, "seeds", [0, -1]), "seeds[1]", "minimum"),
    ("a seed listed twice", lambda c: _set(c, "seeds", [0, 0]), "seeds", "non-unique"),
    ("no seed", lambda c: _set(c, "seeds", []), "seeds", "should be non-empty"),
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


def _default_config() -> dict:
    return copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))


def _snakemake(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``snakemake -n`` of the repository's workflow in ``workdir`` (its outputs, and a ``config/config.yaml``
    there as the default preset)."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--directory", str(workdir), "--snakefile",
         str(REPO / "workflow" / "Snakefile"), *args],
        capture_output=True, text=True, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


def _no_job(result: subprocess.CompletedProcess, workdir: Path) -> bool:
    """The run stopped before planning a job (no job table) and wrote nothing of the pipeline's."""
    output = result.stdout + result.stderr
    return "Job stats:" not in output and not any(
        (workdir / d).exists() for d in ("results", "resources", "logs")
    )


def _line(output: str, key: str) -> str:
    return next(x for x in output.splitlines() if x.strip().startswith(key)).strip()


def _with_kwargs(path: str, **kwargs):
    """An edit adding ``kwargs`` to the mapping at the dotted ``path`` (created where absent)."""

    def edit(config: dict) -> None:
        *parents, last = path.split(".")
        for key in parents:
            config = config[key]
        config[last] = {**(config.get(last) or {}), **kwargs}

    return edit


# (what is wrong, the edit, the key the error must name, words of the message)
BAD_MODELS = [
    ("an unknown model name", lambda c: _set(c, "experiments.jester_v2.model", "jester_v3"),
     "experiments.jester_v2.model", ["unknown model 'jester_v3'", "did you mean 'jester_v2'", "registered:"]),
    ("an unknown baseline model", lambda c: _set(c, "baselines.imdb_lstm.model", "imdb_lsmt"),
     "baselines.imdb_lstm.model", ["unknown model 'imdb_lsmt'", "'imdb_lstm'"]),
    ("a misspelt model keyword", _with_kwargs("experiments.dvs128_asm.model_kwargs", hiden=64),
     "experiments.dvs128_asm.model_kwargs.hiden",
     ["model 'dvs128_gesture' takes no keyword 'hiden'", "did you mean 'hidden'", "it takes: alpha, beta"]),
    ("a string for an integer model keyword", _with_kwargs("experiments.imdb.model_kwargs", hidden="big"),
     "experiments.imdb.model_kwargs.hidden", ["'big' is not an integer", "model 'imdb' takes hidden: int"]),
    ("a neuron keyword of the wrong type", _with_kwargs("experiments.cifar10_dvs.model_kwargs", alpha="fast"),
     "experiments.cifar10_dvs.model_kwargs.alpha", ["'fast' is not a number", "alpha: float"]),
    ("a list of the wrong length", _with_kwargs("experiments.dvs128_csm.model_kwargs", channels=[16, 32]),
     "experiments.dvs128_csm.model_kwargs.channels", ["cannot be built", "expected 3 widths"]),
    ("a keyword the baseline model does not take",
     _with_kwargs("baselines.luna16_cls_conv3d.model_kwargs", alpha=0.3),
     "baselines.luna16_cls_conv3d.model_kwargs.alpha", ["'luna16_cls_conv3d' takes no keyword 'alpha'"]),
    ("a misspelt LIF+ stage in a variant", _with_kwargs("lifplus_study.variants.decay_lid", decai="lid"),
     "lifplus_study.variants.decay_lid.decai", ["model 'cifar10_dvs' takes no keyword 'decai'", "'decay'"]),
    ("an unknown LIF+ mode in a variant",
     _with_kwargs("lifplus_study.variants.decay_exponential", decay="expo"),
     "lifplus_study.variants.decay_exponential.decay", ["unknown mode 'expo'"]),
    ("a misspelt keyword of the bench's network", _with_kwargs("bench.dvs128.model_kwargs", nois=0.0),
     "bench.dvs128.model_kwargs.nois", ["takes no keyword 'nois'", "did you mean 'noise'"]),
]  # fmt: skip


@pytest.mark.parametrize(("what", "edit", "key", "words"), BAD_MODELS, ids=[b[0] for b in BAD_MODELS])
def test_a_model_that_cannot_be_built_is_named_by_its_key(what, edit, key, words, fault_log) -> None:
    config = _default_config()
    edit(config)
    with pytest.raises(ConfigError) as err:
        validate_config(config, SCHEMA)
    message = str(err.value)
    assert f"\n  {key}: " in message and all(w in message for w in words), message
    assert message.count("\n  ") == 1, message  # named once, not again by the baselines or studies it reaches
    fault_log("configuration", what, err.value)


def test_snakemake_dry_run_names_a_model_that_cannot_be_built_before_any_job(
    tmp_path: Path, fault_log
) -> None:
    config = _default_config()
    faults = [BAD_MODELS[0], BAD_MODELS[1], BAD_MODELS[2], BAD_MODELS[3], BAD_MODELS[7]]
    for _, edit, _, _ in faults:
        edit(config)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = _snakemake(tmp_path, "--configfile", str(bad))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and _no_job(result, tmp_path), output[-3000:]
    for what, _, key, words in faults:
        assert f"{key}: " in output and words[0] in output, (key, output[-3000:])
        outcome = f"snakemake -n: exit {result.returncode}, no job: {_line(output, key)}"
        fault_log("configuration", f"{what}, run through Snakemake", outcome)


# (device, distributed section, CUDA devices here (None: the jobs run elsewhere), the keys the error names)
MACHINES = [
    ("cuda", {"backend": "auto"}, 0, ["device"]),
    ("cuda", {"backend": "nccl"}, 0, ["device", "distributed.backend"]),
    ("auto", {"backend": "nccl"}, 0, ["distributed.backend"]),
    ("cpu", {"backend": "nccl"}, 1, ["distributed.backend"]),
    ("cpu", {"backend": "nccl"}, None, ["distributed.backend"]),
    ("cuda", {"nproc_per_node": 4}, 2, ["distributed.nproc_per_node"]),
    ("auto", {"nproc_per_node": 4, "backend": "nccl"}, 1, ["distributed.nproc_per_node"]),
    ("cuda", {"backend": "auto"}, 1, []),
    ("cuda", {"backend": "nccl"}, None, []),
    ("cuda", {"nproc_per_node": 4}, None, []),
    ("cuda", {"nproc_per_node": 4, "nnodes": 2, "launcher": "srun"}, 1, []),
    ("auto", {"nproc_per_node": 4}, 0, []),  # four gloo processes on the CPU
    ("auto", {"backend": "nccl"}, 1, []),
    ("cpu", {"backend": "gloo"}, 0, []),
]


@pytest.mark.parametrize(("device", "distributed", "cuda_devices", "keys"), MACHINES)
def test_the_device_is_checked_against_the_machine(device, distributed, cuda_devices, keys) -> None:
    config = {**_default_config(), "device": device, "distributed": distributed}
    if not keys:
        check_machine(config, cuda_devices)
        return
    with pytest.raises(ConfigError) as err:
        check_machine(config, cuda_devices)
    named = [line.split(":")[0].strip() for line in str(err.value).splitlines()[1:]]
    assert named == keys, str(err.value)


def test_snakemake_dry_run_names_a_cuda_device_this_machine_lacks(tmp_path: Path, fault_log) -> None:
    config = _default_config()
    config["device"] = "cuda"
    config["distributed"] = {**config["distributed"], "backend": "nccl"}
    bad = tmp_path / "cuda.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = _snakemake(tmp_path, "--configfile", str(bad), env={"CUDA_VISIBLE_DEVICES": ""})  # no GPU seen
    output = result.stdout + result.stderr
    assert result.returncode != 0 and _no_job(result, tmp_path), output[-3000:]
    assert "device: 'cuda', but this machine has no CUDA device" in output, output[-3000:]
    assert "distributed.backend: 'nccl' runs on CUDA devices only" in output, output[-3000:]
    for key, what in (("device", "device: cuda"), ("distributed.backend", "distributed.backend: nccl")):
        outcome = f"snakemake -n: exit {result.returncode}, no job: {_line(output, key + ':')}"
        fault_log("configuration", f"{what} on a machine without CUDA, run through Snakemake", outcome)


def test_config_overrides_apply_to_the_default_preset(tmp_path: Path, fault_log) -> None:
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    result = _snakemake(tmp_path, "--config", "name=overridden")
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "results/overridden/tables/table2.md" in output, output[-3000:]
    assert "results/default/" not in output
    # a --configfile preset is used alone: not merged with the default one (which has baselines)
    preset = _default_config()
    del preset["baselines"]
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(preset))
    alone = _snakemake(tmp_path, "--configfile", str(tmp_path / "other.yaml"), "--config", "name=other")
    assert alone.returncode == 0 and "results/other/tables/table2.md" in alone.stdout, alone.stderr[-3000:]
    assert "imdb_lstm" not in alone.stdout and "table3" not in alone.stdout
    jobs = next(x for x in output.splitlines() if x.strip().startswith("total")).split()[-1]
    fault_log(
        "configuration",
        "--config name=overridden without --configfile",
        f"the default preset with the override: snakemake -n plans {jobs} jobs under results/overridden/; "
        "with --configfile the named preset alone",
    )


def test_a_yaml_error_in_the_default_preset_names_its_line(tmp_path: Path, fault_log) -> None:
    (tmp_path / "config").mkdir()
    text = (REPO / "config" / "config.yaml").read_text()
    text = re.sub(r"^seeds: \[0\].*$", "seeds: [0", text, count=1, flags=re.M)  # the next line: device: auto
    (tmp_path / "config" / "config.yaml").write_text(text)
    line = text.splitlines().index("seeds: [0") + 1
    result = _snakemake(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and _no_job(result, tmp_path), output[-3000:]
    assert f"config/config.yaml, line {line + 1}, column 7: not valid YAML" in output, output[-3000:]
    assert f"flow sequence at line {line}, column 8" in output  # the "[" of "seeds: [0"
    outcome = f"snakemake -n: exit {result.returncode}, no job: {_line(output, 'config/config.yaml, line')}"
    fault_log("configuration", "a YAML syntax error in the default preset (an unclosed '[')", outcome)


@pytest.mark.parametrize("fault", ["a YAML syntax error", "a missing file"])
def test_a_bad_configfile_fails_in_snakemake_and_the_checker_names_file_and_line(
    fault, tmp_path: Path, capsys, fault_log
) -> None:
    """Snakemake reads a --configfile itself before the workflow runs: it exits non-zero, naming neither
    file nor line for a syntax error; ``python -m bidl.pipeline.config`` names both."""
    preset = tmp_path / "preset.yaml"
    if fault == "a YAML syntax error":
        preset.write_text("name: broken\nseed: 0\nexperiments:\n  a: {dataset: imdb\n")
        expected = f"{preset}, line 5, column 1: not valid YAML: expected ',' or '}}'"
    else:
        expected = f"{preset}: file not found"
    result = _snakemake(tmp_path, "--configfile", str(preset))
    assert result.returncode != 0 and _no_job(result, tmp_path)
    snakemake_says = [x.strip() for x in (result.stdout or result.stderr).splitlines() if x.strip()][-1]
    assert main([str(preset)]) == 1
    printed = capsys.readouterr().out
    assert expected in printed, printed
    outcome = (
        f"Snakemake exits {result.returncode} ({snakemake_says}); "
        f"python -m bidl.pipeline.config: {printed.strip()}"
    )
    fault_log("configuration", f"{fault} given as --configfile", outcome)


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path: Path, fault_log) -> None:
    data = order_task(n=32)
    recipe = replace(RECIPE, cosine_period=4)  # a schedule that 4 epochs extend (resume) rather than restart
    train(tiny_model(), data, None, replace(recipe, epochs=2), tmp_path, seed=0)
    kept = (tmp_path / "checkpoint.pt").read_bytes()
    diverged = tiny_model()
    diverged.load_state_dict(load_checkpoint(tmp_path / "model.pt"))
    calls = []

    def nan_from_the_second_batch(module, inputs, output):  # the loss turns NaN in epoch 3, batch 2
        calls.append(1)
        return output * float("nan") if len(calls) >= 2 else output

    diverged.aggregate.register_forward_hook(nan_from_the_second_batch)
    with pytest.raises(FloatingPointError) as err:
        train(diverged, data, None, replace(recipe, epochs=4), tmp_path, seed=0)
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


def test_an_interpreter_path_with_a_space_is_refused_before_any_job(tmp_path: Path, fault_log) -> None:
    """A virtual environment under a folder with a space: script rules cannot start (snakemake#2645)."""
    import site
    import sysconfig

    venv = tmp_path / "my envs" / "bidl"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "ours.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in ours))
    python = venv / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "snakemake", "-n", "--cores", "1"], cwd=REPO, capture_output=True, text=True
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "snakemake/snakemake#2645" in output, output[-3000:]
    assert "rule " not in output  # no job planned
    line = next(x for x in output.splitlines() if "#2645" in x).strip()
    fault_log("installation", "the virtual environment lies under a folder whose path has a space", line)
