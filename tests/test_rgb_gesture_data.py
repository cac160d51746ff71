"""RGB-gesture: placed-copy check, JPEG reader, difference frames, the stand-in and the frame cache."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bidl.data.rgb_gesture import (
    STANDIN_CLASSES,
    RGBGestureFrames,
    check_raw,
    class_names,
    difference_frames,
    generate_standin,
    list_clips,
    preprocess,
    read_gray_frame,
    standin_positions,
)
from bidl.errors import DataFormatError, DownloadError

SMALL = {"n_train": 10, "n_val": 10, "seed": 2}


def _save_gray(path: Path, frame: np.ndarray, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(frame.astype(np.uint8), mode="L").save(
        buf, format=fmt, **({"quality": 100} if fmt == "JPEG" else {})
    )
    path.write_bytes(buf.getvalue())


@pytest.fixture(scope="module")
def small_standin(tmp_path_factory) -> Path:
    return generate_standin(tmp_path_factory.mktemp("rgb") / "raw", **SMALL)


def test_one_pixel_brightening_and_one_darkening_give_the_expected_two_channel_frames():
    gray = np.full((3, 40, 40), 100, dtype=np.uint8)
    gray[1, 5, 6] = 180  # frame 0 -> 1: pixel (5, 6) brightens by 80
    gray[2, 5, 6] = 100  # frame 1 -> 2: it darkens back
    gray[2, 30, 31] = 90  # and (30, 31) darkens by 10: below the threshold of 15
    gray[1:, 10, 20] = 160  # (10, 20) brightens by 60 from frame 0 to 1, then stays
    out = difference_frames(gray, threshold=15, size=40, n_frames=4)
    assert out.shape == (4, 2, 40, 40) and out.dtype == np.uint8
    expected = np.zeros((4, 2, 40, 40), dtype=np.uint8)
    expected[0, 1, 5, 6] = expected[0, 1, 10, 20] = 255  # brighter channel of difference 0
    expected[1, 0, 5, 6] = 255  # darker channel of difference 1
    np.testing.assert_array_equal(out, expected)  # differences 2 and 3: padding (3 frames -> 2 differences)


def test_difference_frames_area_average_when_resizing_and_cut_to_t():
    gray = np.zeros((70, 80, 80), dtype=np.uint8)
    gray[1:, 0:2, 0:1] = 200  # 2 of the 4 source pixels of cell (0, 0) brighten at difference 0
    out = difference_frames(gray, threshold=15, size=40, n_frames=60)
    assert out.shape == (60, 2, 40, 40)
    assert out[0, 1, 0, 0] == 128 and out.sum() == 128  # floor(255 * 0.5 + 0.5)
    odd = difference_frames(gray[:, :64, :64], threshold=15, size=40)
    assert odd.shape == (60, 2, 40, 40) and odd[0, 1, 0, 0] > 0  # 64 -> 40: PIL box filter


def test_a_non_jpeg_frame_raises_naming_the_file(tmp_path):
    path = tmp_path / "train" / "a" / "c1" / "00001.jpg"
    _save_gray(path, np.zeros((8, 8)), fmt="PNG")  # a PNG under a .jpg name
    with pytest.raises(DataFormatError, match=r"c1/00001\.jpg: not a JPEG"):
        read_gray_frame(path)
    _save_gray(path, np.full((8, 8), 77), fmt="JPEG")
    assert read_gray_frame(path).shape == (8, 8) and abs(int(read_gray_frame(path)[4, 4]) - 77) <= 2


def test_rgb_frames_are_converted_with_itu_601_luma(tmp_path):
    path = tmp_path / "f.jpg"
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 100, 50)).save(buf, format="JPEG", quality=100)
    path.write_bytes(buf.getvalue())
    assert abs(int(read_gray_frame(path)[8, 8]) - round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)) <= 2


def test_check_raw_says_the_data_is_not_public_and_names_the_layout(tmp_path):
    with pytest.raises(DownloadError) as info:
        check_raw(tmp_path)
    message = str(info.value)
    assert "NOT public" in message and str(tmp_path / "train") in message and "<class>/<clip>" in message


def test_clip_folder_without_frames_and_unknown_class_raise(tmp_path):
    (tmp_path / "train" / "wave" / "c1").mkdir(parents=True)
    with pytest.raises(DataFormatError, match=r"wave/c1: clip folder has no"):
        list_clips(tmp_path, "train", ["wave"])
    with pytest.raises(DataFormatError, match=r"train/wave: class 'wave' is not one of"):
        list_clips(tmp_path, "train", ["clap"])


def test_standin_pair_strokes_change_direction_only_in_their_order():
    """A repetition: a d1 stroke, one jump to a new place, a d2 stroke; never d2 before d1."""
    from bidl.data.standins.rgb_gesture import _DIRECTIONS, _repetition

    for label in range(8):
        first, second = STANDIN_CLASSES[label].split("_then_")
        d1, d2 = np.array(_DIRECTIONS[first]), np.array(_DIRECTIONS[second])
        for k in range(20):
            positions, pause = _repetition(np.random.default_rng([label, k]), label)
            step = np.diff(positions, axis=0)
            speed = np.hypot(*step[0])
            is_d1 = np.isclose(step, speed * d1).all(axis=1)
            is_d2 = np.isclose(step, speed * d2).all(axis=1)
            n1 = int(np.argmin(is_d1))  # steps of the first stroke, then the jump
            assert n1 >= 8 and is_d1[:n1].all() and is_d2[n1 + 1 :].all() and len(step) - n1 - 1 >= 8
            assert 3 <= pause <= 6
    clip = standin_positions(np.random.default_rng(0), 0, 200)
    assert clip.shape == (200, 2) and np.isnan(clip[:, 0]).any() and (clip[~np.isnan(clip)] >= 0).all()


def test_standin_layout_preprocess_and_dataset(tmp_path, small_standin):
    assert (small_standin / "README.txt").read_text().startswith("GENERATED STAND-IN")
    assert class_names(small_standin) == list(STANDIN_CLASSES)
    check_raw(small_standin)
    clips = list_clips(small_standin, "test", STANDIN_CLASSES)
    assert len(clips) == 10 and sorted(label for _, label, _ in clips) == list(range(10))
    assert all(52 <= len(frames) <= 72 for _, _, frames in clips)
    summary = preprocess(small_standin, tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["split.json", "test.npz", "train.npz"]
    assert json.loads((tmp_path / "cache" / "split.json").read_text())["class_names"] == list(STANDIN_CLASSES)
    assert summary["splits"]["train"]["class_counts"] == [1] * 10
    with np.load(tmp_path / "cache" / "train.npz") as npz:
        frames = npz["frames"]
        assert frames.dtype == np.uint8 and frames.shape == (10, 60, 2, 40, 40)
        assert (frames[:, :, 1] > 0).sum() > 1000 and (frames[:, :, 0] > 0).sum() > 1000  # both channels
        assert (frames > 0).mean() < 0.05  # the static background stays below the threshold
    data = RGBGestureFrames(tmp_path / "cache" / "test.npz")
    x, y = data[0]
    assert x.shape == (60, 2, 40, 40) and str(x.dtype) == "torch.float32" and float(x.max()) <= 1.0
    assert 0 <= y < 10 and len(data) == 10


def test_standin_is_deterministic(tmp_path, small_standin):
    again = generate_standin(tmp_path / "again", **SMALL)
    files = sorted(p.relative_to(small_standin) for p in small_standin.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((small_standin / f).read_bytes() == (again / f).read_bytes() for f in files)
