"""Bad raw inputs for every dataset format: each is refused naming the file, or skipped and counted.

Each dataset's small stand-in (in the real raw format) is generated once per module and copied per test; one
sample file of the copy is then damaged: cut short, emptied, replaced by a file of another type, or given
values out of range. Under ``on_bad_sample: error`` preprocessing must raise :class:`DataFormatError` whose
message starts with that file's path and leave nothing in the cache folder; under ``skip`` it must leave the
sample out and report it in split.json and preprocess.json. Files that are not samples (label and annotation
csv files) stay fatal under ``skip``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bidl.data.cifar10_dvs as cifar10_dvs
import bidl.data.dvs128 as dvs128
import bidl.data.formats.jpeg as jpeg
import bidl.data.imdb as imdb
import bidl.data.jester as jester
import bidl.data.luna16 as luna16
import bidl.data.rgb_gesture as rgb_gesture
import bidl.data.staging as staging
from bidl.data.formats.aedat import EVENT_DTYPE, encode_aedat31
from bidl.data.formats.aedat2 import encode_aedat2, split_aedat2_header
from bidl.data.sources.download import extract_archive
from bidl.errors import ConfigError, DataFormatError
from bidl.pipeline.config import load_yaml, validate_config

pytestmark = pytest.mark.fault

REPO = Path(__file__).resolve().parents[1]


# =========================================================================================================
# The formats: a small raw copy of each, the file of a train / test sample, preprocess parameters
# =========================================================================================================
@dataclass(frozen=True)
class Format:
    """One raw format: how to make a small copy and where its samples' files are."""

    area: str  # the fault table's "area" column
    dataset: str  # catalog name (scripts/preprocess.py)
    module: object
    make: Callable[[Path], Path]  # writes a small raw copy under the given folder, returns its root
    sample_file: Callable[[Path, dict, str], Path]  # (raw root, clean summary, split) -> a sample's file
    params: dict = field(default_factory=dict)


def _make_tonic(root: Path) -> Path:
    """tonic's DVSGesture layout: 3 training and 2 test samples of a few events each (t in ms)."""
    rng = np.random.default_rng(0)
    for sub, user, labels in (
        ("ibmGestureTrain", "user01_led", (0, 1, 2)),
        ("ibmGestureTest", "user02_led", (0, 1)),
    ):
        folder = root / sub / user
        folder.mkdir(parents=True)
        for label in labels:
            n = 50
            xy = rng.integers(0, 128, (n, 2))
            events = np.column_stack([xy, rng.integers(0, 2, n), np.sort(rng.uniform(0, 100, n))])
            np.save(folder / f"{label}.npy", events)
    return root


def _first_review(raw: Path, split: str) -> Path:
    return imdb.index_reviews(raw, split)[0][3]


