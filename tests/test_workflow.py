"""The Snakemake workflow: config validation names the key, dry runs list the expected jobs, and the
default preset runs end to end (slow: it trains the DVS128 networks on the stand-in)."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bidl.config import load_yaml, validate_config
from bidl.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args, cwd=REPO, check=True):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


@pytest.mark.parametrize("preset", ["config.yaml", "paper.yaml"])
def test_presets_validate(preset):
    validate_config(load_yaml(REPO / "config" / preset), SCHEMA)


def test_schema_errors_name_the_key():
    config = load_yaml(REPO / "config" / "config.yaml")
    config["experiments"]["dvs128_asm"]["recipe"] = {
        **config["experiments"]["dvs128_asm"]["recipe"],
        "lr": "fast",
    }
    config["datasets"]["dvs128_gesture"]["sourse"] = "standin"
    with pytest.raises(ConfigError) as err:
        validate_config(config, SCHEMA)
    message = str(err.value)
    assert "experiments.dvs128_asm.recipe.lr: 'fast' is not of type 'number'" in message
    assert "datasets.dvs128_gesture: unknown key(s) ['sourse']" in message


def test_snakemake_rejects_a_bad_config_naming_the_key(tmp_path):
    config = load_yaml(REPO / "config" / "config.yaml")
    config["experiments"]["dvs128_asm"]["recipe"] = {
        **config["experiments"]["dvs128_asm"]["recipe"],
        "epochs": 0,
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(bad), check=False)
    assert result.returncode != 0
    assert "experiments.dvs128_asm.recipe.epochs" in result.stdout + result.stderr


def test_paper_dry_run_lists_download_preprocessing_and_training():
    out = snakemake("-n", "--forceall", "--configfile", "config/paper.yaml", "--nolock").stdout
    for rule in ("dvs128_fetch", "dvs128_preprocess", "train", "evaluate", "table2"):
        assert f"rule {rule}:" in out or f"\n{rule} " in out, rule
    assert "resources/dvs128_gesture/ibm/.complete" in out
    assert "dvs128_standin" not in out


def test_default_dry_run_uses_the_stand_in_and_does_not_merge_presets():
    out = snakemake("-n", "--forceall", "--nolock").stdout
    assert "dvs128_standin" in out and "dvs128_fetch" not in out
    assert "results/default/tables/table2.md" in out


@pytest.mark.slow
def test_default_pipeline_end_to_end(tmp_path):
    """README command one's pipeline, in a copy of the repository: every rule runs, Table 2 is rendered,
    the DVS128 networks reach >= 85 % on the stand-in and lose >= 20 points on time-shuffled frames."""
    work = tmp_path / "repo"
    shutil.copytree(
        REPO,
        work,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "results", "resources", "logs", "benchmarks", ".snakemake", "__pycache__"
        ),
    )
    snakemake("--cores", "2", cwd=work)
    table = work / "results" / "default" / "tables" / "table2.csv"
    rows = list(csv.DictReader(table.open()))
    assert {r["experiment"] for r in rows} == {"dvs128_asm", "dvs128_csm"}
    for row in rows:
        assert row["data source"].startswith("stand-in")
        top1, shuffled = float(row["top-1 ours (IIM)"]), float(row["top-1 time-shuffled"])
        assert top1 >= 85.0, row
        assert shuffled <= top1 - 20.0, row
        assert row["top-1 ours (IIM)"] == row["top-1 ours (EIM)"], row
    for experiment in ("dvs128_asm", "dvs128_csm"):
        metrics = json.loads((work / "results/default/experiments" / experiment / "metrics.json").read_text())
        assert metrics["iim_eim_prediction_agreement"] == 100.0
        assert (work / "results/default/experiments" / experiment / "history.png").stat().st_size > 0
    split = json.loads((work / "resources/cache/default/dvs128_gesture/split.json").read_text())
    assert split
    # a second run has nothing to do
    assert (
        "Nothing to be done"
        in snakemake("--cores", "2", "-n", cwd=work).stdout + snakemake("--cores", "2", "-n", cwd=work).stderr
    )


@pytest.mark.parametrize("script", sorted((REPO / "scripts").glob("*.py")), ids=lambda p: p.name)
def test_scripts_run_under_snakemake_preamble(script):
    """Snakemake prepends a preamble to ``script:`` files, so a ``from __future__`` import would be a
    SyntaxError there; every script also needs the ``snakemake`` adapter."""
    source = script.read_text()
    assert "from __future__" not in source
    assert '"snakemake" in globals()' in source
    compile("import sys\n" + source, str(script), "exec")
