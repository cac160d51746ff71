"""Fault injection into training run by Snakemake: SIGKILL at many points, then a plain rerun.

A copy of the repository gets a tiny preset (a small DVS128 network on a small stand-in, 6 epochs). One
uninterrupted ``snakemake`` run gives the reference weights. Each trial deletes the run and trains it again
under ``snakemake``, killing it (the training job alone, or Snakemake together with its job, as when a
node is lost) at a chosen point: before the first checkpoint, right after a checkpoint, in the middle of an
epoch, twice, as the final weights appear; or it damages the newest checkpoint after the kill. Then a plain
``snakemake`` (the workflow's default profile adds ``--rerun-incomplete``) must finish the run by resuming
from its last checkpoint and end with exactly the reference weights (deterministic mode, ``torch.equal`` on
every tensor), and in between no output of the killed job may be left for a later rule to consume.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from bidl.io import atomic_torch_save, leftover_temporaries, load_checkpoint
from bidl.training import _RUN_FILES

pytestmark = pytest.mark.fault

REPO = Path(__file__).resolve().parents[1]
PRESET = "faults"
EXPERIMENT = "tiny"
EPOCHS = 6
RUN = Path("results") / PRESET / "experiments" / EXPERIMENT
TARGET = str(RUN / "model.pt")
METRICS = str(RUN / "metrics.json")


def _tiny_preset() -> dict:
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    dvs = base["datasets"]["dvs128_gesture"]
    model_kwargs = {**base["experiments"]["dvs128_asm"]["model_kwargs"], "channels": [4, 8, 8], "hidden": 16}
    return {
        "name": PRESET,
        "description": "fault injection: a tiny DVS128 run",
        "seed": 0,
        "device": "cpu",
        "threads": 1,
        "deterministic": True,
        "datasets": {
            "dvs128_gesture": {
                "source": "standin",
                "standin": {**dvs["standin"], "n_users": 4, "n_test_users": 1, "reps_per_class": 1},
                "preprocess": {**dvs["preprocess"], "n_frames": 12, "size": 16},
            }
        },
        "experiments": {
            EXPERIMENT: {
                "dataset": "dvs128_gesture",
                "model": "dvs128_gesture",
                "model_kwargs": {**model_kwargs, "height": 16, "width": 16},
                "paper": base["experiments"]["dvs128_asm"]["paper"],
                "recipe": {
                    "optimizer": "adam",
                    "lr": 1.0e-2,
                    "schedule": "cosine",
                    "epochs": EPOCHS,
                    "batch_size": 8,
                    "fp16": False,
                },
            }
        },
    }


def _snakemake(work: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        # targets before --configfile, which takes every word after it
        [sys.executable, "-m", "snakemake", *args, "--cores", "1", "--configfile", "config/faults.yaml"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: killing it takes its jobs too
    )


def _finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


def _run(work: Path, *args: str) -> str:
    code, out = _finish(_snakemake(work, *args))
    assert code == 0, out[-4000:]
    return out


class Repo:
    def __init__(self, root: Path):
        self.root = root
        self.run = root / RUN
        self.reference: dict[str, torch.Tensor] = {}  # the uninterrupted run's weights
        self.epoch_seconds = 0.0  # its median epoch time, to place kills inside an epoch

    def epochs_done(self) -> int:
        """Completed epochs, from the checkpoint's history file (rows written after each checkpoint)."""
        history = self.run / "history.csv"
        try:
            return max(0, len(history.read_text().splitlines()) - 1)
        except FileNotFoundError:
            return 0

    def weights(self) -> dict[str, torch.Tensor]:
        return load_checkpoint(self.run / "model.pt")

    def log(self) -> str:
        try:
            return (self.root / "logs" / PRESET / "train" / f"{EXPERIMENT}.log").read_text()
        except FileNotFoundError:
            return ""

    def started(self) -> bool:
        """Whether the training process has begun (its first line in its log, which each job rewrites)."""
        return f"experiment {EXPERIMENT} (process" in self.log()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    root = tmp_path_factory.mktemp("faults") / "repo"
    shutil.copytree(
        REPO,
        root,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "results", "resources", "logs", "benchmarks", ".snakemake", "__pycache__"
        ),
    )
    (root / "config" / "faults.yaml").write_text(yaml.safe_dump(_tiny_preset(), sort_keys=False))
    _run(root, TARGET)  # data, preprocessing and the uninterrupted reference run
    repo = Repo(root)
    repo.reference = repo.weights()
    seconds = [float(line.split(",")[-1]) for line in (repo.run / "history.csv").read_text().splitlines()[1:]]
    repo.epoch_seconds = sorted(seconds)[len(seconds) // 2]
    return repo


def _wait(condition, process: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"snakemake ended before {what}: {process.communicate()[0][-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the task ended meanwhile
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _training_job(snakemake_pid: int) -> int | None:
    """The process running scripts/train.py under this Snakemake (its script copy's command line)."""
    todo, seen = [snakemake_pid], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo += _children(pid)
    for pid in seen[1:]:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "train.py" in command:
            return pid
    return None


def _kill_job(process: subprocess.Popen) -> str:
    _wait(lambda: _training_job(process.pid) is not None, process, "the training job started")
    os.kill(_training_job(process.pid), signal.SIGKILL)
    code, out = _finish(process)
    assert code != 0, "Snakemake must fail the killed job"
    return out


def _kill_all(process: subprocess.Popen, work: Path) -> None:
    """SIGKILL Snakemake with its jobs; as its lock message tells, the user then runs ``--unlock``."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    _run(work, "--unlock")


def _outputs_left(repo: Repo) -> list[str]:
    return sorted(p.name for p in (repo.run / "model.pt", repo.run / "history.csv") if p.exists())


def _start(repo: Repo) -> subprocess.Popen:
    shutil.rmtree(repo.run, ignore_errors=True)
    (repo.root / "logs" / PRESET / "train" / f"{EXPERIMENT}.log").unlink(missing_ok=True)
    return _snakemake(repo.root, TARGET)


def _resume_and_compare(repo: Repo) -> str:
    _run(repo.root, TARGET)  # the job's log is rewritten: it holds the rerun alone
    resumed = [line for line in repo.log().splitlines() if line.startswith("resuming from")]
    weights = repo.weights()
    assert weights.keys() == repo.reference.keys()
    differing = [name for name in weights if not torch.equal(weights[name], repo.reference[name])]
    assert not differing, f"weights differ from the uninterrupted run: {differing}"
    assert repo.epochs_done() == EPOCHS
    how = f"resumed after {resumed[-1].split(' after ', 1)[-1]}" if resumed else "trained from the start"
    return f"the rerun {how}; all {len(weights)} tensors equal the uninterrupted run's (torch.equal)"


def _consumable(repo: Repo) -> str:
    """What a dry run of the next rule (evaluation) plans: the killed training must be rerun first."""
    out = _run(repo.root, "-n", METRICS)
    assert "rule train:" in out or "localrule train:" in out, out[-3000:]
    return "a dry run of the evaluation plans the training again"


def test_killing_the_job_before_its_first_checkpoint(repo: Repo, fault_log) -> None:
    process = _start(repo)
    _wait(repo.started, process, "training began")
    time.sleep(0.5 * repo.epoch_seconds)
    out = _kill_job(process)
    assert repo.epochs_done() == 0 and _outputs_left(repo) == [], out[-2000:]
    planned = _consumable(repo)
    fault_log(
        "training (Snakemake)",
        "SIGKILL of the training job half way through epoch 1, before any checkpoint",
        f"Snakemake failed the job, no output left; {planned}; {_resume_and_compare(repo)}",
    )


@pytest.mark.parametrize("epoch", [2, 5])
def test_killing_the_job_right_after_a_checkpoint(repo: Repo, fault_log, epoch: int) -> None:
    process = _start(repo)
    _wait(lambda: repo.epochs_done() >= epoch, process, f"checkpoint {epoch}")
    out = _kill_job(process)
    assert _outputs_left(repo) == [], out[-2000:]
    assert load_checkpoint(repo.run / "checkpoint.pt")["epoch"] >= epoch
    fault_log(
        "training (Snakemake)",
        f"SIGKILL of the training job as checkpoint {epoch} of {EPOCHS} appears",
        f"Snakemake failed the job and removed model.pt and history.csv; {_resume_and_compare(repo)}",
    )


def _rerun_after_losing_snakemake(repo: Repo) -> str:
    """After Snakemake was killed with its job: the plan of the next rule, then the rerun's outcome."""
    planned = _consumable(repo)
    return (
        f"the job stayed marked incomplete; after `snakemake --unlock` (Snakemake's lock) {planned}; "
        + _resume_and_compare(repo)
    )


def test_losing_snakemake_and_its_job_in_the_middle_of_an_epoch(repo: Repo, fault_log) -> None:
    process = _start(repo)
    _wait(lambda: repo.epochs_done() >= 3, process, "checkpoint 3")
    time.sleep(0.5 * repo.epoch_seconds)
    _kill_all(process, repo.root)
    assert not (repo.run / "model.pt").exists()
    fault_log(
        "training (Snakemake)",
        "SIGKILL of Snakemake and its job together (node lost) half way through epoch 4",
        _rerun_after_losing_snakemake(repo),
    )


def test_killed_twice(repo: Repo, fault_log) -> None:
    process = _start(repo)
    _wait(lambda: repo.epochs_done() >= 1, process, "checkpoint 1")
    time.sleep(0.5 * repo.epoch_seconds)
    _kill_all(process, repo.root)
    process = _snakemake(repo.root, TARGET)
    _wait(lambda: repo.epochs_done() >= 4, process, "checkpoint 4")
    time.sleep(0.3 * repo.epoch_seconds)
    _kill_job(process)
    fault_log(
        "training (Snakemake)",
        "killed twice: Snakemake with its job in epoch 2, then the resumed job in epoch 5",
        _resume_and_compare(repo),
    )


def test_losing_snakemake_and_its_job_as_the_final_weights_appear(repo: Repo, fault_log) -> None:
    process = _start(repo)
    _wait(lambda: (repo.run / "model.pt").exists(), process, "model.pt")
    _kill_all(process, repo.root)
    fault_log(
        "training (Snakemake)",
        "SIGKILL of Snakemake and its job the moment model.pt appears, before Snakemake records the job",
        _rerun_after_losing_snakemake(repo),
    )


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(repo: Repo, fault_log) -> None:
    process = _start(repo)
    _wait(lambda: repo.epochs_done() >= 3, process, "checkpoint 3")
    _kill_all(process, repo.root)
    newest = repo.run / "checkpoint.pt"
    epoch = load_checkpoint(newest)["epoch"]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a torn write, a full disk
    outcome = _resume_and_compare(repo)
    assert f"after epoch {epoch - 1}" in outcome, outcome
    assert list(repo.run.glob("checkpoint.corrupt-*.pt")), "the damaged checkpoint is kept aside"
    fault_log(
        "training (Snakemake)",
        f"SIGKILL after checkpoint {epoch}, then checkpoint.pt cut to half its size",
        f"checkpoint.pt kept aside as checkpoint.corrupt-1.pt with a message; {outcome}",
    )


_SLOW_SAVE = """
import sys, time, torch
from bidl.io import atomic_torch_save
def slow_save(obj, path):
    with open(path, "wb") as handle:
        handle.write(b"PK" + bytes(1000))
        handle.flush()
        print("writing", flush=True)
        time.sleep(60)
torch.save = slow_save
atomic_torch_save({"epoch": 2}, sys.argv[1], previous=sys.argv[2])
"""


def test_a_kill_during_a_checkpoint_write_leaves_the_old_checkpoint_whole(tmp_path: Path, fault_log) -> None:
    checkpoint, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"
    atomic_torch_save({"epoch": 1, "model": {"w": torch.ones(3)}}, checkpoint)
    before = checkpoint.read_bytes()
    writer = subprocess.Popen(
        [sys.executable, "-c", _SLOW_SAVE, str(checkpoint), str(previous)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert checkpoint.read_bytes() == before and not previous.exists()
    (leftover,) = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert [p.name for p in leftover_temporaries(tmp_path, _RUN_FILES)] == [leftover]
    fault_log(
        "checkpoint write",
        "SIGKILL half way through writing a checkpoint",
        f"checkpoint.pt still holds the previous epoch, byte for byte; the half-written {leftover[:16]}... "
        "temporary is removed when training starts again",
    )