FORMATS: dict[str, Format] = {
    f.area: f
    for f in (
        Format(
            "DVS128 AEDAT 3.1",
            "dvs128_gesture",
            dvs128,
            lambda root: dvs128.generate_standin(
                root, n_users=3, lightings=("led", "natural"), reps_per_class=1
            ),
            lambda raw, s, split: (
                raw / "DvsGesture" / (s["splits"][split]["names"][0].split("/")[0] + ".aedat")
            ),
            {"layout": "ibm_aedat31", "n_frames": 8, "size": 16},
        ),
        Format(
            "DVS128 tonic .npy",
            "dvs128_gesture",
            dvs128,
            _make_tonic,
            lambda raw, s, split: (
                raw
                / ("ibmGestureTrain" if split == "train" else "ibmGestureTest")
                / (s["splits"][split]["names"][0] + ".npy")
            ),
            {"layout": "tonic_npy", "n_frames": 8, "size": 16},
        ),
        Format(
            "CIFAR10-DVS AEDAT 2.0",
            "cifar10_dvs",
            cifar10_dvs,
            lambda root: cifar10_dvs.generate_standin(root, per_class=2),
            lambda raw, s, split: raw / (s["splits"][split]["names"][0] + ".aedat"),
            {"size": 16, "n_frames": 4, "test_fraction": 0.5},
        ),
        Format(
            "Jester JPEG frames",
            "jester",
            jester,
            lambda root: jester.generate_standin(root, n_train_per_class=1, n_val_per_class=1),
            lambda raw, s, split: raw / jester.FRAMES_DIR / s["splits"][split]["names"][0] / "00002.jpg",
            {"size": 8},
        ),
        Format(
            "RGB-gesture JPEG frames",
            "rgb_gesture",
            rgb_gesture,
            lambda root: rgb_gesture.generate_standin(root, n_train=4, n_val=3),
            lambda raw, s, split: (
                raw / rgb_gesture.SPLIT_DIRS[split] / s["splits"][split]["names"][0] / "00002.jpg"
            ),
            {"n_frames": 20, "size": 16},
        ),
        Format(
            "LUNA16 MetaImage",
            "luna16",
            luna16,
            lambda root: luna16.generate_standin(root, n_scans=4, n_nodules=1, n_vessels=1),
            lambda raw, s, split: raw / "subset0" / f"{s['splits'][split]['scans'][0]}.mhd",
            {"max_negatives_per_scan": None, "test_fraction": 0.5},
        ),
        Format(
            "IMDB reviews",
            "imdb",
            imdb,
            lambda root: imdb.generate_standin(root, n_train=8, n_test=4),
            lambda raw, s, split: _first_review(raw, split),
            {"max_len": 50},
        ),
    )
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """``pristine(area) -> (raw root, summary of preprocessing it)``, each made once per module."""
    made: dict[str, tuple[Path, dict]] = {}

    def get(area: str) -> tuple[Path, dict]:
        if area not in made:
            fmt = FORMATS[area]
            base = tmp_path_factory.mktemp(fmt.dataset)
            raw = fmt.make(base / "raw")
            made[area] = raw, fmt.module.preprocess(raw, base / "cache", **fmt.params)
        return made[area]

    return get


def _copy(pristine, area: str, tmp_path: Path) -> tuple[Path, dict]:
    raw, summary = pristine(area)
    return Path(shutil.copytree(raw, tmp_path / "raw")), summary


def _assert_no_cache(tmp_path: Path) -> None:
    """Nothing reached the cache folder, and no temporary folder is left beside it."""
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(cache.iterdir()), sorted(cache.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"] + (["cache"] if cache.exists() else [])


# =========================================================================================================
# Damage: each takes a sample's file and returns the file the error must name
# =========================================================================================================
def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg_bytes(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (120, 60, 30)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _truncate(fraction: float) -> Callable[[Path], Path]:
    def damage(path: Path) -> Path:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
        return path

    return damage


def _write(data: bytes | Callable[[], bytes]) -> Callable[[Path], Path]:
    def damage(path: Path) -> Path:
        path.write_bytes(data() if callable(data) else data)
        return path

    return damage


# AEDAT 3.1: the first packet's header is 28 bytes after "#!END-HEADER\r\n", then (data, ts) uint32 pairs
def _aedat31_events(path: Path) -> tuple[bytearray, int]:
    raw = bytearray(path.read_bytes())
    return raw, raw.index(b"#!END-HEADER\r\n") + 14 + 28


def _aedat31_x_off_sensor(path: Path) -> Path:
    raw, first = _aedat31_events(path)
    (data,) = struct.unpack_from("<I", raw, first)
    struct.pack_into("<I", raw, first, (data & ~(0x1FFF << 17)) | (200 << 17))
    path.write_bytes(bytes(raw))
    return path


def _aedat31_time_back(path: Path) -> Path:
    raw, first = _aedat31_events(path)
    (second_ts,) = struct.unpack_from("<I", raw, first + 12)
    struct.pack_into("<I", raw, first + 4, second_ts + 1000)  # event 0 later than event 1
    path.write_bytes(bytes(raw))
    return path


def _aedat31_ts_bit31(path: Path) -> Path:
    raw, first = _aedat31_events(path)
    (ts,) = struct.unpack_from("<I", raw, first + 4)
    struct.pack_into("<I", raw, first + 4, ts | (1 << 31))
    path.write_bytes(bytes(raw))
    return path


def _aedat31_header_cut(path: Path) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: raw.index(b"#!END-HEADER")])
    return path


def _an_aedat2_recording() -> bytes:
    ev = np.zeros(3, dtype=EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = [0, 10, 20], [1, 2, 3], [4, 5, 6], [1, 0, 1]
    return encode_aedat2(ev)


def _an_aedat31_recording() -> bytes:
    ev = np.zeros(3, dtype=EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = [0, 10, 20], [1, 2, 3], [4, 5, 6], [1, 0, 1]
    return encode_aedat31(ev)


def _aedat2_address_beyond_16_bits(path: Path) -> Path:
    raw = bytearray(path.read_bytes())
    _, offset = split_aedat2_header(path, bytes(raw))
    (address,) = struct.unpack_from(">I", raw, offset)
    struct.pack_into(">I", raw, offset, address | 0x20000)
    path.write_bytes(bytes(raw))
    return path


def _aedat2_cut_bytes(n: int) -> Callable[[Path], Path]:
    def damage(path: Path) -> Path:
        path.write_bytes(path.read_bytes()[:-n])
        return path

    return damage


def _aedat2_header_only(path: Path) -> Path:
    raw = path.read_bytes()
    _, offset = split_aedat2_header(path, raw)
    path.write_bytes(raw[:offset])
    return path


def _aedat2_cut_in_header(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:30])  # inside the second header line, which never ends
    return path


def _npy_edit(column: int, value: float) -> Callable[[Path], Path]:
    def damage(path: Path) -> Path:
        events = np.load(path)
        events[0, column] = value
        np.save(path, events)
        return path

    return damage


def _npy_rename_label(path: Path) -> Path:
    bad = path.with_name("11.npy")
    path.rename(bad)
    return bad


def _other_size_frame(width: int, height: int) -> Callable[[Path], Path]:
    def damage(path: Path) -> Path:
        path.write_bytes(_jpeg_bytes(width, height))
        return path

    return damage


def _jester_narrower_frame(path: Path) -> Path:
    height, width = np.asarray(Image.open(path)).shape[:2]
    return _other_size_frame(width - 10, height)(path)


# LUNA16: the damaged sample is a scan; its CT header is the .mhd, its data the .raw beside it
def _mhd_edit(key: str, value: Callable[[str], str]) -> Callable[[Path], Path]:
    def damage(path: Path) -> Path:
        lines = path.read_text().splitlines()
        path.write_text(
            "\n".join(
                f"{key} = {value(line.split('=', 1)[1].strip())}" if line.startswith(f"{key} =") else line
                for line in lines
            )
            + "\n"
        )
        return path

    return damage


def _raw_of(damage: Callable[[Path], Path]) -> Callable[[Path], Path]:
    """Apply ``damage`` to the scan's .raw file instead of its .mhd."""
    return lambda path: damage(path.with_suffix(".raw"))


def _raw_as_float32(path: Path) -> Path:
    raw = path.with_suffix(".raw")
    raw.write_bytes(np.fromfile(raw, dtype="<i2").astype("<f4").tobytes())
    return raw


def _ct_as_met_float(path: Path) -> Path:
    _raw_as_float32(path)
    return _mhd_edit("ElementType", lambda _: "MET_FLOAT")(path)


def _mask_without_lungs(path: Path) -> Path:
    mask = path.parent.parent / "seg-lungs-LUNA16" / path.name
    data = mask.with_suffix(".zraw")  # the release's masks are compressed MetaImage
    zeros = zlib.compress(bytes(len(zlib.decompress(data.read_bytes()))))
    data.write_bytes(zeros)
    header = re.sub(r"CompressedDataSize = \d+", f"CompressedDataSize = {len(zeros)}", mask.read_text())
    mask.write_text(header)
    return mask


def _one_slice_more(path: Path) -> Path:
    """DimSize one slice more than the .raw holds: the error names the .raw and the header giving DimSize."""
    _mhd_edit("DimSize", lambda v: " ".join([*v.split()[:2], str(int(v.split()[2]) + 1)]))(path)
    return path.with_suffix(".raw")


def _mhd_cut(path: Path) -> Path:
    path.write_text("\n".join(path.read_text().splitlines()[:4]) + "\n")  # before DimSize and ElementType
    return path


# IMDB: the damaged sample is a review file
def _review_rename(rating: int) -> Callable[[Path], Path]:
    def damage(path: Path) -> Path:
        bad = path.with_name(f"{path.stem.split('_')[0]}_{rating}.txt")
        path.rename(bad)
        return bad

    return damage


def _review_cut_in_character(path: Path) -> Path:
    path.write_bytes("Un film très".encode()[:-2])  # "è" is two bytes: the file ends after the first
    return path


# (area, fault, damage, split of the damaged sample)
FAULTS = [
    # DVS128 AEDAT 3.1
    ("DVS128 AEDAT 3.1", "truncated in the middle of an event packet", _truncate(0.5), "test"),
    ("DVS128 AEDAT 3.1", "truncated inside the ASCII header", _aedat31_header_cut, "test"),
    ("DVS128 AEDAT 3.1", "empty file (0 bytes)", _write(b""), "test"),
    ("DVS128 AEDAT 3.1", "wrong type: an AEDAT 2.0 recording", _write(_an_aedat2_recording), "test"),
    ("DVS128 AEDAT 3.1", "wrong type: a PNG image", _write(_png_bytes), "train"),
    ("DVS128 AEDAT 3.1", "out of range: event x = 200 on the 128x128 sensor", _aedat31_x_off_sensor, "test"),
    ("DVS128 AEDAT 3.1", "out of range: timestamps going back within a packet", _aedat31_time_back, "test"),
    ("DVS128 AEDAT 3.1", "out of range: timestamp field with bit 31 set", _aedat31_ts_bit31, "train"),
    # DVS128, tonic's .npy copy
    ("DVS128 tonic .npy", "truncated array data", _truncate(0.8), "test"),
    ("DVS128 tonic .npy", "empty file (0 bytes)", _write(b""), "test"),
    ("DVS128 tonic .npy", "wrong type: a text file", _write(b"x,y,p,t\n1,2,1,0.5\n"), "test"),
    ("DVS128 tonic .npy", "out of range: polarity 2", _npy_edit(2, 2.0), "test"),
    ("DVS128 tonic .npy", "out of range: x = 128", _npy_edit(0, 128.0), "train"),
    (
        "DVS128 tonic .npy",
        "out of range: label 11 in the file name (classes 0..10)",
        _npy_rename_label,
        "test",
    ),
    # CIFAR10-DVS AEDAT 2.0
    ("CIFAR10-DVS AEDAT 2.0", "truncated inside an event word", _aedat2_cut_bytes(3), "test"),
    ("CIFAR10-DVS AEDAT 2.0", "truncated between address and timestamp", _aedat2_cut_bytes(4), "test"),
    ("CIFAR10-DVS AEDAT 2.0", "truncated inside the header", _aedat2_cut_in_header, "test"),
    ("CIFAR10-DVS AEDAT 2.0", "truncated after the header: no events", _aedat2_header_only, "train"),
    ("CIFAR10-DVS AEDAT 2.0", "empty file (0 bytes)", _write(b""), "test"),
    ("CIFAR10-DVS AEDAT 2.0", "wrong type: an AEDAT 3.1 recording", _write(_an_aedat31_recording), "test"),
    (
        "CIFAR10-DVS AEDAT 2.0",
        "out of range: address bit 17 set (beyond the DVS128's 16 bits)",
        _aedat2_address_beyond_16_bits,
        "test",
    ),
    # Jester JPEG frames
    ("Jester JPEG frames", "JPEG truncated in the scan data", _truncate(0.5), "test"),
    ("Jester JPEG frames", "JPEG truncated inside its header", _truncate(0.02), "test"),
    ("Jester JPEG frames", "empty frame file (0 bytes)", _write(b""), "test"),
    ("Jester JPEG frames", "wrong type: a PNG named .jpg", _write(_png_bytes), "train"),
    (
        "Jester JPEG frames",
        "out of range: a frame 10 px narrower than its clip",
        _jester_narrower_frame,
        "test",
    ),
    # RGB-gesture JPEG frames
    ("RGB-gesture JPEG frames", "JPEG truncated in the scan data", _truncate(0.6), "test"),
    ("RGB-gesture JPEG frames", "empty frame file (0 bytes)", _write(b""), "test"),
    ("RGB-gesture JPEG frames", "wrong type: a PNG named .jpg", _write(_png_bytes), "test"),
    (
        "RGB-gesture JPEG frames",
        "out of range: a 48x48 frame in a 64x64 clip",
        _other_size_frame(48, 48),
        "train",
    ),
    # LUNA16 MetaImage
    ("LUNA16 MetaImage", "CT .raw truncated to 40 %", _raw_of(_truncate(0.4)), "test"),
    ("LUNA16 MetaImage", "CT .mhd header cut before DimSize", _mhd_cut, "test"),
    ("LUNA16 MetaImage", "empty CT .raw (0 bytes)", _raw_of(_write(b"")), "test"),
    ("LUNA16 MetaImage", "empty CT .mhd (0 bytes)", _write(b""), "train"),
    ("LUNA16 MetaImage", "wrong type: a PNG as the .mhd header", _write(_png_bytes), "test"),
    ("LUNA16 MetaImage", "wrong type: float32 .raw under a MET_SHORT header", _raw_as_float32, "test"),
    ("LUNA16 MetaImage", "wrong type: CT stored as MET_FLOAT (LUNA16: MET_SHORT)", _ct_as_met_float, "test"),
    (
        "LUNA16 MetaImage",
        "out of range: negative ElementSpacing",
        _mhd_edit("ElementSpacing", lambda v: "-" + v),
        "test",
    ),
    (
        "LUNA16 MetaImage",
        "out of range: .mhd DimSize one slice more than the .raw holds",
        _one_slice_more,
        "test",
    ),
    (
        "LUNA16 MetaImage",
        "out of range: lung mask without the lung values 3 / 4",
        _mask_without_lungs,
        "test",
    ),
    # IMDB reviews
    ("IMDB reviews", "review truncated inside a UTF-8 character", _review_cut_in_character, "test"),
    ("IMDB reviews", "empty review file (0 bytes)", _write(b""), "test"),
    ("IMDB reviews", "wrong type: a PNG image", _write(_png_bytes), "test"),
    ("IMDB reviews", "wrong type: UTF-16 text", _write("A good film.".encode("utf-16")), "train"),
    ("IMDB reviews", "wrong type: binary zeros", _write(bytes(64)), "test"),
    ("IMDB reviews", "out of range: rating 11 in the file name", _review_rename(11), "test"),
    ("IMDB reviews", "out of range: rating 0 in the file name", _review_rename(0), "train"),
]


@pytest.mark.parametrize(
    ("area", "fault", "damage", "split"), FAULTS, ids=[f"{a}: {f}" for a, f, _, _ in FAULTS]
)
def test_a_bad_sample_file_is_refused_naming_it_and_no_cache_is_written(
    pristine, tmp_path, fault_log, area, fault, damage, split
):
    fmt = FORMATS[area]
    raw, summary = _copy(pristine, area, tmp_path)
    bad = damage(fmt.sample_file(raw, summary, split))
    with pytest.raises(DataFormatError) as info:
        fmt.module.preprocess(raw, tmp_path / "cache", **fmt.params)
    fault_log(area, f"{fault} ({split} sample)", info.value)
    assert info.value.path == bad and str(info.value).startswith(f"{bad}: ")
    _assert_no_cache(tmp_path)


def test_the_per_format_catalogue_has_each_kind_of_fault():
    kinds = ("truncated", "empty", "wrong type", "out of range")
    for area in FORMATS:
        faults = [f for a, f, _, _ in FAULTS if a == area]
        assert all(any(kind in f for f in faults) for kind in kinds), (area, faults)
    assert len(FAULTS) >= 24


# =========================================================================================================
# on_bad_sample: skip
# =========================================================================================================
def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _cached_names(cache: Path, split: str) -> list[str]:
    with np.load(cache / f"{split}.npz") as npz:
        return npz["names"].tolist()


# (area, a train-sample damage, its description, a test-sample damage, its description)
SKIPS = [
    (
        "DVS128 AEDAT 3.1",
        _truncate(0.5),
        "truncated recording",
        _aedat31_x_off_sensor,
        "x = 200 off the sensor",
    ),
    ("DVS128 tonic .npy", _write(b""), "empty .npy", _npy_edit(2, 2.0), "polarity 2"),
    (
        "CIFAR10-DVS AEDAT 2.0",
        _aedat2_cut_bytes(3),
        "truncated recording",
        _write(_an_aedat31_recording),
        "an AEDAT 3.1 file",
    ),
    ("Jester JPEG frames", _truncate(0.5), "truncated frame", _jester_narrower_frame, "a narrower frame"),
    ("RGB-gesture JPEG frames", _write(_png_bytes), "a PNG frame", _truncate(0.5), "truncated frame"),
    (
        "LUNA16 MetaImage",
        _raw_of(_truncate(0.4)),
        "truncated CT .raw",
        _mhd_edit("ElementSpacing", lambda v: "0 " + " ".join(v.split()[1:])),
        "ElementSpacing 0",
    ),
    ("IMDB reviews", _write(bytes(8)), "binary review", _review_rename(12), "rating 12"),
]


def _clean_names(clean: dict, split: str) -> list[str]:
    """The sample names of the clean copy's cache (the ``pristine`` fixture's, beside its raw copy)."""
    return _cached_names(Path(clean["raw_root"]).parent / "cache", split)


@pytest.mark.parametrize(
    ("area", "train_damage", "train_fault", "test_damage", "test_fault"), SKIPS, ids=[s[0] for s in SKIPS]
)
def test_skip_leaves_bad_samples_out_and_reports_them(
    pristine, tmp_path, fault_log, area, train_damage, train_fault, test_damage, test_fault
):
    fmt = FORMATS[area]
    raw, clean = _copy(pristine, area, tmp_path)
    clean_names = {split: _clean_names(clean, split) for split in ("train", "test")}
    bad = {
        "train": train_damage(fmt.sample_file(raw, clean, "train")),
        "test": test_damage(fmt.sample_file(raw, clean, "test")),
    }
    script = _load_script("preprocess")
    summary = script.main(fmt.dataset, raw, tmp_path / "cache", **fmt.params, on_bad_sample="skip")

    skipped = summary["skipped"]
    assert skipped["policy"] == "skip" and skipped["n"] == 2
    assert {(e["split"], e["path"]) for e in skipped["samples"]} == {(s, str(p)) for s, p in bad.items()}
    assert json.loads((tmp_path / "cache" / "split.json").read_text())["skipped"] == skipped
    assert json.loads((tmp_path / "cache" / "preprocess.json").read_text())["skipped"] == 2
    total = clean["splits"]["train"]["n"] + clean["splits"]["test"]["n"]
    kept_total = 0
    for split in ("train", "test"):
        entry = next(e for e in skipped["samples"] if e["split"] == split)
        kept = _cached_names(tmp_path / "cache", split)
        kept_total += len(kept)
        assert len(kept) == summary["splits"][split]["n"] == clean["splits"][split]["n"] - entry["lost"] > 0
        assert set(kept) < set(clean_names[split])
        assert len(set(clean_names[split]) - set(kept)) == entry["lost"]
    for split, fault in (("train", train_fault), ("test", test_fault)):
        entry = next(e for e in skipped["samples"] if e["split"] == split)
        fault_log(
            area,
            f"{fault} ({split} sample), on_bad_sample: skip",
            f"skipped ({entry['lost']} sample(s) left out), listed in split.json: {entry['path']}: "
            f"{entry['problem']}; split.json and preprocess.json count {skipped['n']} skipped "
            f"{skipped['unit']}; the cache holds the other {kept_total} of {total} samples",
        )


@pytest.mark.parametrize("area", ["IMDB reviews", "CIFAR10-DVS AEDAT 2.0"])
def test_skip_refuses_a_split_left_without_samples_naming_the_raw_root(pristine, tmp_path, fault_log, area):
    fmt = FORMATS[area]
    raw, clean = _copy(pristine, area, tmp_path)
    if area == "IMDB reviews":
        files = [path for *_, path in imdb.index_reviews(raw, "test")]
    else:
        files = [raw / f"{name}.aedat" for name in clean["splits"]["test"]["names"]]
    for path in files:
        path.write_bytes(b"")
    with pytest.raises(DataFormatError) as info:
        fmt.module.preprocess(raw, tmp_path / "cache", **fmt.params, on_bad_sample="skip")
    fault_log(area, f"every one of the {len(files)} test samples emptied, on_bad_sample: skip", info.value)
    assert info.value.path == raw and "every one of its" in str(info.value)
    _assert_no_cache(tmp_path)


# =========================================================================================================
# Files that are not samples stay fatal under skip
# =========================================================================================================
def _dvs128_labels_class_12(raw: Path, summary: dict) -> Path:
    stem = summary["splits"]["test"]["names"][0].split("/")[0]
    path = raw / "DvsGesture" / f"{stem}_labels.csv"
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    lines[1] = ",".join(["12", *cells[1:]])
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


def _dvs128_trial_list_truncated(raw: Path, summary: dict) -> Path:
    path = raw / "DvsGesture" / "trials_to_test.txt"
    path.write_bytes(path.read_bytes()[:-4])  # "user03_natural.aed": not a .aedat name
    return path


def _jester_csv_unknown_label(raw: Path, summary: dict) -> Path:
    path = raw / "jester-v1-validation.csv"
    path.write_text(path.read_text() + "999999;Juggling\n")
    return path


def _luna16_candidate_class_2(raw: Path, summary: dict) -> Path:
    path = raw / "candidates.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",2"
    path.write_text("\n".join(lines) + "\n")
    return path


def _luna16_candidate_outside(raw: Path, summary: dict) -> Path:
    path = raw / "candidates.csv"
    lines = path.read_text().splitlines()
    uid, x, y, z, cls = lines[1].split(",")
    lines[1] = ",".join([uid, str(float(x) + 500.0), y, z, cls])  # half a metre off the scan
    path.write_text("\n".join(lines) + "\n")
    return path


def _imdb_unknown_label_folder(raw: Path, summary: dict) -> Path:
    folder = raw / "aclImdb" / "test" / "neutral"
    folder.mkdir()
    (folder / "0_5.txt").write_text("So-so.")
    return folder


def _cifar_class_folder_missing(raw: Path, summary: dict) -> Path:
    shutil.rmtree(raw / "truck")
    return raw / "truck"


def _rgb_unknown_class_folder(raw: Path, summary: dict) -> Path:
    folder = raw / "val" / "juggling"
    shutil.copytree(next((raw / "val").iterdir()), folder)
    return folder


NOT_SAMPLES = [
    ("DVS128 AEDAT 3.1", "labels csv: class 12 (classes 1..11)", _dvs128_labels_class_12),
    ("DVS128 AEDAT 3.1", "trial list cut in a file name", _dvs128_trial_list_truncated),
    ("Jester JPEG frames", "validation csv: a label not in the labels file", _jester_csv_unknown_label),
    ("LUNA16 MetaImage", "candidates.csv: class 2", _luna16_candidate_class_2),
    ("LUNA16 MetaImage", "candidates.csv: a point 500 mm outside its scan", _luna16_candidate_outside),
    ("IMDB reviews", "an unknown label folder test/neutral", _imdb_unknown_label_folder),
    ("CIFAR10-DVS AEDAT 2.0", "class folder truck missing", _cifar_class_folder_missing),
    ("RGB-gesture JPEG frames", "a class folder not in classes.txt", _rgb_unknown_class_folder),
]


@pytest.mark.parametrize(
    ("area", "fault", "damage"), NOT_SAMPLES, ids=[f"{a}: {f}" for a, f, _ in NOT_SAMPLES]
)
def test_a_bad_label_or_list_file_stays_fatal_under_skip(pristine, tmp_path, fault_log, area, fault, damage):
    fmt = FORMATS[area]
    raw, summary = _copy(pristine, area, tmp_path)
    bad = damage(raw, summary)
    with pytest.raises(DataFormatError) as info:
        fmt.module.preprocess(raw, tmp_path / "cache", **fmt.params, on_bad_sample="skip")
    fault_log(area, f"{fault}, on_bad_sample: skip", info.value)
    assert info.value.path == bad and str(info.value).startswith(f"{bad}: ")
    _assert_no_cache(tmp_path)


# =========================================================================================================
# An earlier cache survives a failed run; the policy's own value is checked
# =========================================================================================================
def test_a_failed_run_leaves_the_previous_cache_as_it_was(pristine, tmp_path, fault_log):
    area = "DVS128 AEDAT 3.1"
    fmt = FORMATS[area]
    raw, summary = _copy(pristine, area, tmp_path)
    fmt.module.preprocess(raw, tmp_path / "cache", **fmt.params)
    before = {p.name: p.read_bytes() for p in (tmp_path / "cache").iterdir()}
    bad = _truncate(0.5)(fmt.sample_file(raw, summary, "test"))
    with pytest.raises(DataFormatError) as info:
        fmt.module.preprocess(raw, tmp_path / "cache", **fmt.params)
    fault_log(area, "test recording truncated after a complete cache was written", info.value)
    assert info.value.path == bad
    assert {p.name: p.read_bytes() for p in (tmp_path / "cache").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "raw"]


def test_an_unknown_policy_is_refused_by_preprocess_and_by_the_config_schema(tmp_path, fault_log):
    with pytest.raises(ConfigError) as info:
        imdb.preprocess(tmp_path / "raw", tmp_path / "cache", on_bad_sample="ignore")
    fault_log("configuration", "preprocess called with on_bad_sample: ignore", info.value)
    assert "on_bad_sample: 'ignore' is not one of ['error', 'skip']" in str(info.value)
    config = load_yaml(REPO / "config" / "config.yaml")
    assert all(d["preprocess"]["on_bad_sample"] == "error" for d in config["datasets"].values())
    config["datasets"]["luna16"]["preprocess"]["on_bad_sample"] = "skipp"
    with pytest.raises(ConfigError) as info:
        validate_config(config, REPO / "workflow" / "schemas" / "config.schema.yaml")
    fault_log("configuration", "datasets.luna16.preprocess.on_bad_sample mistyped as 'skipp'", info.value)
    assert "datasets.luna16.preprocess.on_bad_sample: 'skipp' is not one of ['error', 'skip']" in str(
        info.value
    )


# =========================================================================================================
# DVS128: trial lists that list a trial twice; gesture windows without events
# =========================================================================================================
def _lists(raw: Path) -> dict[str, Path]:
    return {split: raw / "DvsGesture" / f"trials_to_{split}.txt" for split in ("train", "test")}


def _append_trial(raw: Path, split: str, trial_of: str) -> tuple[Path, str]:
    """Append the first trial of list ``trial_of`` to list ``split``; return that list and the trial."""
    lists = _lists(raw)
    trial = lists[trial_of].read_text().split()[0]
    lists[split].write_text(lists[split].read_text() + f"{trial}\n")
    return lists[split], trial


TRIAL_LISTED_TWICE = [
    ("a training trial also listed in trials_to_test.txt", "test", "train"),
    ("a trial listed twice in trials_to_train.txt", "train", "train"),
    ("a trial listed twice in trials_to_test.txt", "test", "test"),
]


@pytest.mark.parametrize(
    ("fault", "split", "trial_of"), TRIAL_LISTED_TWICE, ids=[f for f, _, _ in TRIAL_LISTED_TWICE]
)
@pytest.mark.parametrize("policy", ["error", "skip"])
def test_a_trial_listed_twice_is_refused_naming_the_lists(
    pristine, tmp_path, fault_log, fault, split, trial_of, policy
):
    area = "DVS128 AEDAT 3.1"
    raw, _ = _copy(pristine, area, tmp_path)
    bad, trial = _append_trial(raw, split, trial_of)
    with pytest.raises(DataFormatError) as info:
        dvs128.preprocess(raw, tmp_path / "cache", **FORMATS[area].params, on_bad_sample=policy)
    fault_log(area, f"{fault}, on_bad_sample: {policy}", info.value)
    message = str(info.value)
    assert info.value.path == bad and message.startswith(f"{bad}: ") and trial in message
    assert all(str(path) in message or path.name in message for path in _lists(raw).values())
    if split != trial_of:
        assert str(_lists(raw)[trial_of]) in message  # the other list, with its path
    _assert_no_cache(tmp_path)


def test_a_trial_in_both_lists_stops_the_preprocess_script_with_a_nonzero_exit(pristine, tmp_path, fault_log):
    area = "DVS128 AEDAT 3.1"
    raw, _ = _copy(pristine, area, tmp_path)
    bad, trial = _append_trial(raw, "test", "train")
    params = [f"--param={key}={value}" for key, value in FORMATS[area].params.items()]
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "preprocess.py"),
            "dvs128_gesture",
            str(raw),
            str(tmp_path / "cache"),
        ]
        + params,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    last = run.stderr.strip().splitlines()[-1]
    fault_log(area, "a trial in both lists, scripts/preprocess.py run", f"exit {run.returncode}: {last}")
    assert run.returncode != 0
    assert f"{bad}: line" in last and trial in last and str(_lists(raw)["train"]) in last
    _assert_no_cache(tmp_path)


