"""Packaging: the conda environment pins agree with pyproject.toml; README and CI agree; the library installs
and runs without the pipeline's packages."""

import os
import re
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda package name -> PyPI name
PIPELINE_EXTRAS = ("pipeline", "data", "export")  # what the pipeline's rules (envs/bidl.yaml) need
PIPELINE_ONLY = (
    "snakemake", "onnx", "onnxscript", "onnxruntime", "nir", "nirtorch", "snntorch", "SimpleITK",
    "matplotlib", "scipy", "jsonschema", "pandas", "PIL", "yaml", "tonic", "nibabel",
)  # fmt: skip
"""Import names of the packages the library core (neurons, layers, models, training) must not import."""


def requirement(spec: str) -> tuple[str, str]:
    name, _, bound = re.match(r"^([A-Za-z0-9_.-]+)\s*(([<>=!~]=?)\s*[\w.*]+)?", spec).group(1, 0, 2)
    return name.lower(), (bound or "").replace(" ", "")


def extra_requirements(project: dict, extras: tuple[str, ...]) -> list[str]:
    """The requirements of ``extras`` with the self-references (``bidl[data,export]``) resolved."""
    out, todo, seen = [], list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for dep in project["optional-dependencies"][extra]:
            nested = re.fullmatch(r"bidl\[([\w,\s-]+)\]", dep)
            if nested:
                todo.extend(name.strip() for name in nested.group(1).split(","))
            else:
                out.append(dep)
    return out


def test_conda_environments_pin_the_same_lower_bounds_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + extra_requirements(project, PIPELINE_EXTRAS)
    pins = dict(requirement(dep) for dep in deps)
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


def test_the_base_install_lists_no_pipeline_package_and_extras_resolve():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {requirement(dep)[0] for dep in project["dependencies"]}
    assert base == {"torch", "numpy", "numba", "tqdm"}
    for extra in project["optional-dependencies"]:
        assert extra_requirements(project, (extra,)), extra  # every self-reference names a defined extra
    test = {requirement(dep)[0] for dep in extra_requirements(project, ("test",))}
    assert {"snakemake", "pandas", "simpleitk", "onnx", "tonic", "pytest"} <= test
    everything = {requirement(dep)[0] for dep in extra_requirements(project, ("all",))}
    assert everything >= {requirement(dep)[0] for x in project["optional-dependencies"] if x != "gpu"
                          for dep in extra_requirements(project, (x,))}  # fmt: skip


_BLOCKER = textwrap.dedent(
    """
    import sys

    BLOCKED = set(sys.argv[1].split(","))

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: not a dependency of the library core")
            return None

    sys.meta_path.insert(0, Blocker())
    """
)


def test_the_core_builds_trains_and_exports_nothing_without_the_pipeline_packages():
    script = _BLOCKER + textwrap.dedent(
        """
        import torch
        import bidl
        from bidl import *  # noqa: F403
        import bidl.models, bidl.training, bidl.functional.kernels.cpu  # noqa: E401
        from bidl.models import create_model

        torch.manual_seed(0)
        model = create_model("dvs128_gesture", channels=(4, 4, 4), hidden=8, height=16, width=16)
        x = (torch.rand(2, 3, 2, 16, 16) < 0.3).float()  # [B, T, C, H, W] spikes
        loss = model(x).sum()
        loss.backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
        loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
        assert not loaded, loaded
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, ",".join(PIPELINE_ONLY)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_a_no_deps_install_requires_no_pipeline_package(tmp_path):
    """``pip install --no-deps .`` into a fresh virtual environment that sees this one's packages through a
    ``.pth`` file (no download): the installed metadata's Requires-Dist names only the base list unless an
    extra is asked for, and the installed library imports from there."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (source / name).write_bytes((REPO / name).read_bytes())
    subprocess.run(["cp", "-r", str(REPO / "bidl"), str(source / "bidl")], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "outer.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", str(source)],
        check=True, env=env, cwd=tmp_path, capture_output=True, timeout=180,
    )  # fmt: skip
    metadata = next(Path(site).glob("bidl-*.dist-info")) / "METADATA"
    requires = [line.split(":", 1)[1].strip() for line in metadata.read_text().splitlines()
                if line.startswith("Requires-Dist:")]  # fmt: skip
    unconditional = {requirement(r)[0] for r in requires if "extra ==" not in r}
    assert unconditional == {"torch", "numpy", "numba", "tqdm"}, requires
    imported = subprocess.run(
        [python, "-c", "import bidl; print(bidl.__file__)"], capture_output=True, text=True, cwd=tmp_path
    )
    assert imported.returncode == 0 and imported.stdout.startswith(site), imported.stderr
