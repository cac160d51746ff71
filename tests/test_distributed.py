"""Data-parallel training (bidl.distributed, bidl.training.train under torchrun): 2 processes with the gloo
backend on the CPU end with the same weights as one process with the same global batch."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import _ddp_worker
import pytest
import torch
from torch import nn

from bidl.distributed import (
    DataParallel,
    DistributedSettings,
    SyncBatchNorm,
    World,
    convert_sync_batchnorm,
    local_batch_size,
    shard,
    torchrun_command,
    world,
)
from bidl.errors import ConfigError
from bidl.io import load_checkpoint

WORKER = Path(__file__).with_name("_ddp_worker.py")
ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def one_process(out_dir: Path, epochs: int) -> None:
    subprocess.run(
        [sys.executable, str(WORKER), str(out_dir), str(epochs)], check=True, env=_env(), timeout=300
    )


def torchrun(out_dir: Path, epochs: int, processes: int = 2) -> None:
    settings = DistributedSettings(nproc_per_node=processes, backend="gloo")
    command = torchrun_command(settings, str(WORKER), [str(out_dir), str(epochs), "gloo"])
    subprocess.run(command, check=True, env=_env(), timeout=300)


def weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out_dir / "model.pt")


def assert_same_weights(a: dict, b: dict, atol: float = 1e-9) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key].double(), b[key].double(), rtol=1e-9, atol=atol, msg=key)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One process for 3 epochs; 2 processes for 3 epochs; 2 processes for 2 epochs, then resumed to 3;
    one process resuming the 2-process run to 4 epochs, and 2 processes resuming the single one to 4."""
    base = tmp_path_factory.mktemp("ddp")
    single, ddp, resumed = base / "single", base / "ddp", base / "resumed"
    one_process(single, 3)
    torchrun(ddp, 3)
    torchrun(resumed, 2)
    torchrun(resumed, 3)  # resumes from the checkpoint of epoch 2
    crossed = {"ddp_then_single": base / "ddp_then_single", "single_then_ddp": base / "single_then_ddp"}
    shutil.copytree(ddp, crossed["ddp_then_single"])
    shutil.copytree(single, crossed["single_then_ddp"])
    one_process(crossed["ddp_then_single"], 4)
    torchrun(crossed["single_then_ddp"], 4)
    return {"single": single, "ddp": ddp, "resumed": resumed, **crossed}


def test_two_processes_end_with_the_weights_of_one_process_with_the_same_global_batch(runs):
    single, ddp = weights(runs["single"]), weights(runs["ddp"])
    assert any("running_mean" in key for key in single)  # BatchNorm statistics compared too
    assert_same_weights(single, ddp)
    # and the weights moved: the comparison is not of two untrained networks
    initial = _ddp_worker.model().state_dict()
    assert any(not torch.allclose(initial[k].float(), single[k].float()) for k in single)


def test_the_history_is_the_one_process_history(runs):
    single = (runs["single"] / "history.csv").read_text().splitlines()
    ddp = (runs["ddp"] / "history.csv").read_text().splitlines()
    assert len(single) == len(ddp) == 4
    for a, b in zip(single[1:], ddp[1:], strict=True):
        fa, fb = a.split(","), b.split(",")
        assert fa[:2] == fb[:2]  # epoch, lr
        for x, y in zip(fa[2:6], fb[2:6], strict=True):  # losses and accuracies over every sample
            assert float(x) == pytest.approx(float(y), rel=1e-4, abs=1e-4)


def test_a_resumed_distributed_run_ends_as_an_uninterrupted_one_and_rank_0_alone_wrote(runs):
    assert_same_weights(weights(runs["ddp"]), weights(runs["resumed"]), atol=1e-12)
    state = load_checkpoint(runs["resumed"] / "checkpoint.pt")
    assert state["epoch"] == 3 and state["world_size"] == 2 and len(state["rng_per_rank"]) == 2
    assert not any(key.startswith("module.") for key in state["model"])  # saved without DDP's prefix
    assert state["finished"]  # the previous epoch's checkpoint is removed once the run has finished
    assert sorted(p.name for p in runs["resumed"].iterdir()) == ["checkpoint.pt", "history.csv", "model.pt"]