def _window_outside_recording(raw: Path, summary: dict) -> Path:
    """Move the first gesture window of the first test trial 1000 s past the end of its recording."""
    stem = summary["splits"]["test"]["names"][0].split("/")[0]
    path = raw / "DvsGesture" / f"{stem}_labels.csv"
    lines = path.read_text().splitlines()
    cls, start, end = lines[1].split(",")
    lines[1] = f"{cls},{int(start) + 10**9},{int(end) + 10**9}"
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


def test_a_gesture_window_outside_its_recording_is_refused_naming_the_labels_file(
    pristine, tmp_path, fault_log
):
    area = "DVS128 AEDAT 3.1"
    raw, summary = _copy(pristine, area, tmp_path)
    bad = _window_outside_recording(raw, summary)
    with pytest.raises(DataFormatError) as info:
        dvs128.preprocess(raw, tmp_path / "cache", **FORMATS[area].params)
    fault_log(area, "labels csv: a gesture window 1000 s after its recording ends (test sample)", info.value)
    assert info.value.path == bad and str(info.value).startswith(f"{bad}: line 2: ")
    assert "holds no event" in str(info.value) and "outside" in str(info.value)
    _assert_no_cache(tmp_path)


def test_skip_leaves_a_gesture_window_without_events_out_and_counts_it(pristine, tmp_path, fault_log):
    area = "DVS128 AEDAT 3.1"
    raw, clean = _copy(pristine, area, tmp_path)
    bad = _window_outside_recording(raw, clean)
    script = _load_script("preprocess")
    summary = script.main(
        "dvs128_gesture", raw, tmp_path / "cache", **FORMATS[area].params, on_bad_sample="skip"
    )
    skipped = summary["skipped"]
    assert skipped["n"] == 1 and skipped["lost"] == 1
    (entry,) = skipped["samples"]
    assert (entry["split"], entry["path"]) == ("test", str(bad)) and entry["problem"].startswith("line 2: ")
    assert json.loads((tmp_path / "cache" / "preprocess.json").read_text())["skipped"] == 1
    kept = _cached_names(tmp_path / "cache", "test")
    assert set(_clean_names(clean, "test")) - set(kept) == {clean["splits"]["test"]["names"][0]}
    assert _cached_names(tmp_path / "cache", "train") == _clean_names(clean, "train")
    fault_log(
        area,
        "labels csv: a gesture window 1000 s after its recording ends (test sample), on_bad_sample: skip",
        f"skipped, listed in split.json: {entry['path']}: {entry['problem']}; preprocess.json counts "
        f"{skipped['n']} skipped; the test cache holds the other {len(kept)} gestures",
    )


