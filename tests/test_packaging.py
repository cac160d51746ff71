"""Packaging: the conda environment pins agree with pyproject.toml; README and CI agree."""

import re
import subprocess
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda package name -> PyPI name


def requirement(spec: str) -> tuple[str, str]:
    name, _, bound = re.match(r"^([A-Za-z0-9_.-]+)\s*(([<>=!~]=?)\s*[\w.*]+)?", spec).group(1, 0, 2)
    return name.lower(), (bound or "").replace(" ", "")


def test_conda_environments_pin_the_same_lower_bounds_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = dict(requirement(dep) for dep in project["dependencies"])
    env_files = sorted((REPO / "envs").glob("*.yaml"))
    assert env_files
    for env_file in env_files:
        env = yaml.safe_load(env_file.read_text())
        conda = {}
        for dep in env["dependencies"]:
            if isinstance(dep, str) and not dep.startswith(("python", "pip")):
                name, bound = requirement(dep)
                conda[CONDA_NAMES.get(name, name)] = bound
            elif isinstance(dep, dict):  # the pip section: what conda-forge lacks, and bidl itself
                for pip_dep in dep.get("pip", []):
                    if not pip_dep.startswith("-"):
                        conda.update([requirement(pip_dep)])
        assert conda == pins, f"{env_file.name} disagrees with pyproject.toml"


def test_python_and_torch_floor_allow_the_cpu_build_in_use():
    import torch

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    floor = dict(requirement(dep) for dep in project["dependencies"])["torch"].lstrip(">=")
    installed = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    assert installed >= tuple(int(p) for p in floor.split(".")[:2])


def test_readme_has_exactly_two_quick_start_commands_and_ci_runs_the_second():
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", quick, flags=re.S)
    commands = [line for block in blocks for line in block.strip().splitlines() if not line.startswith("#")]
    assert len(commands) == 2, commands
    assert "snakemake --cores" in commands[0] and "pytest" in commands[1]
    extracted = subprocess.run(
        [
            "awk",
            "/<!-- test-command -->/{found=1; next} found && /^```/{if (inblock) exit; inblock=1; next} "
            "inblock{print}",
            "README.md",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert extracted == commands[1]
    assert "README.md" in (REPO / ".ci" / "run").read_text()


def test_gitignore_covers_generated_folders():
    ignored = (REPO / ".gitignore").read_text().split()
    for folder in ("results/", "resources/", "logs/", "benchmarks/", ".snakemake/"):
        assert folder in ignored
