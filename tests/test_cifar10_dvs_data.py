"""CIFAR10-DVS: the AEDAT 2.0 reader/writer, framings, the seeded split, the stand-in and the frame cache."""

from __future__ import annotations

import ast
import json
import struct
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch

from bidl.data.cifar10_dvs import (
    CLASSES,
    STANDIN_PATTERNS,
    STANDIN_SEQUENCES,
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
from bidl.data.formats.aedat import EVENT_DTYPE
from bidl.data.formats.aedat2 import (
    AEDAT2_MAGIC,
    MAX_BACKSTEP_US,
    SPECIAL_ADDRESS,
    encode_aedat2,
    read_aedat2,
    write_aedat2,
)
from bidl.errors import ConfigError, DataFormatError

SMALL = {"per_class": 5, "seed": 3}  # index 4 of each class runs through the clock wrap


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


def test_timestamps_past_2_to_the_31_special_events_and_a_step_back(tmp_path):
    # a jAER int32 clock runs on through 2**31 (read unsigned); words with bit 15 (DVS128 sync) or bit 31
    # (jAER's special-event bit) are not pixels; a small step back is clamped, the file order kept
    pixel = (5 << 8) | (6 << 1) | 1  # x = 122, y = 121, p = 0
    words = [
        pixel, 2**31 - 3,
        SPECIAL_ADDRESS, 2**31 - 1,
        pixel | 0x80000000, 2**31,
        pixel, 2**31 + 40,
        0, 2**31 + 25,  # 15 µs back: clamped to 2**31 + 40
        pixel, 2**31 + 50,
    ]  # fmt: skip
    path = tmp_path / "jaer.aedat"
    path.write_bytes(AEDAT2_MAGIC + struct.pack(f">{len(words)}I", *words))
    ev = read_aedat2(path)
    assert ev["t"].tolist() == [2**31 - 3, 2**31 + 40, 2**31 + 40, 2**31 + 50]
    assert ev[["x", "y", "p"]].tolist() == [(122, 121, 0), (122, 121, 0), (127, 127, 1), (122, 121, 0)]


def test_a_clock_reset_raises_naming_the_file_and_byte_offset(tmp_path):
    header = AEDAT2_MAGIC + b"# one line\r\n"
    back = MAX_BACKSTEP_US + 1
    path = tmp_path / "reset.aedat"
    path.write_bytes(header + struct.pack(">6I", 0, 5_000_000, 0, 5_000_010, 0, 5_000_010 - back))
    with pytest.raises(DataFormatError, match=rf"reset.aedat: event 2 \(byte {len(header) + 16}\).*reset"):
        read_aedat2(path)
    ok = tmp_path / "jitter.aedat"
    ok.write_bytes(header + struct.pack(">6I", 0, 5_000_000, 0, 5_000_010, 0, 5_000_010 - MAX_BACKSTEP_US))
    assert read_aedat2(ok)["t"].tolist() == [5_000_000, 5_000_010, 5_000_010]


def test_writer_wraps_the_clock_and_writes_special_events_the_reader_drops(tmp_path):
    ev = _events([2**32 - 20, 2**32 - 5, 2**32 + 7], [1, 2, 3], [4, 5, 6], [1, 0, 1])
    raw = encode_aedat2(ev, special_times=[2**32 - 5, 2**32 + 100])
    words = np.frombuffer(raw[raw.rindex(b"\r\n") + 2 :], dtype=">u4").reshape(-1, 2)
    assert words[:, 0].tolist()[2] == SPECIAL_ADDRESS and words[:, 0].tolist()[4] == SPECIAL_ADDRESS
    assert words[:, 1].tolist() == [2**32 - 20, 2**32 - 5, 2**32 - 5, 7, 100]
    path = tmp_path / "w.aedat"
    path.write_bytes(raw)
    np.testing.assert_array_equal(read_aedat2(path), ev)
    with pytest.raises(ValueError, match="time order"):
        encode_aedat2(ev[::-1], special_times=[3])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (AEDAT2_MAGIC + struct.pack(">3I", 1, 2, 3), "trunc.aedat: odd number of 32-bit words"),
        (AEDAT2_MAGIC + struct.pack(">2I", 1, 2) + b"\x00\x01", "trunc.aedat: event section of 10 bytes"),
        (b"#!AER-DAT2.0\r\n# cut in the hea", "trunc.aedat: header line .* missing header end"),
        (
            AEDAT2_MAGIC + struct.pack(">2I", 0x10000, 2),
            r"trunc.aedat: event 0 \(byte 14\): address 0x00010000",
        ),
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
    eleven = _events(np.arange(11)[::-1], np.arange(11), np.zeros(11), np.zeros(11))  # file order, as given
    frames = events_to_count_frames(eleven, n_frames=5)
    assert frames.sum(axis=(1, 2, 3)).tolist() == [2, 2, 2, 2, 3] and frames[0, 0, 0, :2].tolist() == [1, 1]
    few = events_to_count_frames(ev[:3], n_frames=5, out_size=(32, 32))
    assert few.sum(axis=(1, 2, 3)).tolist() == [0, 0, 0, 0, 3] and few.shape == (5, 2, 32, 32)


def _remainder_events() -> np.ndarray:
    """23 hand-made events for T = 4: segments of 5, 5, 5 and 5 + 3 (the remainder) events."""
    t = np.arange(23) * 1000
    x = np.array([0, 1, 1, 2, 3] + [10, 10, 10, 11, 12] + [20, 21, 22, 23, 20] + [30] * 5 + [127, 127, 64])
    y = np.array([0] * 5 + [5] * 5 + [9] * 5 + [127] * 5 + [127, 127, 0])
    p = np.array([1, 1, 1, 0, 0] + [0, 0, 1, 1, 1] + [1, 0, 1, 0, 1] + [0] * 5 + [1, 1, 0])
    return _events(t, x, y, p)


def test_count_framing_of_a_whole_recording_gives_the_remainder_to_the_last_frame():
    ev = _remainder_events()
    frames = events_to_count_frames(ev, n_frames=4)
    assert frames.shape == (4, 2, 128, 128) and frames.sum(axis=(1, 2, 3)).tolist() == [5, 5, 5, 8]
    expected = np.zeros((4, 2, 128, 128), dtype=np.int64)
    for k, (x, y, p) in enumerate(zip(ev["x"], ev["y"], ev["p"])):
        expected[min(k // 5, 3), p, y, x] += 1
    np.testing.assert_array_equal(frames, expected)
    assert frames[0, 1, 0, 1] == 2 and frames[1, 0, 5, 10] == 2 and frames[3, 0, 127, 30] == 5
    assert frames[3, 1, 127, 127] == 2 and frames[3, 0, 0, 64] == 1  # the three remainder events
    # pooled to 64 x 64: pixel (y, x) -> cell (y // 2, x // 2)
    pooled = events_to_count_frames(ev, n_frames=4, out_size=(64, 64))
    assert pooled[1, 0, 2, 5] == 2 and pooled[1, 1, 2, 5] == 2 and pooled[1, 1, 2, 6] == 1
    assert pooled[3, 1, 63, 63] == 2 and pooled.sum(axis=(1, 2, 3)).tolist() == [5, 5, 5, 8]


def _spikingjelly_count_framing():
    """spikingjelly's ``integrate_events_by_fixed_frames_number`` (the package as installed). Its module
    imports torchvision, which the bench extra leaves out (``pip install --no-deps spikingjelly``), so
    without torchvision the three functions it needs are taken from the installed source file as they are."""
    spikingjelly = pytest.importorskip("spikingjelly")
    try:
        from spikingjelly.datasets import utils

        return utils.integrate_events_by_fixed_frames_number
    except ImportError:
        source = Path(spikingjelly.__file__).parent / "datasets" / "utils.py"
        tree = ast.parse(source.read_text(encoding="utf-8"))
        wanted = {
            "integrate_events_segment_to_frame",
            "cal_fixed_frames_number_segment_index",
            "integrate_events_by_fixed_frames_number",
        }
        body = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in wanted]
        assert {node.name for node in body} == wanted, source
        namespace = {"np": np, "Optional": Optional}
        exec(compile(ast.Module(body=body, type_ignores=[]), str(source), "exec"), namespace)
        return namespace["integrate_events_by_fixed_frames_number"]


def test_count_framing_equals_spikingjelly_on_the_same_events():
    theirs_of = _spikingjelly_count_framing()
    rng = np.random.default_rng(0)
    cases = [_remainder_events()]
    for n in (9, 1003):
        ev = _events(np.sort(rng.integers(0, 10**6, n)), *rng.integers(0, 128, (2, n)), rng.integers(0, 2, n))
        cases += [ev, ev[rng.permutation(n)]]  # both cut in file order, whatever the timestamps
    for ev in cases:
        for frames_num in (4, 10):
            theirs = theirs_of({k: ev[k].astype(np.int64) for k in "txyp"}, "number", frames_num, 128, 128)
            np.testing.assert_array_equal(events_to_count_frames(ev, n_frames=frames_num), theirs)


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


def test_standin_is_read_by_the_reader_with_the_signal_over_the_whole_recording(small_standin):
    assert (small_standin / "README.txt").read_text().startswith("GENERATED STAND-IN")
    samples = list(iter_recordings(small_standin))
    assert len(samples) == 50 and [label for _, label, _ in samples] == list(np.repeat(np.arange(10), 5))
    for name, label, ev in samples:
        index = int(name.rsplit("_", 1)[1])
        np.testing.assert_array_equal(ev, standin_recording(SMALL["seed"], label, index))
        t = ev["t"] - ev["t"][0]
        assert (np.diff(t) >= 0).all() and len(ev) > 1000 and 1_150_000 < t[-1] <= 1_400_000
        assert (t < 50_000).mean() < 0.15  # the paper's 10 x 5 ms sees a small part of the recording
        per_frame = frames_of_events(ev, framing="count").sum(axis=(1, 2, 3))
        assert per_frame.sum() == len(ev) and (per_frame >= len(ev) // 10).all()
        assert ev["p"].min() == 0 and ev["p"].max() == 1
        assert (ev["t"][-1] >= 2**32) == (index == 4)  # the fifth recording of a class runs through the wrap


def test_standin_files_hold_sync_events_and_a_clock_wrap(small_standin):
    path = small_standin / "cat" / "cifar10_cat_4.aedat"
    raw = path.read_bytes()
    words = np.frombuffer(raw[raw.rindex(b"\r\n") + 2 :], dtype=">u4").reshape(-1, 2)
    special = words[:, 0] == SPECIAL_ADDRESS
    assert 1 <= special.sum() <= 3 and not special[0]
    assert (np.diff(words[~special, 1].astype(np.int64)) < -(2**31)).sum() == 1  # one 32-bit wrap
    assert len(read_aedat2(path)) == (~special).sum()


def test_standin_classes_are_ordered_pairs_of_objects():
    # classes 2k and 2k+1: the same two objects in opposite order; every object opens two classes
    assert len(STANDIN_SEQUENCES) == len(CLASSES)
    for k in range(0, len(CLASSES), 2):
        assert STANDIN_SEQUENCES[k] == STANDIN_SEQUENCES[k + 1][::-1]
    assert len({frozenset(s) for s in STANDIN_SEQUENCES}) == len(CLASSES) // 2
    firsts = np.bincount([a for a, _ in STANDIN_SEQUENCES], minlength=len(STANDIN_PATTERNS))
    assert firsts.tolist() == [2] * len(STANDIN_PATTERNS)
    # the object changes partway: classes 2 (checkerboard -> disc) and 3 (disc -> checkerboard) put their
    # events inside the object (checkerboard) in opposite halves of the recording; a disc fires at its rim
    assert [STANDIN_PATTERNS[k] for k in STANDIN_SEQUENCES[2]] == ["checkerboard", "filled_disc"]
    for index in range(3):
        inner = {}
        for label in (2, 3):
            frames = frames_of_events(standin_recording(0, label, index), framing="count")
            centre = frames[:, :, 56:72, 56:72].sum(axis=(1, 2, 3))  # always inside the object
            inner[label] = (centre[:3].sum() / frames[:3].sum(), centre[7:].sum() / frames[7:].sum())
        assert inner[2][0] > 2 * inner[2][1] and inner[3][1] > 2 * inner[3][0], inner


# ---------------------------------------------------------------------------------------------------------
# Preprocessing and the Dataset
# ---------------------------------------------------------------------------------------------------------
def test_preprocess_writes_sparse_cache_and_dataset_returns_frames(small_standin, tmp_path):
    out = tmp_path / "cache"
    summary = preprocess(small_standin, out, size=32, test_fraction=0.25, seed=1)
    assert sorted(p.name for p in out.iterdir()) == ["split.json", "test.npz", "train.npz"]
    assert json.loads((out / "split.json").read_text()) == summary
    assert summary["splits"]["test"]["class_counts"] == [1] * 10
    assert summary["splits"]["train"]["class_counts"] == [4] * 10
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
    from bidl.data.cifar10_dvs import LAYOUT
    from bidl.data.sources import get_source

    src = get_source("cifar10_dvs", "figshare")
    assert not src.manual and src.layout == LAYOUT
    assert [f.name for f in src.files] == [f"{cls}.zip" for cls in CLASSES]
    assert src.files[0].urls == (
        "https://api.figshare.com/v2/file/download/7712788",
        "https://ndownloader.figshare.com/files/7712788",
    )
    assert src.files[-1].md5 == "89f3922fd147d9aeff89e76a2b0b70a7"
