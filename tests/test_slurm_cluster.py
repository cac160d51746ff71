"""The pipeline on a real one-node SLURM cluster started on this machine.

The module's ``cluster`` fixture installs ``slurm-wlm``, ``slurmdbd``, ``munge`` and ``mariadb-server`` with
apt-get where a program is missing (as root; elsewhere it skips, naming why) and starts, under one tmp
folder and on free ports of 127.0.0.1: ``munged`` with its own key and socket, a MariaDB server with the
accounting database, ``slurmdbd`` (the executor plugin polls job states with ``sacct``, which reads them
from slurmdbd; SLURM 22.05 has no file-based accounting storage), ``slurmctld`` and ``slurmd`` for one node
with this machine's cores and memory (tests/slurm/slurm.conf.in). It returns once ``sinfo`` shows the node
idle, and stops every daemon by its pid file after the module, also where a test or the start failed.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_dvs128_preset

from bidl.io import load_checkpoint

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TEMPLATES = HERE / "slurm"
#: apt packages, and the programs whose absence makes the fixture install them
PACKAGES = ("slurm-wlm", "slurmdbd", "munge", "mariadb-server")
PROGRAMS = (
    "slurmctld", "slurmd", "slurmdbd", "munged", "mungekey", "mariadbd", "mariadb-install-db", "mariadb",
    "sinfo", "sbatch", "srun", "sacct", "sacctmgr", "scancel",
)  # fmt: skip
#: the daemons, in the order they are stopped
DAEMONS = ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged")
#: the client commands, wrapped to find this cluster's slurm.conf (see :func:`_client_wrappers`)
CLIENTS = (
    "sbatch",
    "srun",
    "salloc",
    "squeue",
    "sinfo",
    "scontrol",
    "scancel",
    "sacct",
    "sacctmgr",
    "sshare",
)
ACCOUNT = "bidl"
PARTITION = "debug"

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _program(name: str) -> str | None:
    """The path of ``name`` on PATH or in /usr/sbin (not on a non-root PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mb() -> int:
    """MemTotal of /proc/meminfo in MiB (what slurmd reports as the node's RealMemory)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("/proc/meminfo: no MemTotal line")


def install_slurm() -> str:
    """Install :data:`PACKAGES` with apt-get where one of :data:`PROGRAMS` is missing. Returns why the
    cluster cannot be started here (not root, no apt-get), or ``""``; a failing apt-get raises."""
    missing = [name for name in PROGRAMS if _program(name) is None]
    if not missing:
        return ""
    if os.geteuid() != 0:
        return f"{', '.join(missing)} not installed, and installing {' '.join(PACKAGES)} needs root"
    if shutil.which("apt-get") is None:
        return f"{', '.join(missing)} not installed, and there is no apt-get to install {' '.join(PACKAGES)}"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{output}")
    still = [name for name in PROGRAMS if _program(name) is None]
    if still:
        raise RuntimeError(
            f"apt-get installed {' '.join(PACKAGES)}, but {', '.join(still)} are still missing"
        )
    return ""


@dataclass
class Cluster:
    """A one-node cluster whose files are under ``root``; ``env`` (``SLURM_CONF``, /usr/sbin on PATH) is
    what a client command or a ``snakemake`` submitting to it needs."""

    root: Path
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    partition: str = PARTITION
    account: str = ACCOUNT
    env: dict[str, str] = field(default_factory=dict)
    children: list[subprocess.Popen] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    def run(self, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a client command (``sinfo``, ``sbatch``, ...) against this cluster."""
        result = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def log(self, daemon: str) -> str:
        """The log of ``slurmctld``, ``slurmd``, ``slurmdbd``, ``munged`` or ``mariadbd``."""
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, chars: int = 2000) -> str:
        """The ends of the SLURM daemons' logs, for an assertion message."""
        return "".join(
            f"\n--- {d}.log ---\n{self.log(d)[-chars:]}" for d in ("slurmctld", "slurmd", "slurmdbd")
        )

    def jobs(self) -> list[dict[str, str]]:
        """Every job accounting knows of (``sacct``): its id, name, state, exit code and comment (the
        executor plugin writes the rule and wildcards there)."""
        fields = ("JobIDRaw", "JobName", "State", "ExitCode", "Comment", "NodeList")
        out = self.run(
            "sacct", "-X", "--parsable2", "--noheader", "--allusers", "--starttime=now-1days",
            f"--format={','.join(fields)}",
        ).stdout  # fmt: skip
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]

    def wait_for_job(self, job: str, timeout: float = 240) -> str:
        """Wait until accounting records job ``job`` as ended (``sbatch --wait`` polls only every 30 s);
        returns its state."""
        state = ""

        def ended() -> bool:
            nonlocal state
            state = {j["JobIDRaw"]: j["State"] for j in self.jobs()}.get(job, "")
            return state not in ("", "PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED")

        wait_for(ended, f"job {job} to end", timeout, self)
        return state

    def wait_for_idle_queue(self, timeout: float = 60) -> None:
        def empty() -> bool:
            out = self.run("squeue", "--noheader", "--states=PENDING,RUNNING,COMPLETING", check=False)
            return out.returncode == 0 and not out.stdout.strip()

        wait_for(empty, "the queue to empty", timeout, self)

    def stop(self) -> None:
        """Cancel every job, then stop each daemon by its pid file (SIGTERM, SIGKILL after 15 s)."""
        if (self.root / "run" / "slurmctld.pid").exists():
            with contextlib.suppress(Exception):
                self.run("scancel", "--full", f"--partition={self.partition}", check=False, timeout=20)
                self.wait_for_idle_queue(30)
        for name in DAEMONS:
            pid_file = self.root / "run" / f"{name}.pid"
            try:
                pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            pid_file.unlink(missing_ok=True)
        for child in self.children:  # reap what this process started itself
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(
    condition: Callable[[], bool], what: str, timeout: float, cluster: Cluster | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}" + (cluster.logs() if cluster else "")
            )
        time.sleep(0.2)


