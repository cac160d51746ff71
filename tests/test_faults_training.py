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
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from helpers import tiny_dvs128_preset

from bidl.io import atomic_torch_save, leftover_temporaries, load_checkpoint
from bidl.training import _RUN_FILES, train

pytestmark = pytest.mark.fault

REPO = Path(__file__).resolve().parents[1]
PRESET = "faults"
EXPERIMENT = "tiny"
EPOCHS = 6
RUN = Path("results") / PRESET / "experiments" / EXPERIMENT / "seed0"
TARGET = str(RUN / "model.pt")
METRICS = str(RUN / "metrics.json")


def _tiny_preset() -> dict:
    return tiny_dvs128_preset(PRESET, "fault injection: a tiny DVS128 run", EXPERIMENT, EPOCHS)


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
            return (self.root / "logs" / PRESET / "train" / EXPERIMENT / "seed0.log").read_text()
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
    (repo.root / "logs" / PRESET / "train" / EXPERIMENT / "seed0.log").unlink(missing_ok=True)
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
def slow_save(obj, handle):
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


# ---------------------------------------------------------------------------------------------------------
# Changing the config and rerunning: the rerun yields the model the new config asks for
# ---------------------------------------------------------------------------------------------------------


def _variant(repo: Repo, name: str, epochs: int, *, recipe: dict | None = None, n_frames: int = 12) -> str:
    """Write preset ``name`` (the tiny one with ``epochs`` and the given recipe keys and frame count) into the
    repository copy; return the path of its experiment's model.pt."""
    preset = _tiny_preset()
    preset["name"] = name
    experiment = preset["experiments"][EXPERIMENT]
    experiment["recipe"] = {**experiment["recipe"], "epochs": epochs, **(recipe or {})}
    preset["datasets"]["dvs128_gesture"]["preprocess"]["n_frames"] = n_frames
    (repo.root / "config" / f"{name}.yaml").write_text(yaml.safe_dump(preset, sort_keys=False))
    return f"results/{name}/experiments/{EXPERIMENT}/seed0/model.pt"


