"""Jester: placed-file check, csv and JPEG readers, frame sampling, the stand-in and the clip cache."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bidl.data.jester as jester
from bidl.data.jester import (
    FRAMES_DIR,
    REVERSED_PAIRS,
    STANDIN_CLASSES,
    JesterClips,
    check_raw,
    eval_indices,
    generate_standin,
    preprocess,
    read_clip,
    read_frame,
    read_label_names,
    read_split_csv,
    standin_clip,
    train_indices,
    unpack_qualcomm_parts,
)
from bidl.errors import DataFormatError, DownloadError

SMALL = {"n_train_per_class": 2, "n_val_per_class": 1, "seed": 3}
NAMES = ["Doing other things", "Swiping Left", "Swiping Right"]


def _jpeg(colour: tuple[int, int, int], size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _write_copy(root: Path, clips: dict[str, int], train: str, validation: str) -> None:
    """A tiny raw copy in the 20BN naming: clips {id: number of frames}, csv text given."""
    for video, n in clips.items():
        folder = root / FRAMES_DIR / video
        folder.mkdir(parents=True)
        for k in range(1, n + 1):
            (folder / f"{k:05d}.jpg").write_bytes(_jpeg((10 * k, 100, 200)))
    (root / "jester-v1-labels.csv").write_text("\n".join(NAMES) + "\n")
    (root / "jester-v1-train.csv").write_text(train)
    (root / "jester-v1-validation.csv").write_text(validation)


@pytest.fixture(scope="module")
def small_standin(tmp_path_factory) -> Path:
    return generate_standin(tmp_path_factory.mktemp("jester") / "raw", **SMALL)


# ---------------------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------------------
def test_frames_and_csv_are_read_with_label_ids_from_the_labels_file(tmp_path):
    _write_copy(tmp_path, {"7": 3, "12": 5}, "12;Swiping Right\n7;Doing other things\n", "")
    names = read_label_names(tmp_path / "jester-v1-labels.csv")
    assert names == NAMES
    assert read_split_csv(tmp_path / "jester-v1-train.csv", names) == [("12", 2), ("7", 0)]
    clip = read_clip(tmp_path / FRAMES_DIR / "12", size=16)
    assert clip.shape == (5, 3, 16, 16) and clip.dtype == np.uint8
    np.testing.assert_allclose(
        clip[:, :, 8, 8].astype(float), [[10 * k, 100, 200] for k in range(1, 6)], atol=4
    )
    full = read_frame(tmp_path / FRAMES_DIR / "7" / "00001.jpg")
    assert full.shape == (3, 30, 40)  # [3, H, W] without resizing


def test_a_text_file_named_as_a_frame_raises_naming_it(tmp_path):
    _write_copy(tmp_path, {"1": 2}, "", "")
    bad = tmp_path / FRAMES_DIR / "1" / "00001.jpg"
    bad.write_text("not an image")
    with pytest.raises(DataFormatError, match=r"1/00001\.jpg: not a JPEG"):
        read_clip(tmp_path / FRAMES_DIR / "1", size=8)
    bad.write_bytes(b"\xff\xd8\xff" + b"\0" * 20)  # JPEG signature, broken body
    with pytest.raises(DataFormatError, match=r"1/00001\.jpg: cannot decode JPEG"):
        read_frame(bad)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1;Swiping Left\n2;Swiping Sideways\n", r"line 2: unknown label 'Swiping Sideways'"),
        ("1;Swiping Left\n2 Swiping Left\n", r"line 2: expected '<video id>;<label>'"),
        ("1;Swiping Left\n1;Swiping Right\n", r"line 2: video 1 listed twice"),
        ("../x;Swiping Left\n", r"line 1: bad video id"),
    ],
)
def test_malformed_csv_lines_raise_naming_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "jester-v1-train.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=r"jester-v1-train\.csv: " + message):
        read_split_csv(path, NAMES)


def test_header_line_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("video;label\n\n34870;Swiping Left\n")
    assert read_split_csv(path, NAMES) == [("34870", 1)]


def test_empty_video_folder_raises_naming_it(tmp_path):
    _write_copy(tmp_path, {"5": 0}, "5;Swiping Left\n", "")
    with pytest.raises(DataFormatError, match=r"20bn-jester-v1/5: video folder has no %05d\.jpg frames"):
        read_clip(tmp_path / FRAMES_DIR / "5", size=8)


# ---------------------------------------------------------------------------------------------------------
# Placed-file check, Qualcomm parts
# ---------------------------------------------------------------------------------------------------------
def test_check_raw_names_the_missing_files_and_the_download_page(tmp_path):
    with pytest.raises(DownloadError) as info:
        check_raw(tmp_path)
    message = str(info.value)
    assert f"missing folder {tmp_path / FRAMES_DIR}" in message
    assert (
        str(tmp_path / "jester-v1-train.csv") in message and str(tmp_path / "labels" / "train.csv") in message
    )
    assert "qualcomm.com" in message and "20bn-jester-v1-22.zip" in message


def test_check_raw_accepts_qualcomm_label_names(tmp_path):
    _write_copy(tmp_path, {"1": 1}, "", "")
    (tmp_path / "labels").mkdir()
    for old, new in (("labels", "labels"), ("train", "train"), ("validation", "validation")):
        (tmp_path / f"jester-v1-{old}.csv").rename(tmp_path / "labels" / f"{new}.csv")
    files = check_raw(tmp_path)
    assert files["train"] == tmp_path.absolute() / "labels" / "train.csv"


def test_qualcomm_tar_parts_are_joined_and_extracted(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for k in (1, 2):
            data = _jpeg((50, 60, 70))
            info = tarfile.TarInfo(f"{FRAMES_DIR}/9/{k:05d}.jpg")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    blob = buf.getvalue()
    cut = len(blob) // 3
    for k, part in enumerate((blob[:cut], blob[cut : 2 * cut], blob[2 * cut :])):
        (tmp_path / f"{FRAMES_DIR}-{k:02d}").write_bytes(part)
    assert unpack_qualcomm_parts(tmp_path)
    assert sorted(p.name for p in (tmp_path / FRAMES_DIR / "9").iterdir()) == ["00001.jpg", "00002.jpg"]
    assert not unpack_qualcomm_parts(tmp_path)  # already there
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


# ---------------------------------------------------------------------------------------------------------
# Frame sampling
# ---------------------------------------------------------------------------------------------------------
def test_eval_indices_are_centred_with_stride_1_5():
    # positions 18 + (k - 7.5) * 1.5 = 6.75, 8.25, ..., 29.25, rounded half up
    expected = [7, 8, 10, 11, 13, 14, 16, 17, 19, 20, 22, 23, 25, 26, 28, 29]
    assert eval_indices(37).tolist() == expected
    # 24 frames: 11.5 + (k - 7.5) * 1.5 = 0.25 .. 22.75
    assert eval_indices(24).tolist() == [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23]
    # too short for the span: stride (F - 1) / 15 = 1 covers the whole clip
    assert eval_indices(16).tolist() == list(range(16))
    assert eval_indices(1).tolist() == [0] * 16


def test_train_indices_are_deterministic_per_seed_and_epoch_and_vary_across_epochs(tmp_path, small_standin):
    rng_a, rng_b = np.random.default_rng([0, 1, 5]), np.random.default_rng([0, 1, 5])
    assert train_indices(37, rng_a).tolist() == train_indices(37, rng_b).tolist()
    draws = [train_indices(37, np.random.default_rng([0, e, 5])) for e in range(50)]
    for idx in draws:
        assert len(idx) == 16 and (np.diff(idx) >= 0).all() and idx.min() >= 0 and idx.max() <= 36
        steps = (idx[-1] - idx[0]) / 15
        assert 0.9 <= steps <= 2.1
    assert len({tuple(d) for d in draws}) > 40

    preprocess(small_standin, tmp_path / "cache", size=8)
    data = JesterClips(tmp_path / "cache" / "train.npz", train=True, seed=4)
    data.set_epoch(3)
    first = [data.frame_indices(i).tolist() for i in range(len(data))]
    again = JesterClips(tmp_path / "cache" / "train.npz", train=True, seed=4)
    again.set_epoch(3)
    assert [again.frame_indices(i).tolist() for i in range(len(data))] == first
    torch_x = again[0][0]
    again.set_epoch(4)
    assert [again.frame_indices(i).tolist() for i in range(len(data))] != first
    assert torch_x.shape == (16, 3, 8, 8)


# ---------------------------------------------------------------------------------------------------------
# Stand-in, preprocessing, Dataset
# ---------------------------------------------------------------------------------------------------------
def test_reversed_pair_clips_are_the_base_clips_played_backwards():
    for reverse, forward in REVERSED_PAIRS.items():
        a = standin_clip(0, 11, forward)
        b = standin_clip(0, 11, reverse)
        np.testing.assert_array_equal(a[::-1], b)
        assert a.shape[1] == 100 and 20 <= a.shape[0] <= 37


def test_standin_swipe_right_moves_right():
    clip = standin_clip(1, 4, "Swiping Right").astype(float)
    skin = (clip[..., 0] - clip[..., 2]) > 60  # red - blue: the hand
    xs = [np.nonzero(f)[1].mean() for f in skin]
    assert xs[-1] - xs[0] > 30


def test_standin_layout_and_preprocess_cache(tmp_path, small_standin):
    assert (small_standin / "README.txt").read_text().startswith("GENERATED STAND-IN")
    names = read_label_names(small_standin / "jester-v1-labels.csv")
    assert names == list(STANDIN_CLASSES)
    train = read_split_csv(small_standin / "jester-v1-train.csv", names)
    assert np.bincount([label for _, label in train]).tolist() == [2] * len(STANDIN_CLASSES)
    summary = preprocess(small_standin, tmp_path / "cache", size=12)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["split.json", "test.npz", "train.npz"]
    split = json.loads((tmp_path / "cache" / "split.json").read_text())
    assert split["class_names"] == list(STANDIN_CLASSES) and "on the fly" in split["frames"]["source"]
    assert summary["splits"]["test"]["class_counts"] == [1] * len(STANDIN_CLASSES)
    with np.load(tmp_path / "cache" / "train.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["frame_numbers", "labels", "names", "offsets", "raw_root", "size"]
        numbers, offsets, labels = npz["frame_numbers"], npz["offsets"], npz["labels"]
        assert numbers.dtype == np.int32 and offsets.dtype == np.int64
        assert offsets[0] == 0 and offsets[-1] == len(numbers) and len(offsets) == len(labels) + 1
        # relative to the index's folder, so that the project folder can move as a whole
        assert str(npz["raw_root"]) == os.path.relpath(small_standin, tmp_path / "cache")
        assert npz["size"].dtype == np.int64
        assert int(npz["size"]) == 12
        first = str(npz["names"][0])
    n_first = len(list((small_standin / FRAMES_DIR / first).glob("*.jpg")))
    assert offsets[1] == n_first and numbers[:n_first].tolist() == list(range(1, n_first + 1))
    test = JesterClips(tmp_path / "cache" / "test.npz", train=False)
    x, y = test[0]
    assert x.shape == (16, 3, 12, 12) and str(x.dtype) == "torch.float32" and float(x.min()) >= 0
    assert float(x.max()) <= 1.0 and 0 <= y < len(STANDIN_CLASSES) and len(test) == len(STANDIN_CLASSES)
    expected = np.stack([read_frame(p, 12) for p in test.frame_paths(0)]).astype(np.float32) / 255
    np.testing.assert_array_equal(x.numpy(), expected)


def _colour_copy(root: Path, clips: dict[str, list[int]], train: str, validation: str) -> None:
    """A raw copy whose clip ``id`` holds the frame files ``numbers``, frame k red = 6 k."""
    _write_copy(root, {video: 0 for video in clips}, train, validation)
    for video, numbers in clips.items():
        for k in numbers:
            (root / FRAMES_DIR / video / f"{k:05d}.jpg").write_bytes(_jpeg((6 * k, 100, 200)))


def test_items_decode_the_sampled_jpeg_files_of_the_index(tmp_path, monkeypatch):
    gap = [k for k in range(1, 14) if k != 10]  # no 00010.jpg in the folder: the numbers come from the names
    csv = "3;Swiping Left\n4;Swiping Right\n"
    _colour_copy(tmp_path / "raw", {"3": list(range(1, 38)), "4": gap}, "", csv)
    preprocess(tmp_path / "raw", tmp_path / "cache", size=8, min_frames=1)
    with np.load(tmp_path / "cache" / "test.npz", allow_pickle=False) as npz:
        assert npz["frame_numbers"].tolist() == list(range(1, 38)) + gap
        assert npz["offsets"].tolist() == [0, 37, 49] and npz["names"].tolist() == ["3", "4"]
    data = JesterClips(tmp_path / "cache" / "test.npz", train=False)
    # F = 37: centred indices 7, 8, 10, ... (see test_eval_indices_are_centred_...): files 8, 9, 11, ...
    numbers = [8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24, 26, 27, 29, 30]
    files = [tmp_path / "raw" / FRAMES_DIR / "3" / f"{k:05d}.jpg" for k in numbers]
    assert data.frame_paths(0) == [f.absolute() for f in files]
    x, y = data[0]
    assert y == 1 and x.shape == (16, 3, 8, 8)
    expected = np.stack([read_frame(f, 8) for f in files]).astype(np.float32) / 255
    np.testing.assert_array_equal(x.numpy(), expected)
    np.testing.assert_allclose(x[:, 0, 4, 4].numpy() * 255, [6 * k for k in numbers], atol=4)
    # F = 12 (shorter than 16 frames): indices 0, 1, 1, 2, 3, 4, 4, ..., 10, 10, 11 repeat; the last index
    # (11) is file 00013.jpg, index 9 is 00011.jpg; each distinct frame is decoded once
    indices = data.frame_indices(1).tolist()
    assert indices == [0, 1, 1, 2, 3, 4, 4, 5, 6, 7, 7, 8, 9, 10, 10, 11]
    assert [p.name for p in data.frame_paths(1)] == [f"{gap[k]:05d}.jpg" for k in indices]
    assert data.frame_paths(1)[-1].name == "00013.jpg" and data.frame_paths(1, [9])[0].name == "00011.jpg"
    calls = []
    real = jester.read_frame
    monkeypatch.setattr(jester, "read_frame", lambda p, size=None: calls.append(p) or real(p, size))
    x, _ = data[1]
    assert len(calls) == len(set(calls)) == 12
    assert torch.equal(x[1], x[2]) and torch.equal(x[13], x[14])
    expected = np.stack([read_frame(p, 8) for p in data.frame_paths(1)]).astype(np.float32) / 255
    np.testing.assert_array_equal(x.numpy(), expected)


def test_one_index_serves_another_input_size(tmp_path):
    """Jester v2 reads the v1 index at 224 px: the same frames, decoded at the size asked for."""
    _colour_copy(tmp_path / "raw", {"3": list(range(1, 20))}, "", "3;Swiping Left\n")
    preprocess(tmp_path / "raw", tmp_path / "cache", size=8, min_frames=1)
    small = JesterClips(tmp_path / "cache" / "test.npz", train=False)
    large = JesterClips(tmp_path / "cache" / "test.npz", train=False, size=24)
    assert small[0][0].shape == (16, 3, 8, 8) and large[0][0].shape == (16, 3, 24, 24)
    assert large.frame_paths(0) == small.frame_paths(0)
    expected = np.stack([read_frame(p, 24) for p in large.frame_paths(0)]).astype(np.float32) / 255
    np.testing.assert_array_equal(large[0][0].numpy(), expected)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="size: the frame side must be an integer >= 1"):
            JesterClips(tmp_path / "cache" / "test.npz", train=False, size=bad)


def test_a_text_file_named_as_a_frame_is_refused_at_preprocessing_naming_it(tmp_path):
    _write_copy(tmp_path, {"1": 16, "2": 16}, "1;Swiping Left\n", "2;Swiping Right\n")
    (tmp_path / FRAMES_DIR / "2" / "00007.jpg").write_text("not an image")
    with pytest.raises(DataFormatError, match=r"2/00007\.jpg: not a JPEG"):
        preprocess(tmp_path, tmp_path / "cache", size=8)


def test_a_frame_deleted_after_preprocessing_fails_naming_it_when_read(tmp_path):
    _write_copy(tmp_path / "raw", {"1": 16}, "1;Swiping Left\n", "1;Swiping Left\n")
    preprocess(tmp_path / "raw", tmp_path / "cache", size=8)
    data = JesterClips(tmp_path / "cache" / "test.npz", train=False)
    gone = data.frame_paths(0)[5]
    gone.unlink()
    with pytest.raises(DataFormatError, match=rf"{gone.name}: frame is missing.*raw Jester copy") as info:
        data[0]
    assert info.value.path == gone
    gone.write_text("not an image")
    with pytest.raises(DataFormatError, match=rf"{gone.name}: not a JPEG"):
        data[0]


def test_raw_root_overrides_the_stored_one_for_a_moved_copy(tmp_path):
    _write_copy(tmp_path / "raw", {"1": 18, "2": 20}, "1;Swiping Left\n2;Swiping Right\n", "")
    preprocess(tmp_path / "raw", tmp_path / "cache", size=8)
    before = JesterClips(tmp_path / "cache" / "train.npz", train=True, seed=2)[1][0]
    (tmp_path / "raw").rename(tmp_path / "moved")
    with pytest.raises(DataFormatError, match=rf"raw/{FRAMES_DIR}: folder of the raw Jester copy is missing"):
        JesterClips(tmp_path / "cache" / "train.npz", train=True, seed=2)
    moved = JesterClips(tmp_path / "cache" / "train.npz", train=True, seed=2, raw_root=tmp_path / "moved")
    assert moved.raw_root == (tmp_path / "moved").absolute()
    assert torch.equal(moved[1][0], before)


def test_the_index_follows_its_project_folder_when_both_move(tmp_path):
    project = tmp_path / "project"
    _write_copy(project / "raw", {"1": 18, "2": 20}, "1;Swiping Left\n2;Swiping Right\n", "")
    preprocess(project / "raw", project / "cache", size=8)
    before = JesterClips(project / "cache" / "train.npz", train=False)[0][0]
    project.rename(tmp_path / "elsewhere")
    moved = JesterClips(tmp_path / "elsewhere" / "cache" / "train.npz", train=False)
    assert moved.raw_root == (tmp_path / "elsewhere" / "raw").absolute()
    assert torch.equal(moved[0][0], before)


def test_an_index_with_wrong_keys_or_dtypes_is_refused_naming_it(tmp_path):
    _write_copy(tmp_path / "raw", {"1": 16, "2": 17}, "1;Swiping Left\n2;Swiping Right\n", "")
    preprocess(tmp_path / "raw", tmp_path / "cache", size=8)
    with np.load(tmp_path / "cache" / "train.npz", allow_pickle=False) as npz:
        good = {k: npz[k] for k in npz.files}
    bad = tmp_path / "cache" / "bad.npz"  # next to the good index: raw_root is relative to it
    old_layout = {
        "frames": np.zeros((33, 3, 8, 8), np.uint8),
        **{k: good[k] for k in ("offsets", "labels", "names")},
    }
    cases = [
        (old_layout, r"lacks \['frame_numbers', 'raw_root', 'size'\]"),
        ({**good, "frame_numbers": good["frame_numbers"].astype(np.int64)}, "frame_numbers must be int32"),
        ({**good, "frame_numbers": good["frame_numbers"][:, None]}, "frame_numbers must be int32"),
        ({**good, "raw_root": np.array([str(tmp_path)])}, "raw_root must be a 0-d str"),
        ({**good, "raw_root": np.array(3)}, "raw_root must be a 0-d str"),
        ({**good, "size": np.array(8.0)}, "size must be a 0-d int64"),
        ({**good, "size": np.array(0)}, "size must be a 0-d int64 >= 1"),
        ({**good, "offsets": np.array([0, 16, 32])}, "offsets .* do not cut 33 frame numbers"),
        ({**good, "offsets": np.array([0, 0, 33])}, "into clips of >= 1 frame"),
        ({**good, "offsets": good["offsets"].astype(np.int32)}, "offsets"),
        ({**good, "names": np.array([1, 2])}, "names must be video ids"),
    ]
    for arrays, message in cases:
        np.savez(bad, **arrays)
        with pytest.raises(DataFormatError, match=rf"{bad}: .*{message}"):
            JesterClips(bad, train=False)
    np.savez(bad, **good)
    assert len(JesterClips(bad, train=False)) == 2


def test_short_clips_are_dropped_and_listed(tmp_path):
    _write_copy(tmp_path, {"1": 3, "2": 20}, "1;Swiping Left\n2;Swiping Right\n", "2;Swiping Right\n")
    summary = preprocess(tmp_path, tmp_path / "cache", size=8, min_frames=16)
    assert summary["splits"]["train"]["names"] == ["2"] and summary["splits"]["train"]["dropped_short"] == [
        "1"
    ]


def test_standin_is_deterministic(tmp_path, small_standin):
    again = generate_standin(tmp_path / "again", **SMALL)
    files = sorted(p.relative_to(small_standin) for p in small_standin.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((small_standin / f).read_bytes() == (again / f).read_bytes() for f in files)