def _fill(template: str, target: Path, values: dict[str, object], mode: int = 0o644) -> None:
    target.write_text(string.Template((TEMPLATES / template).read_text()).substitute(values))
    os.chmod(target, mode)


def _client_wrappers(cluster: Cluster) -> Path:
    """A folder of scripts named as the client commands that run them with ``SLURM_CONF`` set to this
    cluster's configuration: the executor plugin's job step drops every ``SLURM_*`` variable but the job's
    identity before it calls ``srun``, so that a cluster reached through ``SLURM_CONF`` alone would be lost
    inside the job (a real one has its slurm.conf where the commands look by default, /etc/slurm)."""
    folder = cluster.root / "bin"
    folder.mkdir(exist_ok=True)
    for name in CLIENTS:
        program = _program(name)
        if program is None:
            continue
        wrapper = folder / name
        wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{cluster.conf}" exec {program} "$@"\n')
        wrapper.chmod(0o755)
    return folder


def _start(command: list[str], env: dict[str, str], what: str, cluster: Cluster) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{what}: {' '.join(command)} failed:\n{result.stderr}{cluster.logs()}")


def start_cluster(cluster: Cluster) -> None:
    """Write the configuration under ``cluster.root`` and start munged, MariaDB, slurmdbd, slurmctld and
    slurmd (each a daemon with a pid file under ``root/run``); register the cluster and an account
    ``bidl`` holding root with ``sacctmgr``. Returns once the node is idle; where it fails, the caller's
    :meth:`Cluster.stop` stops what started."""
    root, node = cluster.root, cluster.node
    for sub in ("etc", "state", "spool", "run", "log", "munge", "db"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "munge", 0o700)
    path = os.pathsep.join([str(_client_wrappers(cluster)), os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    cluster.env = {**os.environ, "SLURM_CONF": str(cluster.conf), "PATH": path}
    values: dict[str, object] = dict(
        root=root,
        cluster="bidltest",
        host=node,
        node=node,
        partition=cluster.partition,
        cpus=os.cpu_count(),
        memory=_memory_mb(),
        ctld_port=_free_port(),
        slurmd_port=_free_port(),
        dbd_port=_free_port(),
        db_port=_free_port(),
        db_password=secrets.token_hex(8),
        munge_socket=root / "munge" / "munge.socket",
    )
    _fill("slurm.conf.in", cluster.conf, values)
    _fill("slurmdbd.conf.in", root / "etc" / "slurmdbd.conf", values, 0o600)  # slurmdbd insists on 600
    env = cluster.env

    key = root / "munge" / "munge.key"
    _start(["mungekey", "--create", f"--keyfile={key}"], env, "the munge key", cluster)
    _start(
        ["munged", "--force", f"--socket={values['munge_socket']}", f"--key-file={key}",
         f"--pid-file={root / 'run' / 'munged.pid'}", f"--log-file={root / 'log' / 'munged.log'}",
         f"--seed-file={root / 'munge' / 'munged.seed'}"],
        env, "munged", cluster,
    )  # fmt: skip

    data, db_socket = root / "db" / "data", root / "db" / "mysql.sock"
    server = ["--no-defaults", f"--datadir={data}", "--user=root", "--innodb-log-file-size=8M"]
    _start(["mariadb-install-db", *server, "--auth-root-authentication-method=normal", "--skip-test-db"],
           env, "the accounting database", cluster)  # fmt: skip
    with open(root / "log" / "mariadbd.log", "ab") as log:
        server_process = subprocess.Popen(
            ["mariadbd", *server, "--bind-address=127.0.0.1", f"--port={values['db_port']}",
             f"--socket={db_socket}", f"--pid-file={root / 'run' / 'mariadbd.pid'}", "--skip-log-bin"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )  # fmt: skip
    cluster.children.append(server_process)
    sql = (
        f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{values['db_password']}';"
        "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    )
    client = ["mariadb", "--no-defaults", f"--socket={db_socket}", "-u", "root"]
    wait_for(lambda: subprocess.run([*client, "-e", "SELECT 1"], capture_output=True).returncode == 0,
             "MariaDB to accept connections", 60)  # fmt: skip
    _start([*client, "-e", sql], env, "the accounting database's user", cluster)

    _start(["slurmdbd"], env, "slurmdbd", cluster)
    wait_for(lambda: cluster.run("sacctmgr", "-n", "list", "cluster", check=False).returncode == 0,
             "slurmdbd to answer", 60, cluster)  # fmt: skip
    cluster.run("sacctmgr", "-i", "add", "cluster", values["cluster"])
    cluster.run("sacctmgr", "-i", "add", "account", ACCOUNT, f"cluster={values['cluster']}")
    cluster.run("sacctmgr", "-i", "add", "user", "root", f"account={ACCOUNT}", f"cluster={values['cluster']}")

    _start(["slurmctld", "-c", "-i"], env, "slurmctld", cluster)
    _start(["slurmd"], env, "slurmd", cluster)

    def idle() -> bool:
        state = cluster.run("sinfo", "--noheader", "--format=%T", check=False)
        return state.returncode == 0 and state.stdout.strip() == "idle"

    wait_for(idle, f"node {node} to be idle in sinfo", 60, cluster)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running one-node SLURM cluster with accounting, stopped after the module."""
    reason = install_slurm()
    if reason:
        pytest.skip(f"no SLURM cluster can be started here: {reason}")
    running = Cluster(root=tmp_path_factory.mktemp("slurm"))
    try:
        start_cluster(running)
        yield running
    finally:
        running.stop()


# --- the pipeline through the slurm profile ---------------------------------------------------------------

PRESET = "slurmtest"
EXPERIMENT = "tiny"
TABLE = f"results/{PRESET}/tables/table2.csv"
#: the rules of the target's jobs that are not localrules: each must run as an sbatch job
SUBMITTED_RULES = {"standin", "preprocess", "train", "evaluate", "latency"}
#: what the profile asks for, cut to the 2-core node: one thread and 1 GB per job, two jobs at once
FIT_TO_NODE = (
    "--jobs", "2",
    "--set-threads", *(f"{rule}=1" for rule in sorted(SUBMITTED_RULES)),
    "--set-resources", *(f"{rule}:mem_mb=1500" for rule in sorted(SUBMITTED_RULES)),
    "--default-resources", "mem_mb=1000", "runtime=30",
    f"slurm_account={ACCOUNT}", f"slurm_partition={PARTITION}",
    "--slurm-init-seconds-before-status-checks", "1",
)  # fmt: skip


def tiny_preset(epochs: int = 2) -> dict:
    """One small DVS128 network on a small stand-in (tests/helpers.py), as the fault tests train it."""
    return tiny_dvs128_preset(PRESET, "a tiny DVS128 run on a test SLURM cluster", EXPERIMENT, epochs)


def copy_repo(target: Path, preset: dict) -> Path:
    """A copy of the repository without results, data or Snakemake state, with ``preset`` as
    config/slurmtest.yaml."""
    shutil.copytree(
        REPO,
        target,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "results", "resources", "logs", "benchmarks", ".snakemake", "__pycache__"
        ),
    )
    (target / "config" / f"{PRESET}.yaml").write_text(yaml.safe_dump(preset, sort_keys=False))
    return target


def snakemake(work: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``snakemake TARGETS... --configfile config/slurmtest.yaml`` in ``work``, its output to a pipe."""
    return subprocess.Popen(
        # targets before --configfile, which takes every word after it
        [sys.executable, "-m", "snakemake", *args, "--configfile", f"config/{PRESET}.yaml"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )


def finish(process: subprocess.Popen, what: str, timeout: float = 300, cluster: Cluster | None = None) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        out, _ = process.communicate()
        raise AssertionError(f"{what}: timed out after {timeout} s:\n{out[-4000:]}") from None
    if process.returncode != 0:
        logs = cluster.logs() if cluster else ""
        raise AssertionError(f"{what} failed ({process.returncode}):\n{out[-6000:]}{logs}")
    return out


def rules_started(log: str) -> tuple[list[str], list[str]]:
    """The rules of the jobs a Snakemake run's output says it started: (submitted or run as jobs,
    run as localrules on this host)."""
    jobs, local = [], []
    for line in log.splitlines():
        match = re.match(r"(rule|localrule) (\w+):$", line.rstrip())
        if match:
            (jobs if match[1] == "rule" else local).append(match[2])
    return jobs, local


def rule_of(comment: str) -> str:
    """The rule in the executor plugin's job comment ``rule_<rule>[_wildcards_<values>]``."""
    match = re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", comment)
    return match[1] if match else ""


def run_files(work: Path, name: str) -> list[Path]:
    """The experiment's ``name`` files (model.pt, metrics.json) under its results folder, at any depth."""
    return sorted((work / "results" / PRESET / "experiments" / EXPERIMENT).rglob(name))


@pytest.fixture(scope="module")
def pipeline(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Table 2 of the tiny preset (stand-in, preprocessing, training, latency, evaluation, table) run
    twice from scratch: through the slurm profile on the cluster, and locally (``--cores 2``), side by
    side. Returns both copies, Snakemake's output and the cluster's jobs of the slurm run."""
    base = tmp_path_factory.mktemp("pipeline")
    on_slurm, local = copy_repo(base / "slurm", tiny_preset()), copy_repo(base / "local", tiny_preset())
    before = {job["JobIDRaw"] for job in cluster.jobs()}
    started = time.monotonic()
    slurm_run = snakemake(
        on_slurm, TABLE, "--profile", "workflow/profiles/slurm", *FIT_TO_NODE, env=cluster.env
    )
    local_run = snakemake(local, TABLE, "--cores", "2")
    finish(local_run, "the local run")
    slurm_out = finish(slurm_run, "the run through the slurm profile", cluster=cluster)
    seconds = time.monotonic() - started
    jobs = [job for job in cluster.jobs() if job["JobIDRaw"] not in before]
    model = run_files(on_slurm, "model.pt")[0].relative_to(on_slurm)  # results/.../model.pt
    return dict(slurm=on_slurm, local=local, out=slurm_out, jobs=jobs, seconds=seconds, model=model)


def test_every_job_of_the_slurm_profile_ran_as_an_sbatch_job(pipeline: dict, cluster: Cluster) -> None:
    submitted, local = rules_started(pipeline["out"])
    assert sorted(submitted) == sorted(SUBMITTED_RULES), pipeline["out"][-3000:]
    assert local == ["table2"]  # the renderers are localrules: they run on the submitting host
    jobs = pipeline["jobs"]
    assert sorted(rule_of(job["Comment"]) for job in jobs) == sorted(submitted), jobs
    assert all(job["State"] == "COMPLETED" and job["NodeList"] == cluster.node for job in jobs), jobs
    # the slurmctld log names each of them on the node too: started by the main scheduler
    # ("sched: Allocate JobId=5 NodeList=vm ...") or, on a busy machine, by the backfill scheduler
    # ("sched/backfill: _start_job: Started JobId=5 in debug on vm")
    log = cluster.log("slurmctld")
    for job in jobs:
        started = rf"JobId={job['JobIDRaw']}\b.*?(?:NodeList={cluster.node}|\bon {cluster.node})\b"
        assert re.search(started, log), (job, log[-3000:])
    # and the Snakemake SLURM log of each is kept (the profile's slurm-keep-successful-logs)
    logs = pipeline["slurm"] / ".snakemake" / "slurm_logs"
    for job in jobs:
        found = list(logs.glob(f"rule_{rule_of(job['Comment'])}/**/{job['JobIDRaw']}.log"))
        assert found, (job, sorted(logs.rglob("*")))


def test_the_slurm_run_ends_with_the_local_runs_weights_metrics_and_table(pipeline: dict) -> None:
    on_slurm, local = pipeline["slurm"], pipeline["local"]
    models = run_files(on_slurm, "model.pt"), run_files(local, "model.pt")
    assert len(models[0]) == len(models[1]) == 1, models
    a, b = load_checkpoint(models[0][0]), load_checkpoint(models[1][0])
    assert a.keys() == b.keys()
    assert [name for name in a if not torch.equal(a[name], b[name])] == []
    metrics = [json.loads(p.read_text()) for p in (run_files(on_slurm, "metrics.json")[0],
                                                   run_files(local, "metrics.json")[0])]  # fmt: skip
    assert metrics[0] == metrics[1]
    rows = [next(csv.DictReader((root / TABLE).open())) for root in (on_slurm, local)]
    accuracy = [key for key in rows[0] if key.startswith("top-1")]
    assert accuracy and all(rows[0][key] == rows[1][key] for key in accuracy), rows


# --- data-parallel training with the srun launcher ------------------------------------------------------


def test_data_parallel_training_with_the_srun_launcher_ends_as_the_local_run(
    cluster: Cluster, tmp_path: Path
) -> None:
    """2 processes with gloo on the CPU, launched as the train rule launches them inside the job step the
    executor plugin starts (``srun -n1 --cpus-per-task=2`` in an sbatch job): ``srun`` starts torchrun at
    the allocation's first node. Ends with the weights of the local 2-process run
    (tests/test_distributed.py)."""
    from test_distributed import _env, assert_same_weights, torchrun, weights

    epochs = 2
    local = tmp_path / "local"
    torchrun(local, epochs)
    on_slurm, log = tmp_path / "slurm", tmp_path / "slurm.log"
    step = f"srun -n1 --cpu-bind=q --cpus-per-task=2 {sys.executable} {TEMPLATES / 'ddp_launch.py'}"
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/sh\n{step} {on_slurm} {epochs} 2\n")
    env = {**_env(), "SLURM_CONF": cluster.env["SLURM_CONF"], "PATH": cluster.env["PATH"]}
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--cpus-per-task=2", "--mem=2000", f"--account={ACCOUNT}", f"--output={log}",
         str(script)],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    job = submitted.stdout.strip().split(";")[0]
    state = cluster.wait_for_job(job)
    text = log.read_text() if log.exists() else ""
    assert state == "COMPLETED", f"job {job}: {state}\n{text}{cluster.logs()}"
    assert f"head node {cluster.node}; srun --overlap" in text
    out = cluster.run("sacct", "-j", job, "--parsable2", "--noheader", "--format=JobID,State").stdout
    steps = dict(line.split("|") for line in out.splitlines())
    # step 0: the job step the executor plugin starts a job in; step 1: torchrun's, started from it
    assert steps.get(f"{job}.0") == steps.get(f"{job}.1") == "COMPLETED", steps
    assert_same_weights(weights(on_slurm), weights(local))


# --- what a user sees when a job fails or is cancelled --------------------------------------------------


def test_a_failed_job_names_its_rule_log_slurm_job_and_slurm_log(pipeline: dict, cluster: Cluster) -> None:
    """A damaged test split (the training's validation data): the training job, submitted again for the
    evaluation, fails on the cluster, and Snakemake's output names the rule, its log, the SLURM job id
    and the job's Snakemake SLURM log."""
    work = pipeline["slurm"]
    cache = work / "resources" / "cache" / PRESET / "dvs128_gesture" / "test.npz"
    cache.write_bytes(b"not an npz archive")
    metrics = run_files(work, "metrics.json")[0].relative_to(work)
    before = {job["JobIDRaw"] for job in cluster.jobs()}
    profile = ("--profile", "workflow/profiles/slurm", *FIT_TO_NODE, "--retries", "0")
    run = snakemake(work, str(metrics), *profile, env=cluster.env)
    out, _ = run.communicate(timeout=240)
    assert run.returncode != 0, out[-3000:]
    failed = [job for job in cluster.jobs() if job["JobIDRaw"] not in before]
    assert [(rule_of(job["Comment"]), job["State"]) for job in failed] == [("train", "FAILED")], failed
    job = failed[0]["JobIDRaw"]
    assert "Error in rule train" in out and f"SLURM-job '{job}' failed" in out, out[-3000:]
    slurm_log = next((work / ".snakemake" / "slurm_logs" / "rule_train").rglob(f"{job}.log"))
    assert str(slurm_log) in out, out[-3000:]
    # "log: <the rule's log>, <the SLURM log> (check log file(s) for error details)"
    rule_log = re.search(r"log: (logs/\S+?\.log)[, ]", out)
    assert rule_log and "test.npz" in (work / rule_log[1]).read_text(), out[-3000:]
    cache.unlink()  # the next test's run preprocesses it again


def test_a_cancelled_training_job_is_resubmitted_and_resumes_from_its_checkpoint(
    pipeline: dict, cluster: Cluster
) -> None:
    """``scancel`` of a running training job: the profile's ``retries: 1`` submits it again, and the new
    job resumes from the checkpoint and ends with the weights of an uninterrupted local run.

    With ``--slurm-status-command squeue``: sacct reports the cancelled job as ``CANCELLED by <uid>``,
    which the executor plugin (2.8.0) does not take for a failure, so that with its sacct status queries
    Snakemake would wait for the job forever; squeue reports ``CANCELLED`` (MinJobAge keeps finished jobs
    in squeue for an hour here)."""
    epochs = 120
    work, local = pipeline["slurm"], pipeline["local"]
    for root in (work, local):
        (root / "config" / f"{PRESET}.yaml").write_text(yaml.safe_dump(tiny_preset(epochs), sort_keys=False))
    model, target = work / pipeline["model"], str(pipeline["model"])
    reference = snakemake(local, target, "--cores", "1")
    before = {job["JobIDRaw"] for job in cluster.jobs()}
    profile = ("--profile", "workflow/profiles/slurm", *FIT_TO_NODE, "--slurm-status-command", "squeue")
    run = snakemake(work, target, *profile, env=cluster.env)
    history = model.parent / "history.csv"
    cancelled = ""

    def training_checkpointed() -> bool:
        nonlocal cancelled
        queue = cluster.run("squeue", "--noheader", "--states=RUNNING", "--format=%i|%k", check=False).stdout
        running = [line.split("|", 1) for line in queue.splitlines() if "|" in line]
        trains = [job for job, comment in running if rule_of(comment.strip()) == "train"]
        rows = len(history.read_text().splitlines()) - 1 if history.exists() else 0
        cancelled = trains[0] if trains else ""
        return bool(trains) and 3 <= rows < epochs - 20

    wait_for(training_checkpointed, "the training job's third checkpoint", 180, cluster)
    cluster.run("scancel", cancelled)
    out = finish(run, "the run with a cancelled job", cluster=cluster)
    finish(reference, "the local reference run")
    new = [job for job in cluster.jobs() if job["JobIDRaw"] not in before]
    trains = [job for job in new if rule_of(job["Comment"]) == "train"]  # the preprocessing ran first
    assert [job["State"].split()[0] for job in trains] == ["CANCELLED", "COMPLETED"], trains
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in out, out[-3000:]
    log = next((work / "logs" / PRESET / "train").rglob("*.log")).read_text()
    assert "resuming from" in log, log[-2000:]
    a, b = load_checkpoint(model), load_checkpoint(local / target)
    assert [name for name in a if not torch.equal(a[name], b[name])] == []