def test_a_checkpoint_moves_between_distributed_and_single_process_training(runs):
    a, b = runs["ddp_then_single"], runs["single_then_ddp"]
    for run in (a, b):
        assert len((run / "history.csv").read_text().splitlines()) == 5  # 3 epochs resumed + 1
    assert_same_weights(weights(a), weights(b))
    assert load_checkpoint(a / "checkpoint.pt")["world_size"] == 1
    assert load_checkpoint(b / "checkpoint.pt")["world_size"] == 2


def test_shard_splits_each_global_batch_evenly():
    order = list(torch.randperm(37, generator=torch.Generator().manual_seed(0)).tolist())
    batch = 8
    shares = [shard(order, World(rank, 4)) for rank in range(4)]
    assert len({len(s) for s in shares}) == 1  # the same steps everywhere
    local = local_batch_size(batch, World(0, 4))
    for k in range(len(shares[0]) // local):
        together = sorted(i for s in shares for i in s[k * local : (k + 1) * local])
        assert together == sorted(order[k * batch : (k + 1) * batch])
    assert sorted(
        i for rank in range(4) for i in shard(order, World(rank, 4), drop_remainder=False)
    ) == sorted(order)
    with pytest.raises(ConfigError, match=r"recipe\.batch_size.*3 processes"):
        local_batch_size(8, World(0, 3))


def test_sync_batchnorm_is_batchnorm_in_one_process_and_keeps_the_state_dict():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Sequential(nn.BatchNorm2d(3)))
    net[1].weight.data.uniform_()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    convert_sync_batchnorm(net)
    assert isinstance(net[1], SyncBatchNorm) and isinstance(net[2][0], SyncBatchNorm)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net[1].weight.dtype == torch.float32
    assert convert_sync_batchnorm(nn.BatchNorm1d(3).double()).running_var.dtype == torch.float64
    x = torch.randn(10, 4)
    reference = nn.BatchNorm1d(6)
    reference.load_state_dict({k[2:]: v for k, v in before.items() if k.startswith("1.")})
    torch.testing.assert_close(net[:2](x), reference(net[0](x)))


def test_world_and_settings_errors(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="RANK 2 / WORLD_SIZE 2"):
        world()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ConfigError, match="expected integers"):
        world()
    with pytest.raises(ConfigError, match="unknown key.*nprocs"):
        DistributedSettings.from_mapping({"nprocs": 2})
    with pytest.raises(ConfigError, match="nproc_per_node.*>= 1"):
        DistributedSettings.from_mapping({"nproc_per_node": 0})
    with pytest.raises(ConfigError, match="rdzv_endpoint"):
        DistributedSettings.from_mapping({"nnodes": 2})
    with pytest.raises(ConfigError, match="backend"):
        DistributedSettings.from_mapping({"backend": "mpi"})


