"""Training augmentation (bidl.data.augment): the authors' transforms, seeded per (seed, epoch, sample),
applied to the training split only, resumable, and configured per dataset."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_training import RECIPE, order_task, tiny_model
from torch.utils.data import DataLoader, Dataset, TensorDataset

from bidl.data.augment import (
    PAD_MODES,
    AugmentedSplit,
    Crop,
    CropPad,
    CutOut,
    parse_augment,
    sample_generator,
)
from bidl.data.catalog import open_split
from bidl.errors import ConfigError
from bidl.pipeline.config import validate_config
from bidl.training import run_epoch, train

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"

JESTER = {  # the authors' Jester pipeline (resnetlif18-itout-b20x4-16-jester.py)
    "croppad": {
        "allowed_ratio": [1.0, 4 / 3],
        "min_pad": 0.1,
        "max_pad": 0.2,
        "modes": [*PAD_MODES, "constant", "constant", "constant", "constant"],
        "source_ratio": 1.76,
    },
    "cutout": {"area": 0.2, "prob": 0.4, "fill": None},
    "resized_crop": {"size": None, "scale": [0.4, 1.0], "ratio": [0.75, 4 / 3], "source_ratio": 1.76},
}
CHAINS = {
    "crop": ({"crop": {"size": 40, "padding": 4}}, (60, 2, 40, 40)),
    "crop+flip": ({"crop": {"size": 32, "padding": 4}, "flip": {"p": 0.5, "dim": "height"}}, (10, 2, 32, 32)),
    "cutout": ({"cutout": {"area": 0.2, "prob": 0.4}}, (16, 3, 32, 32)),
    "resized_crop": ({"resized_crop": {"size": None}}, (16, 3, 32, 32)),
    "jester": (JESTER, (16, 3, 32, 32)),
}


def _frames(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_same_seed_epoch_and_index_give_the_same_sample_another_epoch_another(chain):
    spec, shape = CHAINS[chain]
    augmentation = parse_augment(spec)
    x = _frames(shape)
    first = augmentation(x, seed=3, epoch=7, index=11)
    assert torch.equal(first, augmentation(x.clone(), seed=3, epoch=7, index=11))
    assert first.shape == x.shape  # every chain keeps the sample's shape (the network's input)
    others = [augmentation(x, seed=3, epoch=e, index=11) for e in (8, 9, 10)]
    assert not all(torch.equal(first, o) for o in others)
    assert not torch.equal(first, augmentation(x, seed=3, epoch=7, index=12))
    assert not torch.equal(first, augmentation(x, seed=4, epoch=7, index=11))
    assert torch.equal(x, _frames(shape))  # the input (a cached tensor) is never written to


def test_the_draws_come_from_their_own_generator_not_the_global_rng():
    augmentation = parse_augment(JESTER)
    x = _frames((16, 3, 32, 32))
    torch.manual_seed(0)
    a = augmentation(x, seed=0, epoch=1, index=2)
    torch.manual_seed(12345)
    state = torch.get_rng_state()
    b = augmentation(x, seed=0, epoch=1, index=2)
    assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state())  # the global stream is left as it was
    g1, g2 = sample_generator(0, 1, 2), sample_generator(0, 1, 2)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def test_random_crop_pads_and_crops_the_same_window_of_every_frame():
    base = _frames((1, 2, 40, 40))
    x = base + torch.arange(60.0).view(60, 1, 1, 1)  # frame t = base + t
    crop = Crop(size=40, padding=4)
    offsets = set()
    for index in range(40):
        y = crop(x, sample_generator(0, 0, index), (40, 40))
        assert y.shape == (60, 2, 40, 40)
        padded = torch.nn.functional.pad(x, (4, 4, 4, 4))  # zeros, as the authors' np.pad constant 0
        found = [
            (dy, dx)
            for dy in range(9)
            for dx in range(9)
            if torch.equal(y, padded[..., dy : dy + 40, dx : dx + 40])
        ]
        assert len(found) == 1  # one window, the same for all 60 frames
        offsets.add(found[0])
    assert len(offsets) > 10  # the offset is drawn per sample over the 9 x 9 possible ones


def test_luna_x4_is_four_fixed_copies_the_authors_transforms():
    from scipy.ndimage import rotate

    cubes = torch.rand(3, 8, 1, 32, 32, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1])
    split = AugmentedSplit(TensorDataset(cubes, labels), parse_augment({"luna_x4": True}), seed=0)
    assert len(split) == 12
    for i in range(3):
        cube = cubes[i, :, 0].numpy()  # the authors' [D, H, W] sub_image
        expected = [
            cube,
            rotate(cube, 90, axes=(1, 2), reshape=False),
            rotate(cube, 180, axes=(1, 2), reshape=False),
            np.flip(cube, axis=1),
        ]
        for k, want in enumerate(expected):
            x, label = split[k * 3 + i]
            assert int(label) == int(labels[i])
            assert x.shape == (8, 1, 32, 32)
            np.testing.assert_allclose(x[:, 0].numpy(), want, atol=1e-12)
        # the same in every epoch: a fixed expansion, not a random draw
        split.set_epoch(5)
        assert torch.equal(split[3 + i][0], torch.rot90(cubes[i], 1, dims=(2, 3)))
        split.set_epoch(0)


def test_cutout_fills_one_rectangle_in_the_frames_it_draws():
    x = torch.zeros(40, 3, 32, 32)
    x[0, 0, 0, 0] = 1.0  # the sample's range, from which the fill is drawn
    y = CutOut(area=0.2, prob=0.4)(x, sample_generator(1, 0, 0), (32, 32))
    changed = (y != x).flatten(1).any(1)
    assert 0 < int(changed.sum()) < 40  # about 40 % of the frames
    masks = [(y[t] != x[t]).any(0) for t in range(40) if changed[t]]
    assert all(torch.equal(m, masks[0]) for m in masks)  # the same rectangle in each
    rows, cols = masks[0].nonzero().unbind(1)
    height, width = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    assert int(masks[0].sum()) == height * width  # a rectangle
    assert abs(height * width - 0.2 * 32 * 32) <= 32  # of about 20 % of the frame


def test_croppad_follows_the_authors_ratio_rule():
    pad = CropPad(allowed_ratio=(1.0, 4 / 3), min_pad=0.1, max_pad=0.2)
    assert pad.padding(100, 176) == (0, 16, 0, 16)  # a Jester frame: padded to 4:3 above and below
    assert pad.padding(100, 120) == (10, 10, 10, 10)  # within the ratios: 10 % on every side
    assert pad.padding(100, 60) == (12, 0, 12, 0)  # too narrow: 20 px each side wanted, capped at 12
    # a square cache of 176 x 100 frames: the same rule on the recorded geometry, in the sample's pixels
    assert replace(pad, source_ratio=1.76).padding(32, 32, 1.76) == (0, 5, 0, 5)
    x = _frames((4, 3, 32, 32))
    y = replace(pad, modes=("edge",))(x, sample_generator(0, 0, 0), (32, 32))
    assert y.shape == (4, 3, 38, 38) and torch.equal(y[..., 3:35, 3:35], x)  # round(3.2) = 3 px per side
    assert torch.equal(y[..., 0, 3:35], x[..., 0, :])  # edge mode repeats the border


class _Spy(Dataset):
    """A dataset that records what it hands out."""

    def __init__(self, data):
        self.data, self.seen = data, []

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        x, y = self.data[i]
        self.seen.append((i, x.clone()))
        return x, y


def test_validation_during_training_sees_the_cached_samples(tmp_path):
    data = order_task(n=32)
    val = _Spy(data)
    torch.manual_seed(0)
    model = tiny_model()
    augment = {"crop": {"size": 16, "padding": 3}, "cutout": {"area": 0.2, "prob": 0.5, "fill": 5.0}}
    history = train(model, data, val, replace(RECIPE, epochs=2), tmp_path, seed=0, augment=augment)
    assert len(val.seen) == 2 * len(data)
    assert all(torch.equal(x, data[i][0]) for i, x in val.seen)
    # the history's validation accuracy is that of the final weights on the unaugmented samples
    loader = DataLoader(data, batch_size=16)
    _, top1 = run_epoch(model, loader, device=torch.device("cpu"), criterion=torch.nn.CrossEntropyLoss())
    assert top1 == pytest.approx(history[-1]["val_top1"])
    # while the training items were augmented
    split = parse_augment(augment).wrap(data, seed=0)
    assert not torch.equal(split[0][0], data[0][0])


def test_the_evaluation_path_returns_the_exact_cached_tensors(tmp_path):
    cubes = np.random.default_rng(0).integers(0, 256, (5, 8, 32, 32), dtype=np.uint8)
    path = tmp_path / "test.npz"
    np.savez(path, cubes=cubes, labels=np.array([0, 1, 0, 1, 1]), names=np.array(list("abcde")))
    split = open_split("luna16", path)  # what evaluate, probes, cost and export read
    for i in range(5):
        assert torch.equal(split[i][0], torch.from_numpy(cubes[i]).float().div(255).unsqueeze(1))
    trained = parse_augment({"luna_x4": True}).wrap(split, seed=0)
    assert len(trained) == 20 and len(split) == 5


def test_an_augmented_run_killed_and_resumed_ends_with_the_same_weights(tmp_path, monkeypatch):
    data = order_task(n=32)
    augment = {"crop": {"size": 16, "padding": 2}, "flip": {"p": 0.5, "dim": "height"}}
    recipe = replace(RECIPE, epochs=3)
    torch.manual_seed(0)
    straight = tiny_model()
    train(straight, data, None, recipe, tmp_path / "straight", seed=3, augment=augment)

    import bidl.training

    real, calls = bidl.training.run_epoch, []

    def dying(*args, **kwargs):  # killed during the second epoch
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(bidl.training, "run_epoch", dying)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), data, None, recipe, tmp_path / "resumed", seed=3, augment=augment)
    monkeypatch.setattr(bidl.training, "run_epoch", real)
    torch.manual_seed(99)
    resumed = tiny_model()
    train(resumed, data, None, recipe, tmp_path / "resumed", seed=3, augment=augment)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # and the augmentation mattered: an unaugmented run ends elsewhere
    torch.manual_seed(0)
    plain = tiny_model()
    train(plain, data, None, recipe, tmp_path / "plain", seed=3)
    assert not all(
        torch.equal(a, b) for a, b in zip(plain.state_dict().values(), resumed.state_dict().values())
    )


def test_a_checkpoint_trained_without_the_augmentation_is_not_resumed_with_it(tmp_path, capsys):
    data = order_task(n=32)
    recipe = replace(RECIPE, epochs=2, schedule="none")
    train(tiny_model(), data, None, replace(recipe, epochs=1), tmp_path, seed=0)
    capsys.readouterr()
    train(tiny_model(), data, None, recipe, tmp_path, seed=0, augment={"luna_x4": True})
    out = capsys.readouterr().out
    assert "it differs in augment" in out and "training from epoch 1" in out


def test_non_frame_samples_are_refused_before_training():
    tokens = TensorDataset(torch.randint(0, 100, (4, 50)), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"float frames \[T, C, H, W\]"):
        parse_augment({"crop": {"size": 8}}).wrap(tokens, seed=0)


BAD = [
    ("an unknown transform", {"mixup": {"alpha": 0.2}}, "mixup"),
    ("an unknown parameter", {"crop": {"size": 40, "pad": 4}}, "pad"),
    ("an out-of-range area", {"cutout": {"area": 1.5}}, "area"),
    ("an unreproducible pad mode", {"croppad": {"modes": ["empty"]}}, "empty"),
    ("min above max", {"resized_crop": {"scale": [0.9, 0.4]}}, "scale"),
]


def _with_augment(augment):
    config = copy.deepcopy(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    config["datasets"]["jester"]["augment"] = augment
    return config


@pytest.mark.fault
@pytest.mark.parametrize(("what", "augment", "word"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_augmentation_is_refused_before_any_job_naming_the_key(what, augment, word, fault_log):
    with pytest.raises(ConfigError) as error:  # the pipeline's check of the config, before any job
        validate_config(_with_augment(augment), SCHEMA, source="config/config.yaml")
    assert "datasets.jester.augment" in str(error.value) and word in str(error.value)
    with pytest.raises(ConfigError, match=rf"datasets\.jester\.augment.*{word}"):
        parse_augment(augment, where="datasets.jester.augment")
    fault_log("config", f"datasets.jester.augment with {what}: {augment}", error.value)


@pytest.mark.fault
def test_the_training_script_refuses_an_unknown_augmentation_before_reading_data(tmp_path, fault_log):
    augment = {"mixup": {"alpha": 0.2}}
    config = _with_augment(augment)
    command = [
        sys.executable, str(ROOT / "scripts" / "train.py"),
        "--experiment-json", json.dumps(config["experiments"]["jester_v1"]), "--name", "jester_v1",
        "--train", str(tmp_path / "missing" / "train.npz"), "--val", str(tmp_path / "missing" / "test.npz"),
        "--out-dir", str(tmp_path / "run"), "--augment-json", json.dumps(augment),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    error = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0 and error.startswith("bidl.errors.ConfigError: datasets.jester.augment")
    assert "mixup" in error and not (tmp_path / "run").exists()  # no data read (the files are missing)
    fault_log("training", f"scripts/train.py --augment-json '{json.dumps(augment)}'", error)


def test_the_presets_configure_every_dataset_and_the_paper_preset_the_authors_augmentation():
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for preset in (paper, default):
        validate_config(preset, SCHEMA)
        for name, dataset in preset["datasets"].items():
            assert "augment" in dataset, name
            parse_augment(dataset["augment"], where=f"datasets.{name}.augment")
    augment = {name: d["augment"] for name, d in paper["datasets"].items()}
    assert augment["dvs128_gesture"] == {"crop": {"size": 40, "padding": 4}}
    assert augment["rgb_gesture"] == {"crop": {"size": 40, "padding": 4}}
    assert augment["cifar10_dvs"] == {
        "crop": {"size": 128, "padding": 16},
        "flip": {"p": 0.5, "dim": "height"},
    }
    assert augment["luna16"] == {"luna_x4": True}
    assert augment["imdb"] is None
    jester = augment["jester"]
    assert list(jester) == ["croppad", "cutout", "resized_crop"]  # the authors' order, no flip
    assert jester["cutout"] == {"area": 0.2, "prob": 0.4, "fill": None}
    assert jester["resized_crop"]["scale"] == [0.4, 1.0]
    assert sorted(jester["croppad"]["modes"]).count("constant") == 5  # 1 + the authors' 4 extra
