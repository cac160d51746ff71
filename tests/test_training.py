"""Training: seeded, checkpointed every epoch, resumes to the same weights, evaluation in both modes."""

import csv
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from bidl.evaluation import evaluate_model, shuffle_time
from bidl.io import load_checkpoint
from bidl.models import create_model
from bidl.training import Recipe, train


def order_task(n=96, t=8, seed=0):
    """A tiny order task: a blob moves left-to-right (class 0) or right-to-left (class 1)."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.zeros(n, t, 2, 16, 16)
    labels = torch.arange(n) % 2
    for i in range(n):
        row = int(torch.randint(2, 14, (1,), generator=g))
        cols = range(t) if labels[i] == 0 else reversed(range(t))
        for step, col in enumerate(cols):
            frames[i, step, 1, row - 1 : row + 2, 2 * col : 2 * col + 2] = 2.0
    return TensorDataset(frames, labels)


def tiny_model():
    # BatchNorm on the synaptic current: with only 8 strongly non-stationary steps, BatchNorm on the membrane
    # evaluates with running statistics that match no single step (see docs on norm placement)
    return create_model(
        "dvs128_gesture",
        channels=(4, 8, 8),
        hidden=16,
        height=16,
        width=16,
        n_classes=2,
        alpha=0.8,
        noise=0.0,
        norm="input",
    )


RECIPE = Recipe(optimizer="adam", lr=5e-3, epochs=3, batch_size=16, schedule="cosine", fp16=False)


def test_training_writes_checkpoint_history_and_model(tmp_path):
    torch.manual_seed(0)
    data = order_task()
    history = train(tiny_model(), data, data, RECIPE, tmp_path, seed=1)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    with (tmp_path / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 3 and set(state) >= {"model", "optimizer", "scheduler", "rng", "history"}
    assert set(load_checkpoint(tmp_path / "model.pt")) == set(tiny_model().state_dict())


def test_resumed_training_ends_with_the_same_weights(tmp_path, monkeypatch):
    data = order_task()
    torch.manual_seed(0)
    straight = tiny_model()
    train(straight, data, None, RECIPE, tmp_path / "straight", seed=3)

    import bidl.training

    real_run_epoch, calls = bidl.training.run_epoch, []

    def dying_run_epoch(*args, **kwargs):  # the process is killed during the second epoch
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_run_epoch(*args, **kwargs)

    monkeypatch.setattr(bidl.training, "run_epoch", dying_run_epoch)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), data, None, RECIPE, tmp_path / "resumed", seed=3)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["epoch"] == 1
    monkeypatch.setattr(bidl.training, "run_epoch", real_run_epoch)
    torch.manual_seed(123)  # a fresh process with another global seed: resume must restore the RNG itself
    resumed = tiny_model()
    history = train(resumed, data, None, RECIPE, tmp_path / "resumed", seed=3)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path):
    data = order_task(n=32)
    train(tiny_model(), data, None, replace(RECIPE, epochs=1), tmp_path, seed=0)
    before = load_checkpoint(tmp_path / "checkpoint.pt")["epoch"]
    diverged = tiny_model()
    with torch.no_grad():
        diverged.fc2.synapse.bias.fill_(float("inf"))  # BatchNorm turns inf - inf into nan outputs
    diverged.aggregate.register_forward_hook(lambda module, inputs, output: output * float("nan"))
    with pytest.raises(FloatingPointError, match="loss became nan"):
        train(diverged, data, None, replace(RECIPE, epochs=2), tmp_path, seed=0)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == before


def test_a_non_finite_weight_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """The loop checks the weights after every epoch, for BPTT as for local learning: a weight turned NaN
    after epoch 2's steps (with finite losses and no validation set to see it) stops the run, epoch 2
    unsaved and no model.pt written."""
    import bidl.training

    real, calls = bidl.training.recalibrate_batchnorm, []

    def poisoning(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            with torch.no_grad():
                model.fc1.synapse.weight[0, 0] = float("nan")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(bidl.training, "recalibrate_batchnorm", poisoning)
    pattern = r"epoch 2: non-finite values in fc1\.synapse\.weight"
    with pytest.raises(FloatingPointError, match=pattern) as err:
        train(tiny_model(), order_task(n=32), None, replace(RECIPE, epochs=3), tmp_path, seed=0)
    assert "(after epoch 1) is kept" in str(err.value)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1 and not (tmp_path / "model.pt").exists()


def test_evaluation_reports_both_modes_and_the_time_shuffled_control(tmp_path):
    torch.manual_seed(0)
    data = order_task(n=128)
    model = tiny_model()
    train(model, data, None, replace(RECIPE, epochs=6), tmp_path, seed=0)
    metrics = evaluate_model(model, data, batch_size=32, shuffle_seed=0)
    assert metrics["top1_iim"] == metrics["top1_eim"]
    assert metrics["iim_eim_prediction_agreement"] == 100.0
    assert metrics["iim_eim_max_abs_diff"] < 1e-6
    assert metrics["top1_iim"] >= 90.0, metrics
    assert metrics["top1_time_shuffled"] <= metrics["top1_iim"] - 20.0, metrics
    assert sum(map(sum, metrics["confusion"])) == 128


def test_shuffle_time_permutes_each_sample_independently():
    frames = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1)
    shuffled = shuffle_time(frames, torch.Generator().manual_seed(0))
    for i in range(2):
        assert sorted(shuffled[i].flatten().tolist()) == frames[i].flatten().tolist()
    assert not torch.equal(shuffled, frames)


def test_checkpoint_of_another_configuration_is_kept_aside_not_resumed(tmp_path):
    data = order_task(n=32)
    train(tiny_model(), data, None, replace(RECIPE, epochs=1), tmp_path, seed=0, fingerprint={"width": 4})
    history = train(
        tiny_model(), data, None, replace(RECIPE, epochs=1), tmp_path, seed=0, fingerprint={"width": 8}
    )
    assert [row["epoch"] for row in history] == [1]  # trained afresh, not "resumed" as already complete
    assert (tmp_path / "checkpoint.stale-1.pt").exists()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["fingerprint"]["width"] == 8
    # the same configuration once more (a forced rerun of a finished run): trained again from scratch, to
    # the same history; the finished run's checkpoint is kept aside
    again = train(
        tiny_model(), data, None, replace(RECIPE, epochs=1), tmp_path, seed=0, fingerprint={"width": 8}
    )
    assert [(r["epoch"], r["train_loss"]) for r in again] == [(r["epoch"], r["train_loss"]) for r in history]
    assert (tmp_path / "checkpoint.stale-2.pt").exists()


def seeded_model():
    """The tiny model with weights drawn from a fixed seed (as the train script seeds before building)."""
    torch.manual_seed(0)
    return tiny_model()


def _weights(path):
    return load_checkpoint(path / "model.pt")


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _interrupted(tmp_path, monkeypatch, recipe, out, after_epochs, seed=0):
    """Train ``recipe`` into ``out`` and kill it (an exception from inside) after ``after_epochs`` epochs."""
    import bidl.training

    real, calls = bidl.training.run_epoch, []

    def dying(*args, **kwargs):
        if kwargs.get("optimizer") is not None:
            calls.append(1)
            if len(calls) > after_epochs:
                raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(bidl.training, "run_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        train(seeded_model(), order_task(n=32), None, recipe, out, seed=seed)
    monkeypatch.setattr(bidl.training, "run_epoch", real)


def test_a_finished_run_is_never_resumed_past_a_lowered_epoch_count(tmp_path, capsys):
    data = order_task(n=32)
    train(seeded_model(), data, None, replace(RECIPE, epochs=4), tmp_path / "run", seed=0)
    train(seeded_model(), data, None, replace(RECIPE, epochs=2), tmp_path / "run", seed=0)
    assert "holds 4 epochs, past the 2" in capsys.readouterr().out
    train(seeded_model(), data, None, replace(RECIPE, epochs=2), tmp_path / "fresh", seed=0)
    assert _same(_weights(tmp_path / "run"), _weights(tmp_path / "fresh"))
    assert len((tmp_path / "run" / "history.csv").read_text().splitlines()) == 3


def test_raising_epochs_under_a_length_dependent_schedule_starts_over(tmp_path, capsys):
    data = order_task(n=32)
    cosine = replace(RECIPE, schedule="cosine")
    train(seeded_model(), data, None, replace(cosine, epochs=2), tmp_path / "run", seed=0)
    history = train(seeded_model(), data, None, replace(cosine, epochs=4), tmp_path / "run", seed=0)
    assert "another learning-rate schedule" in capsys.readouterr().out
    assert all(row["lr"] > 0 for row in history)  # never an epoch at the old run's final rate of 0
    train(seeded_model(), data, None, replace(cosine, epochs=4), tmp_path / "fresh", seed=0)
    assert _same(_weights(tmp_path / "run"), _weights(tmp_path / "fresh"))


@pytest.mark.parametrize(
    "schedule",
    [dict(schedule="multistep", milestones=(1, 3), gamma=0.5), dict(schedule="cosine", cosine_period=5)],
    ids=["multistep", "cosine-period"],
)
def test_raising_epochs_extends_a_finished_run_to_the_fresh_runs_weights(tmp_path, capsys, schedule):
    data = order_task(n=32)
    recipe = replace(RECIPE, **schedule)
    train(seeded_model(), data, None, replace(recipe, epochs=2), tmp_path / "run", seed=0)
    extended = train(seeded_model(), data, None, replace(recipe, epochs=4), tmp_path / "run", seed=0)
    assert "resuming from" in capsys.readouterr().out
    fresh = train(seeded_model(), data, None, replace(recipe, epochs=4), tmp_path / "fresh", seed=0)
    assert [r["lr"] for r in extended] == [r["lr"] for r in fresh]
    assert _same(_weights(tmp_path / "run"), _weights(tmp_path / "fresh"))


def test_a_run_killed_after_its_last_checkpoint_finishes_without_training(tmp_path, monkeypatch, capsys):
    recipe = replace(RECIPE, epochs=2)
    out = tmp_path / "run"
    import bidl.training

    real_save = bidl.training.atomic_torch_save

    def dying_save(obj, path, **kwargs):  # killed as model.pt is about to be written
        if Path(path).name == "model.pt":
            raise KeyboardInterrupt("killed")
        return real_save(obj, path, **kwargs)

    monkeypatch.setattr(bidl.training, "atomic_torch_save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train(seeded_model(), order_task(n=32), None, recipe, out, seed=0)
    monkeypatch.setattr(bidl.training, "atomic_torch_save", real_save)
    capsys.readouterr()
    history = train(seeded_model(), order_task(n=32), None, recipe, out, seed=0)
    assert "after epoch 2 of 2" in capsys.readouterr().out and len(history) == 2
    train(seeded_model(), order_task(n=32), None, recipe, tmp_path / "fresh", seed=0)
    assert _same(_weights(out), _weights(tmp_path / "fresh"))
    assert load_checkpoint(out / "checkpoint.pt")["finished"]
    assert not (out / "checkpoint.prev.pt").exists()


def test_an_interrupted_run_resumes_only_for_the_same_data(tmp_path, monkeypatch, capsys):
    _interrupted(tmp_path, monkeypatch, replace(RECIPE, epochs=3), tmp_path / "run", after_epochs=1)
    data = order_task(n=32)
    train(
        seeded_model(), data, None, replace(RECIPE, epochs=3), tmp_path / "run", seed=0, fingerprint={"d": 1}
    )
    assert "it differs in d" in capsys.readouterr().out
    assert (tmp_path / "run" / "checkpoint.stale-1.pt").exists()


def test_identical_runs_write_identical_model_files(tmp_path):
    data = order_task(n=32)
    for name in ("a", "b"):
        train(seeded_model(), data, None, replace(RECIPE, epochs=1), tmp_path / name, seed=0)
    # model.pt byte for byte (checkpoint.pt differs: its history holds each epoch's wall time)
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()


def test_schedules_follow_the_authors_recipes():
    from bidl.training import Recipe, make_scheduler

    def factors(**kw):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = make_scheduler(opt, Recipe.from_mapping(kw))
        out = []
        for _ in range(kw["epochs"]):
            out.append(round(opt.param_groups[0]["lr"], 6))
            opt.step()
            sched.step()
        return out

    # mmcv MultiStepLR(milestones=[2, 4]), gamma 0.1
    assert factors(schedule="multistep", milestones=[2, 4], gamma=0.1, epochs=6) == [
        1,
        1,
        0.1,
        0.1,
        0.01,
        0.01,
    ]
    # CosineAnnealingLR(T_max=2): down to 0 at epoch 2 and up again
    assert factors(schedule="cosine", cosine_period=2, epochs=5) == [1.0, 0.5, 0.0, 0.5, 1.0]
    assert factors(schedule="cosine", epochs=3)[0] == 1.0 and factors(schedule="cosine", epochs=3)[2] == 0.25


def test_train_only_fine_tunes_the_named_module_and_freezes_the_rest(tmp_path):
    torch.manual_seed(0)
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = replace(RECIPE, epochs=1, train_only=("fc2",), neuron_lr_scale=1.0)
    train(model, order_task(32), None, recipe, tmp_path, seed=0)
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    # only the head moved: the backbone's weights and its BatchNorm statistics (kept in eval mode) did not
    assert changed == {"fc2"}
    assert all(p.requires_grad == n.startswith("fc2.") for n, p in model.named_parameters())


def test_train_only_names_an_unknown_module():
    from bidl.training import freeze_except

    with pytest.raises(KeyError, match="fc9"):
        freeze_except(tiny_model(), ["fc9"])
    assert Recipe.from_mapping({"train_only": ["fc2"]}).train_only == ("fc2",)


def test_a_last_batch_of_one_sample_does_not_stop_batchnorm_training(tmp_path):
    """33 samples in batches of 4 leave one sample: BatchNorm on an FC membrane has no batch statistics of
    one value per channel, so that sample sits the epoch out (a different one each epoch)."""
    model = create_model(
        "dvs128_gesture", channels=(4, 8, 8), hidden=16, height=16, width=16, n_classes=2, norm="state"
    )
    data = order_task(n=33)
    history = train(model, data, None, replace(RECIPE, epochs=2, batch_size=4), tmp_path, seed=0)
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(h["train_loss"])) for h in history)