def test_torchrun_command_is_an_argument_list():
    single_node = torchrun_command(DistributedSettings(nproc_per_node=4), "scripts/train.py", ["--seed", "0"])
    assert single_node[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in single_node and single_node[-3:] == ["scripts/train.py", "--seed", "0"]
    nodes = DistributedSettings.from_mapping(
        {"nproc_per_node": 4, "nnodes": 2, "rdzv_endpoint": "node1:29500"}
    )
    command = torchrun_command(nodes, "scripts/train.py", [])
    assert (
        "--nnodes=2" in command and "--rdzv-endpoint=node1:29500" in command and "--standalone" not in command
    )


def _tiny_dvs128_split(path: Path, n: int, seed: int) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    frames = (rng.random((n, 4, 2, 40, 40)) < 0.2).astype(np.int16)
    np.savez(path, frames=frames, labels=rng.integers(0, 11, n).astype(np.int64),
             names=np.array([f"s{k}" for k in range(n)]))  # fmt: skip
    return path


def _train_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script", ROOT / "scripts" / "train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_train_script_launches_torchrun_and_rank_0_writes_the_run(tmp_path):
    """The rule's path: scripts/train.py starts torchrun itself where the config asks for 2 processes."""
    script = _train_script()
    train_file = _tiny_dvs128_split(tmp_path / "train.npz", 8, 0)
    val_file = _tiny_dvs128_split(tmp_path / "test.npz", 6, 1)
    experiment = {
        "dataset": "dvs128_gesture",
        "model": "dvs128_gesture",
        "model_kwargs": {"channels": [4, 8, 8], "hidden": 16, "alpha": 0.8, "norm": "input", "noise": 0.0},
        "recipe": {
            "optimizer": "adam",
            "lr": 1e-2,
            "epochs": 1,
            "batch_size": 8,
            "bn_recalibration_batches": 1,
        },
    }
    values = dict(experiment=experiment, name="tiny", train_file=train_file, val_file=val_file, seed=0,
                  threads=2, device="cpu", loader={}, init_file=None)  # fmt: skip
    script.main(**values, out_dir=tmp_path / "one", backend="auto")
    log = tmp_path / "ddp.log"
    settings = DistributedSettings.from_mapping({"nproc_per_node": 2, "backend": "gloo"})
    script.launch(settings, log, **values, out_dir=tmp_path / "two")
    text = log.read_text()
    assert "process 1 of 2" in text and "process 2 of 2" in text
    state = load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    assert state["world_size"] == 2 and state["epoch"] == 1
    written = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert written == ["checkpoint.pt", "history.csv", "model.pt"]
    # one global batch: its forward pass, and so the epoch's training loss, is the single process's. (The
    # weights are compared in float64 above: a float32 spiking network's gradient can part at a threshold.)
    one = (tmp_path / "one" / "history.csv").read_text().splitlines()[1].split(",")
    two = (tmp_path / "two" / "history.csv").read_text().splitlines()[1].split(",")
    assert float(one[2]) == pytest.approx(float(two[2]), abs=1e-5)


def test_a_failed_torchrun_fails_the_job_naming_the_log(tmp_path):
    script = _train_script()
    missing = tmp_path / "missing.npz"
    experiment = {"dataset": "dvs128_gesture", "model": "dvs128_gesture", "recipe": {}}
    values = dict(experiment=experiment, name="broken", train_file=missing, val_file=missing, seed=0,
                  threads=1, device="cpu", loader={}, init_file=None, out_dir=tmp_path / "out")  # fmt: skip
    log = tmp_path / "broken.log"
    with pytest.raises(SystemExit, match=r"torchrun exited with status .*broken\.log"):
        script.launch(DistributedSettings(nproc_per_node=2, backend="gloo"), log, **values)
    assert "missing.npz" in log.read_text()
    assert not (tmp_path / "out" / "model.pt").exists()


def test_data_parallel_steps_and_each_processs_random_state():
    """In one process the data-parallel steps leave the model as it is; a resumed process takes its own
    random state when the checkpoint was written by as many processes, rank 0's otherwise."""
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    one = DataParallel()
    assert one.wrap(model, torch.device("cpu")) is model and one.sync_batchnorm(model) is model
    assert type(model[1]) is nn.BatchNorm1d
    DataParallel(World(rank=1, size=2)).sync_batchnorm(model)
    assert type(model[1]) is SyncBatchNorm
    with one.main_first():  # no barrier to wait at in one process
        pass
    states = [torch.manual_seed(seed).get_state() for seed in (10, 11)]
    state = {"rng": states[0], "rng_per_rank": states}
    for here, expected, saved in [
        (World(rank=1, size=2), states[1], state),
        (World(rank=1, size=3), states[0], state),  # another world size: rank 0's state
        (World(), states[1], {"rng": states[1]}),  # a checkpoint with only ``rng``
    ]:
        torch.manual_seed(0)
        DataParallel(here).restore_rng(saved)
        assert torch.equal(torch.get_rng_state(), expected), here
    DataParallel(World(rank=1, size=2), seed=5).seed_ranks()
    drawn = torch.get_rng_state()
    assert torch.equal(drawn, torch.manual_seed(6).get_state())
    DataParallel(seed=5).seed_ranks()  # one process: its state stays
    assert torch.equal(torch.get_rng_state(), drawn)