# =========================================================================================================
# JPEG frames damaged in the middle of their scan data: found at preprocessing, not in a training epoch
# =========================================================================================================
def _scan_data(data: bytes) -> int:
    """Where the entropy-coded data of the first scan starts."""
    sos = data.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")


def _overwrite_mid_scan(patch: bytes) -> Callable[[Path], Path]:
    def damage(path: Path) -> Path:
        data = path.read_bytes()
        middle = (_scan_data(data) + len(data)) // 2
        path.write_bytes(data[:middle] + patch + data[middle + len(patch) :])
        return path

    return damage


# a scan header (SOS, one component) where the scan's data should go on: the decoder refuses the file, the
# marker structure stays valid; and an end-of-image marker there: PIL decodes the file (grey after it), the
# structure check refuses it
MID_SCAN = [
    ("a scan header written over the middle of the scan data", b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"),
    ("an end-of-image marker written over the middle of the scan data", b"\xff\xd9"),
]
JPEG_AREAS = {
    "Jester JPEG frames": "00010.jpg",
    "RGB-gesture JPEG frames": "00030.jpg",
}  # RGB: not a used frame


def _mid_scan_frame(raw: Path, summary: dict, area: str, split: str) -> Path:
    return FORMATS[area].sample_file(raw, summary, split).with_name(JPEG_AREAS[area])


@pytest.mark.parametrize(("fault", "patch"), MID_SCAN, ids=["scan header", "end-of-image marker"])
@pytest.mark.parametrize("area", list(JPEG_AREAS))
def test_a_jpeg_damaged_in_its_scan_data_is_refused_at_preprocessing(
    pristine, tmp_path, fault_log, area, fault, patch
):
    fmt = FORMATS[area]
    raw, summary = _copy(pristine, area, tmp_path)
    bad = _overwrite_mid_scan(patch)(_mid_scan_frame(raw, summary, area, "test"))
    jpeg.jpeg_size(bad)  # the header-and-tail check alone lets it through
    if patch.startswith(b"\xff\xda"):  # training's decoder (PIL, reduced size with draft()) refuses it
        with pytest.raises(DataFormatError, match="cannot decode JPEG"):
            jester.read_frame(bad, 8)
    with pytest.raises(DataFormatError) as info:
        fmt.module.preprocess(raw, tmp_path / "cache", **fmt.params)
    fault_log(area, f"{fault} ({bad.name}, test sample)", info.value)
    assert info.value.path == bad and str(info.value).startswith(f"{bad}: ")
    _assert_no_cache(tmp_path)


@pytest.mark.parametrize("area", list(JPEG_AREAS))
def test_skip_leaves_a_clip_with_a_frame_damaged_in_its_scan_data_out(pristine, tmp_path, fault_log, area):
    fmt = FORMATS[area]
    raw, clean = _copy(pristine, area, tmp_path)
    fault, patch = MID_SCAN[0]
    bad = _overwrite_mid_scan(patch)(_mid_scan_frame(raw, clean, area, "train"))
    summary = fmt.module.preprocess(raw, tmp_path / "cache", **fmt.params, on_bad_sample="skip")
    (entry,) = summary["skipped"]["samples"]
    assert (entry["split"], entry["path"]) == ("train", str(bad)) and "cannot decode JPEG" in entry["problem"]
    kept = _cached_names(tmp_path / "cache", "train")
    assert len(kept) == clean["splits"]["train"]["n"] - 1
    fault_log(
        area,
        f"{fault} ({bad.name}, train sample), on_bad_sample: skip",
        f"skipped, listed in split.json: {entry['path']}: {entry['problem']}; the cache holds the other "
        f"{len(kept)} training clips",
    )


# =========================================================================================================
# Leftovers of killed runs: removed by the next run of the same step, unless their process still runs
# =========================================================================================================
_HANG = """
import importlib.util, sys, time

def hang(*args, **kwargs):  # the step has written its staging folder: wait here to be killed
    print("staged", flush=True)
    time.sleep(600)

def script(name):
    spec = importlib.util.spec_from_file_location(name, {repo!r} + f"/scripts/{{name}}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
"""


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@dataclass
class Step:
    """A data step, how a process running it is stopped once its staging folder is written, and its rerun."""

    area: str
    prefix: str  # the staging folder's name starts with it, in the folder ``where(tmp_path)``
    where: Callable[[Path], Path]
    prepare: Callable[[Path], None]
    child: Callable[[Path], str]  # python code run in the killed process (after _HANG)
    rerun: Callable[[Path], None]
    done: Callable[[Path], bool]


def _imdb_raw(tmp: Path) -> None:
    imdb.generate_standin(tmp / "raw", n_train=8, n_test=4)


STEPS = [
    Step(
        "stand-in generation",
        ".standin.tmp-",
        lambda tmp: tmp,
        lambda tmp: None,
        lambda tmp: (
            # _standin_readme: the last file the generator writes
            "import bidl.data.standins.imdb\nbidl.data.standins.imdb._standin_readme = hang\n"
            f"script('make_standin').main('imdb', {str(tmp / 'standin')!r}, n_train=8, n_test=4)"
        ),
        lambda tmp: _load_script("make_standin").main("imdb", tmp / "standin", n_train=8, n_test=4),
        lambda tmp: (tmp / "standin" / ".complete").is_file(),
    ),
    Step(
        "archive extraction",
        ".real.extract-",
        lambda tmp: tmp,
        lambda tmp: _tar_gz(tmp / "a.tar.gz", {"data/x.txt": b"x" * 1000, "data/y.txt": b"y"}) and None,
        lambda tmp: (
            "import bidl.data.sources.download as dl\nextract = dl._extract_tar\n"
            "dl._extract_tar = lambda archive, into: (extract(archive, into), hang())\n"
            f"dl.extract_archive({str(tmp / 'a.tar.gz')!r}, {str(tmp / 'real')!r})"
        ),
        lambda tmp: extract_archive(tmp / "a.tar.gz", tmp / "real") and None,
        lambda tmp: (tmp / "real" / "data" / "x.txt").read_bytes() == b"x" * 1000,
    ),
    Step(
        "preprocessing",
        ".cache.staging-",
        lambda tmp: tmp,
        _imdb_raw,
        lambda tmp: (
            # into the staging folder
            "import bidl.data.preprocessing\nbidl.data.preprocessing.atomic_savez = hang\n"
            f"script('preprocess').main('imdb', {str(tmp / 'raw')!r}, {str(tmp / 'cache')!r}, max_len=50)"
        ),
        lambda tmp: _load_script("preprocess").main("imdb", tmp / "raw", tmp / "cache", max_len=50) and None,
        lambda tmp: (tmp / "cache" / "split.json").is_file() and (tmp / "cache" / "test.npz").is_file(),
    ),
]


def _staging_folders(step: Step, tmp: Path) -> list[Path]:
    return sorted(p for p in step.where(tmp).iterdir() if p.name.startswith(step.prefix))


@pytest.mark.parametrize("step", STEPS, ids=[s.area for s in STEPS])
def test_a_killed_step_leaves_a_staging_folder_that_its_next_run_removes(tmp_path, fault_log, step):
    step.prepare(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", _HANG.format(repo=str(REPO)) + step.child(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        line = child.stdout.readline()  # "staged" once the staging folder is written
        assert line.strip() == "staged", (line, child.stderr.read() if child.poll() is not None else "")
        (leftover,) = _staging_folders(step, tmp_path)
        assert (leftover / staging.LOCK_NAME).is_file()
        # a run of the same step while the first still runs leaves its folder alone
        step.rerun(tmp_path)
        assert step.done(tmp_path) and leftover.is_dir() and _staging_folders(step, tmp_path) == [leftover]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL and leftover.is_dir()  # killed: nothing could remove it
    step.rerun(tmp_path)
    assert step.done(tmp_path) and not leftover.exists() and _staging_folders(step, tmp_path) == []
    assert not any(p.name == staging.LOCK_NAME for p in tmp_path.rglob("*"))  # no lock moved into place
    fault_log(
        step.area,
        "SIGKILL of the step while its staging folder is written",
        f"{leftover.name} stayed while its process ran (locked: a concurrent run of the step kept it) and "
        "after the kill; the next run of the step removed it and completed",
    )


def test_a_staging_folder_without_an_owner_is_removed_once_unchanged_for_a_while(tmp_path, fault_log):
    """Staging folders of an earlier bidl, written without a lock file, and swapped-out old copies."""
    old = [tmp_path / ".standin.tmp-k1ll3d", tmp_path / ".standin.old-k1ll3d"]
    fresh = tmp_path / ".standin.tmp-fr3sh1"  # may be in use: it changed a moment ago
    other = tmp_path / ".standin2.tmp-0th3r"  # another target's
    for folder in (*old, fresh, other):
        (folder / "DvsGesture").mkdir(parents=True)
        (folder / "DvsGesture" / "user01_led.aedat").write_bytes(b"#!AER-DAT3.1\r\n")
    an_hour_ago = time.time() - 3600
    for folder in (*old, other):
        os.utime(folder, (an_hour_ago, an_hour_ago))
    dvs128.generate_standin(tmp_path / "standin", n_users=2, lightings=("led",), reps_per_class=1)
    assert not any(p.exists() for p in old) and fresh.is_dir() and other.is_dir()
    assert (tmp_path / "standin" / "DvsGesture" / "trials_to_train.txt").is_file()
    fault_log(
        "stand-in generation",
        "staging folders left without a lock file: an hour old, a moment old, and another target's",
        f"the next run removed {', '.join(p.name for p in old)}; kept {fresh.name} (changed "
        f"{staging.GRACE_SECONDS:.0f} s ago or less) and {other.name} (another target)",
    )


def test_an_empty_split_stops_the_preprocess_naming_the_dataset(tmp_path, fault_log):
    """A stand-in too small for its split (no test users) fails at the preprocess, not at every later rule."""
    raw = dvs128.generate_standin(
        tmp_path / "raw", n_users=2, n_test_users=0, lightings=("led",), reps_per_class=1
    )
    out = tmp_path / "cache"
    with pytest.raises(ConfigError, match=r"datasets.dvs128_gesture: the test split of .* is empty") as err:
        _load_script("preprocess").main("dvs128_gesture", raw, out, layout="ibm_aedat31", n_frames=4, size=8)
    outputs = ("train.npz", "test.npz", "split.json", "preprocess.json")
    assert not any((out / name).exists() for name in outputs)
    fault_log("preprocessing", "a stand-in whose test split is empty (no test users)", err.value)
