"""CIFAR10-DVS: the AEDAT 2.0 reader/writer, framings, the seeded split, the stand-in and the frame cache."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bidl.data.aedat import EVENT_DTYPE
from bidl.data.aedat2 import AEDAT2_MAGIC, encode_aedat2, read_aedat2, write_aedat2
from bidl.data.cifar10dvs import (
    CLASSES,
    CIFAR10DVSFrames,
    events_to_count_frames,
    frames_of_events,
    generate_standin,
    index_recordings,
    iter_recordings,
    preprocess,
    split_per_class,
    standin_recording,
)
from bidl.errors import ConfigError, DataFormatError

SMALL = {"per_class": 4, "seed": 3}


def _events(t, x, y, p) -> np.ndarray:
    ev = np.zeros(len(t), dtype=EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = t, x, y, p
    return ev


@pytest.fixture(scope="module")
def small_standin(tmp_path_factory) -> Path:
    return generate_standin(tmp_path_factory.mktemp("c10") / "raw", **SMALL)


# ---------------------------------------------------------------------------------------------------------
# AEDAT 2.0
# ---------------------------------------------------------------------------------------------------------
def test_hand_made_bytes_decode_with_spikingjelly_orientation(tmp_path):
    # address bits: p_raw = bit 0, a = bits 1-7, b = bits 8-14 -> x = 127 - b, y = 127 - a, p = 1 - p_raw
    words = [(10 << 8) | (20 << 1) | 0, 7, (0 << 8) | (127 << 1) | 1, 9, 0x8000 | 5, 11, (127 << 8), 12]
    path = tmp_path / "hand.aedat"
    path.write_bytes(AEDAT2_MAGIC + b"# a comment\r\n" + struct.pack(">8I", *words))
    ev = read_aedat2(path)
    assert ev.dtype == EVENT_DTYPE
    assert ev.tolist() == [(7, 117, 107, 1), (9, 127, 0, 0), (12, 0, 127, 1)]  # bit 15 (special) dropped


def test_write_read_round_trip_and_written_address(tmp_path):
    ev = _events([5, 10, 10, 4_000_000_000], [0, 127, 3, 64], [0, 3, 127, 64], [1, 0, 1, 0])
    path = write_aedat2(tmp_path / "rt.aedat", ev, header_lines=("# made by a test",))
    raw = path.read_bytes()
    assert raw.startswith(AEDAT2_MAGIC) and b"# made by a test\r\n" in raw
    assert struct.unpack(">2I", raw[-32:-24]) == ((127 << 8) | (127 << 1) | 0, 5)  # x = y = 0, ON
    np.testing.assert_array_equal(read_aedat2(path), ev)
    with pytest.raises(ValueError, match="coordinates"):
        encode_aedat2(_events([0], [128], [0], [1]))


def test_timestamp_wrap_is_unwrapped(tmp_path):
    path = tmp_path / "wrap.aedat"
    path.write_bytes(AEDAT2_MAGIC + struct.pack(">4I", 0, 2**32 - 10, 0, 5))
    assert read_aedat2(path)["t"].tolist() == [2**32 - 10, 2**32 + 5]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (AEDAT2_MAGIC + struct.pack(">3I", 1, 2, 3), "trunc.aedat: odd number of 32-bit words"),
        (AEDAT2_MAGIC + struct.pack(">2I", 1, 2) + b"\x00\x01", "trunc.aedat: event section of 10 bytes"),
        (b"#!AER-DAT2.0\r\n# cut in the hea", "trunc.aedat: header line .* missing header end"),
        (AEDAT2_MAGIC + struct.pack(">2I", 0x10000, 2), "trunc.aedat: event 0: address 0x00010000"),
        (b"#!AER-DAT3.1\r\n", "trunc.aedat: AEDAT version"),
    ],
)
def test_malformed_files_raise_naming_them(tmp_path, payload, message):
    path = tmp_path / "trunc.aedat"
    path.write_bytes(payload)
    with pytest.raises(DataFormatError, match=message):
        read_aedat2(path)


# ---------------------------------------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------------------------------------
def test_count_framing_splits_by_event_number_like_spikingjelly():
    ev = _events(np.arange(10) * 1000, np.arange(10), np.zeros(10), np.ones(10))
    frames = events_to_count_frames(ev, n_frames=5)
    assert frames.shape == (5, 2, 128, 128) and frames.sum(axis=(1, 2, 3)).tolist() == [2] * 5
    assert frames[1, 1, 0, 2] == 1 and frames[1, 1, 0, 3] == 1  # events 2 and 3 in bin 1
    eleven = _events(np.arange(11)[::-1], np.zeros(11), np.zeros(11), np.zeros(11))  # sorted by t first
    assert events_to_count_frames(eleven, n_frames=5).sum(axis=(1, 2, 3)).tolist() == [2, 2, 2, 2, 3]
    few = events_to_count_frames(ev[:3], n_frames=5, out_size=(32, 32))
    assert few.sum(axis=(1, 2, 3)).tolist() == [0, 0, 0, 0, 3] and few.shape == (5, 2, 32, 32)


def test_time_framing_uses_ten_5ms_windows_from_the_first_event():
    ev = _events([1000, 5999, 6000, 50_999, 51_000], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0], [1, 1, 0, 1, 1])
    frames = frames_of_events(ev, size=64)
    assert frames.shape == (10, 2, 64, 64) and frames.sum() == 4  # t = 51000 is past the 50 ms
    assert frames[0, 1, 0, 0] == 2 and frames[1, 0, 0, 1] == 1 and frames[9, 1, 0, 1] == 1
    with pytest.raises(ConfigError, match="framing"):
        frames_of_events(ev, framing="space")


# ---------------------------------------------------------------------------------------------------------
# Split
# ---------------------------------------------------------------------------------------------------------
def test_split_is_seeded_and_per_class():
    labels = np.repeat(np.arange(10), 20)
    a = split_per_class(labels, test_fraction=0.1, seed=4)
    assert np.bincount(labels[a], minlength=10).tolist() == [2] * 10
    np.testing.assert_array_equal(a, split_per_class(labels, test_fraction=0.1, seed=4))
    assert (a != split_per_class(labels, test_fraction=0.1, seed=5)).any()
    b = split_per_class(labels, test_fraction=0.25, seed=4)
    assert np.bincount(labels[b], minlength=10).tolist() == [5] * 10
    with pytest.raises(ConfigError, match="test_fraction"):
        split_per_class(labels, test_fraction=1.0, seed=0)


# ---------------------------------------------------------------------------------------------------------
# Raw layout and stand-in
# ---------------------------------------------------------------------------------------------------------
def test_index_orders_numerically_and_rejects_bad_names(tmp_path):
    for cls in CLASSES:
        for i in (10, 2):
            write_aedat2(tmp_path / cls / f"cifar10_{cls}_{i}.aedat", _events([0], [1], [1], [1]))
    index = index_recordings(tmp_path)
    assert [n for n, _, _ in index[:3]] == [
        "airplane/cifar10_airplane_2",
        "airplane/cifar10_airplane_10",
        "automobile/cifar10_automobile_2",
    ]
    assert [label for _, label, _ in index] == [k // 2 for k in range(20)]
    (tmp_path / "cat" / "cifar10_dog_3.aedat").write_bytes(AEDAT2_MAGIC)
    with pytest.raises(DataFormatError, match="cifar10_dog_3.aedat: expected a file named cifar10_cat_"):
        index_recordings(tmp_path)
    (tmp_path / "cat" / "cifar10_dog_3.aedat").unlink()
    for f in (tmp_path / "truck").iterdir():
        f.unlink()
    (tmp_path / "truck").rmdir()
    with pytest.raises(DataFormatError, match="truck: class folder of 'truck' is missing"):
        index_recordings(tmp_path)


def test_standin_is_read_by_the_reader_with_events_in_every_window(small_standin):
    assert (small_standin / "README.txt").read_text().startswith("GENERATED STAND-IN")
    samples = list(iter_recordings(small_standin))
    assert len(samples) == 40 and [label for _, label, _ in samples] == list(np.repeat(np.arange(10), 4))
    for _, _, ev in samples:
        assert (np.diff(ev["t"]) >= 0).all() and len(ev) > 500
        per_window = frames_of_events(ev).sum(axis=(1, 2, 3))
        assert (per_window > 20).all()  # events from t = 0 in each of the ten 5 ms windows
        assert ev["p"].min() == 0 and ev["p"].max() == 1


def test_standin_is_deterministic_and_classes_differ(tmp_path, small_standin):
    again = generate_standin(tmp_path / "again", **SMALL)
    files = sorted(p.relative_to(small_standin) for p in small_standin.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((small_standin / rel).read_bytes() == (again / rel).read_bytes() for rel in files)
    assert not np.array_equal(standin_recording(3, 0, 0), standin_recording(4, 0, 0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]  # no temporary folders left


# ---------------------------------------------------------------------------------------------------------
# Preprocessing and the Dataset
# ---------------------------------------------------------------------------------------------------------
def test_preprocess_writes_sparse_cache_and_dataset_returns_frames(small_standin, tmp_path):
    out = tmp_path / "cache"
    summary = preprocess(small_standin, out, size=32, test_fraction=0.25, seed=1)
    assert sorted(p.name for p in out.iterdir()) == ["split.json", "test.npz", "train.npz"]
    assert json.loads((out / "split.json").read_text()) == summary
    assert summary["splits"]["test"]["class_counts"] == [1] * 10
    assert summary["splits"]["train"]["class_counts"] == [3] * 10
    names = summary["splits"]["train"]["names"] + summary["splits"]["test"]["names"]
    assert sorted(names) == sorted(n for n, _, _ in index_recordings(small_standin))
    again = preprocess(small_standin, tmp_path / "again", size=32, test_fraction=0.25, seed=1)
    assert again["splits"] == summary["splits"]

    test = CIFAR10DVSFrames(out / "test.npz")
    frames, label = test[2]
    assert len(test) == 10 and frames.dtype == torch.float32 and frames.shape == (10, 2, 32, 32)
    assert label == 2 and test.names[2] == summary["splits"]["test"]["names"][2]
    cls, stem = test.names[2].split("/")
    expected = frames_of_events(read_aedat2(small_standin / cls / f"{stem}.aedat"), size=32)
    np.testing.assert_array_equal(frames.numpy(), expected)
    subset = CIFAR10DVSFrames(out / "train.npz", indices=[5, 0], transform=lambda x: x * 2)
    assert subset.labels.tolist() == [1, 0] and subset[1][0].sum() == 2 * subset.dense(1).sum()


def test_preprocess_count_framing_keeps_every_event(small_standin, tmp_path):
    summary = preprocess(small_standin, tmp_path / "cache", framing="count", n_frames=4, size=16)
    assert summary["params"]["framing"] == "count" and summary["params"]["window_us"] is None
    train = CIFAR10DVSFrames(tmp_path / "cache" / "train.npz")
    cls, stem = train.names[0].split("/")
    n_events = len(read_aedat2(small_standin / cls / f"{stem}.aedat"))
    frames = train[0][0]
    assert frames.shape == (4, 2, 16, 16) and frames.sum() == n_events
    per_bin = frames.sum(dim=(1, 2, 3))
    assert (per_bin[:3] == n_events // 4).all()


def test_dataset_missing_or_malformed_cache_raises_naming_it(tmp_path):
    with pytest.raises(DataFormatError, match="absent.npz"):
        CIFAR10DVSFrames(tmp_path / "absent.npz")
    wrong = tmp_path / "wrong.npz"
    np.savez(
        wrong,
        index=np.array([0, 99999], np.int32),
        count=np.array([1, 1], np.int16),
        offsets=np.array([0, 2]),
        frame_shape=np.array([10, 2, 8, 8]),
        labels=np.array([0]),
        names=np.array(["a"]),
    )
    with pytest.raises(DataFormatError, match="wrong.npz: cell index outside"):
        CIFAR10DVSFrames(wrong)


def test_figshare_source_lists_the_ten_class_zips():
    from bidl.data.cifar10dvs import LAYOUT
    from bidl.data.sources import get_source

    src = get_source("cifar10_dvs", "figshare")
    assert not src.manual and src.layout == LAYOUT
    assert [f.name for f in src.files] == [f"{cls}.zip" for cls in CLASSES]
    assert src.files[0].urls == (
        "https://api.figshare.com/v2/file/download/7712788",
        "https://ndownloader.figshare.com/files/7712788",
    )
    assert src.files[-1].md5 == "89f3922fd147d9aeff89e76a2b0b70a7"