def _run_preset(repo: Repo, name: str, *args: str) -> str:
    """Run Snakemake on preset ``name``; return the training job's log of this run ('' if none ran)."""
    log = repo.root / "logs" / name / "train" / EXPERIMENT / "seed0.log"
    log.unlink(missing_ok=True)
    code, out = _finish(
        subprocess.Popen(
            [sys.executable, "-m", "snakemake", *args, "--cores", "1", "--configfile", f"config/{name}.yaml"],
            cwd=repo.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )
    assert code == 0, out[-4000:]
    return log.read_text() if log.exists() else ""


def _model(repo: Repo, target: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(repo.root / target)


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _said(log: str, *starts: str) -> str:
    """The first log line that contains one of ``starts`` (for the fault table)."""
    line = next((x for x in log.splitlines() if any(s in x for s in starts)), "")
    return re.sub(r"\S*/results/", "results/", line.strip())


@pytest.fixture(scope="module")
def cosine_runs(repo: Repo) -> dict[str, Any]:
    """The tiny experiment (cosine schedule) trained 4 epochs and, as a separate preset, 2 epochs."""
    four = _variant(repo, "rerun", 4)
    _run_preset(repo, "rerun", four)
    two = _variant(repo, "fresh2", 2)
    _run_preset(repo, "fresh2", two)
    return {
        "four": _model(repo, four),
        "four_bytes": (repo.root / four).read_bytes(),
        "two": _model(repo, two),
    }


def test_lowering_epochs_trains_the_shorter_run(repo: Repo, cosine_runs, fault_log) -> None:
    target = _variant(repo, "rerun", 2)
    log = _run_preset(repo, "rerun", target)
    assert "past the 2 this run is configured for" in log and "resuming" not in log, log[-3000:]
    assert _equal(_model(repo, target), cosine_runs["two"])
    fault_log(
        "rerun after a config change",
        "recipe.epochs lowered 4 -> 2 after a finished run, then `snakemake`",
        f"{_said(log, 'past the')}; the 2-epoch model equals a fresh 2-epoch run's (torch.equal)",
    )


def test_raising_epochs_under_a_cosine_schedule_starts_over(repo: Repo, cosine_runs, fault_log) -> None:
    target = _variant(repo, "rerun", 4)  # after the lowered run above: 2 -> 4
    log = _run_preset(repo, "rerun", target)
    assert "another learning-rate schedule" in log and "resuming" not in log, log[-3000:]
    history = (repo.root / target).with_name("history.csv").read_text().splitlines()
    assert len(history) == 5 and all(float(row.split(",")[1]) > 0 for row in history[1:])
    assert _equal(_model(repo, target), cosine_runs["four"])
    fault_log(
        "rerun after a config change",
        "recipe.epochs raised 2 -> 4 under a cosine schedule (the old run's last epochs at lr ~0)",
        f"{_said(log, 'learning-rate schedule')}; trained 4 epochs from the start, no epoch at lr 0; "
        "the model equals a fresh 4-epoch run's",
    )


def test_forcerun_of_training_trains_from_scratch(repo: Repo, cosine_runs, fault_log) -> None:
    target = _variant(repo, "rerun", 4)
    log = _run_preset(repo, "rerun", target, "--forcerun", "train")
    assert "finished 4-epoch run" in log and "resuming" not in log, log[-3000:]
    assert "epoch=4," in log  # the fourth epoch trained again, not taken from the checkpoint
    assert (repo.root / target).read_bytes() == cosine_runs["four_bytes"]
    fault_log(
        "rerun after a config change",
        "`snakemake --forcerun train` after a finished run",
        f"{_said(log, 'finished')}; all 4 epochs trained again; model.pt byte-identical to the first run's",
    )


def test_changing_a_preprocessing_parameter_retrains_on_the_new_data(repo: Repo, fault_log) -> None:
    target = _variant(repo, "rerun", 4, n_frames=10)
    log = _run_preset(repo, "rerun", target)
    assert "differs in data.train, data.val" in log and "resuming" not in log, log[-3000:]
    fresh = _variant(repo, "fresh10", 4, n_frames=10)
    _run_preset(repo, "fresh10", fresh)
    assert _equal(_model(repo, target), _model(repo, fresh))
    fault_log(
        "rerun after a config change",
        "datasets.dvs128_gesture.preprocess.n_frames changed 12 -> 10 after a finished run",
        f"Snakemake reran preprocess and train; {_said(log, 'differs in')}; the model equals a fresh "
        "run's on the new data",
    )


def test_raising_epochs_under_a_length_free_schedule_extends_the_run(repo: Repo, fault_log) -> None:
    steps = {"schedule": "multistep", "milestones": [1, 3], "gamma": 0.5}
    target = _variant(repo, "extend", 2, recipe=steps)
    _run_preset(repo, "extend", target)
    target = _variant(repo, "extend", 4, recipe=steps)
    log = _run_preset(repo, "extend", target)
    assert "after epoch 2 of 4" in log, log[-3000:]
    fresh = _variant(repo, "fresh4steps", 4, recipe=steps)
    _run_preset(repo, "fresh4steps", fresh)
    assert _equal(_model(repo, target), _model(repo, fresh))
    fault_log(
        "rerun after a config change",
        "recipe.epochs raised 2 -> 4 under a multistep schedule (milestones 1, 3)",
        f"{_said(log, 'resuming from')}; the model equals a fresh 4-epoch run's (torch.equal)",
    )


def _diverging(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` whose output turns NaN from its second forward pass on (the loss of batch 2)."""
    calls = []

    def nan_from_the_second_batch(module, inputs, output):
        calls.append(1)
        return output * float("nan") if len(calls) >= 2 else output

    model.aggregate.register_forward_hook(nan_from_the_second_batch)
    return model


def test_the_nan_messages_remedy_does_what_the_message_says(tmp_path: Path, fault_log, capsys) -> None:
    from test_training import RECIPE, order_task, seeded_model

    data, recipe = order_task(n=32), replace(RECIPE, epochs=4, schedule="none")
    train(seeded_model(), data, None, replace(recipe, epochs=2), tmp_path, seed=0)
    extend = replace(recipe, epochs=4)
    with pytest.raises(FloatingPointError) as err:  # epoch 3 diverges; checkpoint 2 is kept
        train(_diverging(seeded_model()), data, None, extend, tmp_path, seed=0)
    message = str(err.value)
    assert "lower recipe.lr" in message and "trains from epoch 1" in message
    capsys.readouterr()
    remedy = replace(extend, lr=extend.lr / 10)
    history = train(seeded_model(), data, None, remedy, tmp_path, seed=0)
    said = capsys.readouterr().out
    assert "differs in recipe.lr" in said and "training from epoch 1" in said and len(history) == 4
    assert len(list(tmp_path.glob("checkpoint.stale-*.pt"))) == 1  # the diverged run's checkpoint, kept
    fault_log(
        "training",
        "the loss turns NaN in epoch 3; rerun with the message's remedy (recipe.lr / 10)",
        f"the message says the remedy trains from epoch 1, and it does: {_said(said, 'differs in')}",
    )


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 256 KiB file system (tmpfs, mounted as root) that a checkpoint cannot fit on."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_a_full_disk_while_saving_a_checkpoint_is_named(small_disk: Path, fault_log) -> None:
    from bidl.io import DiskFullError

    (small_disk / "checkpoint.pt").write_bytes(b"previous")
    with pytest.raises(DiskFullError) as err:
        atomic_torch_save({"model": torch.zeros(200_000)}, small_disk / "checkpoint.pt")
    assert "disk is full" in str(err.value) and str(small_disk / "checkpoint.pt") in str(err.value)
    assert (small_disk / "checkpoint.pt").read_bytes() == b"previous"
    assert [p.name for p in small_disk.iterdir()] == ["checkpoint.pt"]  # no temporary left
    fault_log(
        "checkpoint write",
        "the disk fills up while a checkpoint is written (a 256 KiB tmpfs)",
        f"{type(err.value).__name__}: {err.value} (the previous checkpoint untouched, no temporary left)",
    )
