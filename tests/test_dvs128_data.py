"""Event frames, DVS128 Gesture readers, the stand-in generator and the frame cache."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bidl.data.dvs128 import (
    N_CLASSES,
    STANDIN_CLASSES,
    DVS128Frames,
    generate_standin,
    iter_samples,
    preprocess,
    read_labels_csv,
    standin_trial,
)
from bidl.data.formats.aedat import EVENT_DTYPE, write_aedat31
from bidl.data.formats.events import events_to_frames
from bidl.errors import DataFormatError

SMALL = {"n_users": 3, "lightings": ("led", "natural"), "reps_per_class": 1, "seed": 7}


def _events(t, x, y, p) -> np.ndarray:
    ev = np.zeros(len(t), dtype=EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = t, x, y, p
    return ev


@pytest.fixture(scope="module")
def small_standin(tmp_path_factory) -> Path:
    return generate_standin(tmp_path_factory.mktemp("standin") / "raw", **SMALL)


# ---------------------------------------------------------------------------------------------------------
# events_to_frames
# ---------------------------------------------------------------------------------------------------------
def test_frames_count_exactly_without_uint8_wrap_and_drop_late_events():
    n_busy = 300  # > 255: a uint8 frame would wrap to 44
    t = np.concatenate([np.full(n_busy, 1000), [0, 24_999, 25_000, 74_999, 75_000, 1_000_000]])
    x = np.concatenate([np.full(n_busy, 127), [0, 3, 4, 64, 10, 10]])
    y = np.concatenate([np.full(n_busy, 127), [0, 0, 0, 64, 10, 10]])
    p = np.concatenate([np.ones(n_busy), [0, 0, 1, 1, 1, 1]])
    frames = events_to_frames(_events(t, x, y, p), window_us=25_000, n_frames=3)
    assert frames.shape == (3, 2, 40, 40) and frames.dtype == np.int32
    assert frames[0, 1, 39, 39] == n_busy  # 127 * 40 // 128 = 39
    assert frames[0, 0, 0, 0] == 2  # x = 0 and x = 3 both map to cell 0 (3 // 3.2 = 0)
    assert frames[1, 1, 0, 1] == 1  # t = 25000 opens window 1; x = 4 -> cell 1
    assert frames[2, 1, 20, 20] == 1  # t = 74999 is the last µs of window 2
    assert frames.sum() == n_busy + 4  # t = 75000 and t = 1e6 lie beyond the 3 windows


def test_frames_window_start_defaults_to_first_event_and_can_be_set():
    ev = _events([100, 120, 130], [5, 5, 5], [5, 5, 5], [1, 1, 0])
    frames = events_to_frames(ev, window_us=25, n_frames=2, out_size=(128, 128))
    assert frames[0, 1, 5, 5] == 2 and frames[1, 0, 5, 5] == 1
    later = events_to_frames(ev, window_us=25, n_frames=2, out_size=(128, 128), t_start=110)
    assert later.sum() == 2 and later[0, 1, 5, 5] == 1 and later[0, 0, 5, 5] == 1


def test_frames_of_no_events_are_zero():
    frames = events_to_frames(_events([], [], [], []), window_us=10, n_frames=4)
    assert frames.shape == (4, 2, 40, 40) and not frames.any()


# ---------------------------------------------------------------------------------------------------------
# Labels csv
# ---------------------------------------------------------------------------------------------------------
def test_labels_csv_unknown_class_raises_naming_the_csv(tmp_path):
    path = tmp_path / "user05_led_labels.csv"
    path.write_text("class,startTime_usec,endTime_usec\n1,100,200\n12,300,400\n")
    with pytest.raises(DataFormatError, match="user05_led_labels.csv.*unknown class 12"):
        read_labels_csv(path)


def test_labels_csv_end_not_after_start_and_missing_file_raise(tmp_path):
    path = tmp_path / "user06_led_labels.csv"
    path.write_text("class,startTime_usec,endTime_usec\n3,500,500\n")
    with pytest.raises(DataFormatError, match="user06_led_labels.csv"):
        read_labels_csv(path)
    with pytest.raises(DataFormatError, match="user07_led_labels.csv.*missing"):
        read_labels_csv(tmp_path / "user07_led_labels.csv")


def test_iter_samples_cuts_each_labels_row_independently(tmp_path):
    folder = tmp_path / "DvsGesture"
    folder.mkdir()
    t = np.arange(0, 1000, 10)
    write_aedat31(folder / "user24_lab.aedat", _events(t, t % 128, np.zeros_like(t), t % 2))
    # rows overlap on purpose (as in the real user22_led_labels.csv)
    labels = "class,startTime_usec,endTime_usec\r\n11,100,500\r\n2,400,600\r\n"
    (folder / "user24_lab_labels.csv").write_text(labels)
    (folder / "trials_to_train.txt").write_text("")
    (folder / "trials_to_test.txt").write_text("user24_lab.aedat\n\n")
    samples = list(iter_samples(tmp_path, "test", "ibm_aedat31"))
    assert [(name, label) for name, label, _ in samples] == [("user24_lab/00", 10), ("user24_lab/01", 1)]
    assert samples[0][2]["t"].min() == 100 and samples[0][2]["t"].max() == 490
    assert samples[1][2]["t"].min() == 400 and samples[1][2]["t"].max() == 590
    assert list(iter_samples(tmp_path, "train", "ibm_aedat31")) == []


def test_iter_samples_missing_labels_csv_raises_naming_it(tmp_path):
    folder = tmp_path / "DvsGesture"
    folder.mkdir()
    write_aedat31(folder / "user01_led.aedat", _events([1], [1], [1], [1]))
    (folder / "trials_to_train.txt").write_text("user01_led.aedat\n")
    (folder / "trials_to_test.txt").write_text("")
    with pytest.raises(DataFormatError, match="user01_led_labels.csv"):
        list(iter_samples(tmp_path, "train", "ibm_aedat31"))


def test_iter_samples_reads_tonic_layout(tmp_path):
    user = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user02_natural"
    user.mkdir(parents=True)
    np.save(user / "10.npy", np.array([[1, 2, 1, 0.5], [3, 4, 0, 1.0]]))
    np.save(user / "2.npy", np.array([[5, 6, 1, 0.0]]))
    samples = list(iter_samples(tmp_path, "train", "tonic_npy"))
    assert [(name, label) for name, label, _ in samples] == [
        ("user02_natural/2", 2),
        ("user02_natural/10", 10),
    ]
    np.testing.assert_array_equal(samples[1][2]["t"], [500, 1000])


# ---------------------------------------------------------------------------------------------------------
# Stand-in
# ---------------------------------------------------------------------------------------------------------
def test_standin_has_ibm_layout_and_right_label_counts_per_split(small_standin):
    folder = small_standin / "DvsGesture"
    assert (small_standin / "README.txt").read_text().startswith("GENERATED STAND-IN")
    assert (folder / "trials_to_train.txt").read_text().split() == [
        "user01_led.aedat",
        "user01_natural.aedat",
        "user02_led.aedat",
        "user02_natural.aedat",
    ]
    assert (folder / "trials_to_test.txt").read_text().split() == ["user03_led.aedat", "user03_natural.aedat"]
    mapping = (small_standin / "gesture_mapping.csv").read_text().splitlines()
    assert mapping[1] == f"{STANDIN_CLASSES[0]},1" and len(mapping) == 12
    for split, n_trials in (("train", 4), ("test", 2)):
        samples = list(iter_samples(small_standin, split, "ibm_aedat31"))
        counts = np.bincount([label for _, label, _ in samples], minlength=N_CLASSES)
        assert counts.tolist() == [n_trials * SMALL["reps_per_class"]] * N_CLASSES
        assert all(len(ev) > 500 for _, _, ev in samples)


def test_standin_files_carry_real_file_features_and_read_back_exactly(small_standin):
    """User 3's trials run through 2**31 us (labels on that clock); every file holds a special-event packet
    and invalid events; the reader returns exactly the generated events."""
    from bidl.data.formats.aedat import read_aedat31

    folder = small_standin / "DvsGesture"
    for user in (1, 3):
        stem = f"user{user:02d}_led"
        events, rows = standin_trial(SMALL["seed"], user, "led", SMALL["reps_per_class"])
        np.testing.assert_array_equal(read_aedat31(folder / f"{stem}.aedat"), events)
        labels = read_labels_csv(folder / f"{stem}_labels.csv")  # label = csv class - 1
        np.testing.assert_array_equal(labels, rows - np.array([1, 0, 0]))
        assert (events["t"][0] < 2**31 <= events["t"][-1]) == (user == 3)
        raw = (folder / f"{stem}.aedat").read_bytes()
        pos, kinds, invalid, overflows = raw.index(b"#!END-HEADER\r\n") + 14, set(), 0, set()
        while pos < len(raw):
            kind, _, size, _, overflow, capacity, number, valid = struct.unpack_from("<HHIIIIII", raw, pos)
            kinds.add(kind)
            overflows.add(overflow)
            invalid += number - valid
            pos += 28 + capacity * size
        assert kinds == {0, 1} and 3 <= invalid <= 8 and overflows == ({0, 1} if user == 3 else {0})
    test = list(iter_samples(small_standin, "test", "ibm_aedat31"))  # user 3: cut on the 2**31+ clock
    assert len(test) == 2 * N_CLASSES and any(ev["t"][0] >= 2**31 for _, _, ev in test)


def test_standin_gestures_last_long_enough_and_start_with_an_event():
    events, rows = standin_trial(seed=3, user=1, lighting="led", reps_per_class=2)
    assert rows.shape == (22, 3) and sorted(np.bincount(rows[:, 0])[1:]) == [2] * 11
    assert (rows[:, 2] - rows[:, 1] >= 1_500_000).all()
    assert (rows[1:, 1] >= rows[:-1, 2]).all()  # no overlap
    assert np.isin(rows[:, 1], events["t"]).all()  # frames counted from the first event align with the cut
    assert (np.diff(events["t"]) >= 0).all()


def _frame_directions(events: np.ndarray, n_frames: int) -> list[str]:
    """Per 25 ms frame: the direction from the OFF centroid to the ON centroid ('' for a blank frame)."""
    frames = events_to_frames(
        events, window_us=25_000, n_frames=n_frames, out_size=(128, 128), t_start=0
    ).astype(float)
    grid = np.arange(128.0)
    out = []
    for on, off in zip(frames[:, 1], frames[:, 0]):
        if on.sum() < 3 or off.sum() < 3:
            out.append("")
            continue
        dx = (on.sum(0) @ grid) / on.sum() - (off.sum(0) @ grid) / off.sum()
        dy = (on.sum(1) @ grid) / on.sum() - (off.sum(1) @ grid) / off.sum()
        out.append(("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up"))
    return out


@pytest.mark.parametrize("label", range(8))
def test_standin_order_pairs_change_direction_only_in_their_order(label):
    """ON events lead the disc; within a repetition d1 is followed directly by d2, never the reverse."""
    from bidl.data.standins.dvs128_gesture import _PAIR_MOVES, _pair_gesture

    d1, d2 = _PAIR_MOVES[label]
    parts, n_frames = _pair_gesture(np.random.default_rng(label), label, 1.0, t0=0)
    directions = _frame_directions(np.concatenate(parts), n_frames)
    assert set(directions) == {"", d1, d2}
    changes = {(a, b) for a, b in zip(directions, directions[1:]) if a and b and a != b}
    assert changes == {(d1, d2)}
    assert STANDIN_CLASSES[label] == f"{d1}_then_{d2}"


def test_standin_is_deterministic_bytes_for_a_seed(tmp_path, small_standin):
    again = generate_standin(tmp_path / "again", **SMALL)
    files = sorted(p.relative_to(small_standin) for p in small_standin.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (small_standin / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = generate_standin(tmp_path / "other", **{**SMALL, "seed": 8})
    name = Path("DvsGesture/user01_led.aedat")
    assert (other / name).read_bytes() != (small_standin / name).read_bytes()


def test_standin_replaces_an_existing_folder_without_leftovers(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    (root / "stale.txt").write_text("old")
    generate_standin(root, n_users=2, lightings=("led",), reps_per_class=1)
    assert not (root / "stale.txt").exists() and (root / "DvsGesture" / "user02_led.aedat").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no temporary folders left


# ---------------------------------------------------------------------------------------------------------
# Preprocessing and the Dataset
# ---------------------------------------------------------------------------------------------------------
def test_preprocess_writes_cache_and_dataset_returns_float_frames(tmp_path, small_standin):
    out = tmp_path / "cache"
    preprocess(small_standin, out, layout="ibm_aedat31", val_fraction=0.5, seed=1)
    assert sorted(p.name for p in out.iterdir()) == ["split.json", "test.npz", "train.npz"]
    with np.load(out / "train.npz") as npz:
        assert npz["frames"].dtype == np.int16 and npz["frames"].shape == (44, 60, 2, 40, 40)
        assert npz["labels"].dtype == np.int64 and npz["names"].dtype.kind == "U"
        assert npz["frames"].sum() > 44 * 1000
    split = json.loads((out / "split.json").read_text())
    assert split["splits"]["test"]["class_counts"] == [2] * N_CLASSES
    assert split["splits"]["train"]["names"][0] == "user01_led/00"
    assert split["class_names"] == list(STANDIN_CLASSES)
    assert split["params"] == {**split["params"], "window_us": 25000, "n_frames": 60, "size": 40}
    assert len(split["val"]["train_indices"]) == 22  # half of the 4 training samples of each class

    test = DVS128Frames(out / "test.npz")
    frames, label = test[3]
    assert len(test) == 22 and frames.dtype == torch.float32 and frames.shape == (60, 2, 40, 40)
    assert isinstance(label, int) and 0 <= label < N_CLASSES
    val = DVS128Frames(out / "train.npz", indices=split["val"]["train_indices"], transform=lambda x: x * 2)
    assert val.names == split["val"]["names"] and val[0][0].sum() == 2 * val.frames[0].sum()


def test_preprocess_refuses_counts_beyond_int16(tmp_path):
    folder = tmp_path / "DvsGesture"
    folder.mkdir()
    n = 40_000
    same_pixel = _events(np.arange(n) // 4, np.full(n, 7), np.full(n, 7), np.ones(n))
    write_aedat31(folder / "user01_led.aedat", same_pixel)
    (folder / "user01_led_labels.csv").write_text(f"class,startTime_usec,endTime_usec\n1,0,{n}\n")
    (folder / "trials_to_train.txt").write_text("user01_led.aedat\n")
    (folder / "trials_to_test.txt").write_text("")
    with pytest.raises(DataFormatError, match="int16"):
        preprocess(tmp_path, tmp_path / "cache", layout="ibm_aedat31")
    assert not (tmp_path / "cache" / "train.npz").exists()


def test_dataset_missing_or_malformed_cache_raises_naming_it(tmp_path):
    with pytest.raises(DataFormatError, match="absent.npz"):
        DVS128Frames(tmp_path / "absent.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataFormatError, match="garbage.npz"):
        DVS128Frames(garbage)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, frames=np.zeros((2, 60, 2, 40, 40), dtype=np.uint8), labels=np.zeros(2), names=["a", "b"])
    with pytest.raises(DataFormatError, match="wrong.npz.*int16"):
        DVS128Frames(wrong)
