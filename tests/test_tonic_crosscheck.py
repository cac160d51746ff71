"""bidl's event readers and framing against tonic's (tonic 1.x, GPL-3.0: a test dependency only).

Every event file of the DVS128 Gesture (AEDAT 3.1) and CIFAR10-DVS (AEDAT 2.0) stand-ins, as the data tests
generate them, is read with tonic's low-level readers (``tonic.io.read_aedat_header_from_file`` and
``get_aer_events_from_file``; tonic 1.7's ``read_dvs_ibm`` / ``read_dvs_128`` fail on the three values its
own header reader returns) and compared with bidl's reader, after applying what tonic leaves undone:

- AEDAT 3.1: tonic reads every packet's payload as polarity events (special-event packets included),
  keeps events whose valid bit is clear and ignores the packet's timestamp overflow counter;
- AEDAT 2.0: tonic decodes special (sync) addresses as pixels, keeps the raw 32-bit timestamps, and
  reads the address bits unrotated (bidl follows spikingjelly's CIFAR10-DVS orientation).

Framing: ``tonic.transforms.Downsample`` + ``ToFrame(time_window=...)`` against
:func:`bidl.data.formats.events.events_to_frames`, and bidl's events through tonic's transforms via
:func:`bidl.data.formats.events.to_tonic` / :func:`~bidl.data.formats.events.from_tonic`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bidl.data import cifar10_dvs, dvs128
from bidl.data.formats.aedat import EVENT_DTYPE, POLARITY_EVENT_TYPE, read_aedat31
from bidl.data.formats.aedat2 import read_aedat2
from bidl.data.formats.events import TONIC_EVENT_DTYPE, events_to_frames, from_tonic, to_tonic

tonic = pytest.importorskip("tonic")
from tonic.io import get_aer_events_from_file, read_aedat_header_from_file  # noqa: E402

DVS128_SMALL = {"n_users": 3, "lightings": ("led", "natural"), "reps_per_class": 1, "seed": 7}
CIFAR_SMALL = {"per_class": 5, "seed": 3}  # as tests/test_cifar10_dvs_data.py: index 4 runs through the wrap
_PACKET_HEADER = np.dtype(
    [("type", "<u2"), ("source", "<u2"), ("size", "<u4"), ("ts_offset", "<u4"), ("overflow", "<u4"),
     ("capacity", "<u4"), ("number", "<u4"), ("valid", "<u4")]
)  # fmt: skip


@pytest.fixture(scope="module")
def dvs128_files(tmp_path_factory) -> list[Path]:
    raw = dvs128.generate_standin(tmp_path_factory.mktemp("dvs128") / "raw", **DVS128_SMALL)
    files = sorted((raw / "DvsGesture").glob("*.aedat"))
    assert len(files) == 6
    return files


@pytest.fixture(scope="module")
def cifar_files(tmp_path_factory) -> list[Path]:
    raw = cifar10_dvs.generate_standin(tmp_path_factory.mktemp("c10") / "raw", **CIFAR_SMALL)
    files = sorted(raw.glob("*/*.aedat"))
    assert len(files) == 50
    return files


def _tonic_raw(path: Path) -> tuple[float, np.ndarray]:
    version, start, _ = read_aedat_header_from_file(str(path))
    return version, get_aer_events_from_file(str(path), version, start)


def _packet_slots(path: Path, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 8-byte payload slot of an AEDAT 3.1 file (tonic's event order): the packet's type, overflow
    counter and whether the slot holds an event (index < eventNumber); from the 28-byte packet headers."""
    raw = path.read_bytes()
    kinds, overflows, present = [], [], []
    pos = start
    while pos < len(raw):
        header = np.frombuffer(raw, dtype=_PACKET_HEADER, count=1, offset=pos)[0]
        assert header["size"] == 8  # tonic reads every payload as 8-byte events
        capacity = int(header["capacity"])
        kinds.append(np.full(capacity, header["type"]))
        overflows.append(np.full(capacity, header["overflow"], dtype=np.int64))
        present.append(np.arange(capacity) < header["number"])
        pos += 28 + 8 * capacity
    return np.concatenate(kinds), np.concatenate(overflows), np.concatenate(present)


def test_every_dvs128_standin_file_reads_as_tonic_reads_it(dvs128_files):
    specials = invalids = wraps = 0
    for path in dvs128_files:
        version, raw = _tonic_raw(path)
        assert version == 3.1
        _, start, _ = read_aedat_header_from_file(str(path))
        kinds, overflow, present = _packet_slots(path, start)
        assert kinds.shape == raw.shape
        addr, ts = raw["address"].astype(np.int64), raw["timeStamp"].astype(np.int64)
        keep = (kinds == POLARITY_EVENT_TYPE) & present & (addr & 1 == 1)
        specials += int((kinds != POLARITY_EVENT_TYPE).sum())
        invalids += int(((kinds == POLARITY_EVENT_TYPE) & (addr & 1 == 0)).sum())
        wraps += int((overflow[keep] > 0).any())
        # tonic's read_dvs_ibm decoding, plus the overflow counter tonic ignores
        expected = np.empty(int(keep.sum()), dtype=EVENT_DTYPE)
        expected["x"] = (addr[keep] >> 17) & 0x1FFF
        expected["y"] = (addr[keep] >> 2) & 0x1FFF
        expected["p"] = (addr[keep] >> 1) & 1
        expected["t"] = ts[keep] + (overflow[keep] << 31)
        np.testing.assert_array_equal(read_aedat31(path), expected, err_msg=path.name)
    assert specials and invalids and wraps  # the stand-ins exercise every difference


def _unwrap_and_clamp(ts: np.ndarray) -> np.ndarray:
    """bidl's documented AEDAT 2.0 timestamp policy: 32-bit wraps unwrapped, small steps back clamped."""
    t = ts.astype(np.int64)
    wrapped = np.concatenate([[0], np.cumsum(np.diff(t) < -(1 << 31))])
    return np.maximum.accumulate(t + (wrapped << 32))


def test_every_cifar10_dvs_standin_file_reads_as_tonic_reads_it(cifar_files):
    specials = wraps = 0
    for path in cifar_files:
        version, raw = _tonic_raw(path)
        assert version == 2.0
        addr = raw["address"].astype(np.int64)
        pixel = (addr & 0x80008000) == 0
        specials += int((~pixel).sum())
        t = _unwrap_and_clamp(raw["timeStamp"])
        wraps += int(t[-1] >= 1 << 32)
        # tonic's read_dvs_128 decoding (x = b, y = a, p = p_raw) in spikingjelly's orientation
        expected = np.empty(int(pixel.sum()), dtype=EVENT_DTYPE)
        expected["x"] = 127 - ((addr[pixel] >> 8) & 0x7F)
        expected["y"] = 127 - ((addr[pixel] >> 1) & 0x7F)
        expected["p"] = 1 - (addr[pixel] & 1)
        expected["t"] = t[pixel]
        np.testing.assert_array_equal(read_aedat2(path), expected, err_msg=path.name)
    assert specials and wraps


def _tonic_frames(events: np.ndarray, window_us: int, size: int) -> np.ndarray:
    import tonic.transforms as T

    transform = T.Compose(
        [
            T.Downsample(spatial_factor=size / 128),
            T.ToFrame(sensor_size=(size, size, 2), time_window=window_us, include_incomplete=True),
        ]
    )
    return transform(to_tonic(events))


@pytest.mark.parametrize("size", [128, 40])
def test_tonic_time_window_framing_equals_bidls(dvs128_files, cifar_files, size):
    for path, reader, window in (
        (dvs128_files[0], read_aedat31, 25_000),
        (cifar_files[-1], read_aedat2, 10_000),
    ):
        events = reader(path)
        events = events[np.argsort(events["t"], kind="stable")][:200_000]
        frames = _tonic_frames(events, window, size)
        ours = events_to_frames(
            events, window_us=window, n_frames=frames.shape[0], out_size=(size, size), sensor_size=(128, 128)
        )
        assert frames.shape == ours.shape and frames.sum() == ours.sum() == events.shape[0]
        np.testing.assert_array_equal(frames, ours, err_msg=path.name)


def test_to_tonic_and_back_is_lossless_and_tonic_transforms_apply(dvs128_files):
    events = read_aedat31(dvs128_files[1])
    ours = to_tonic(events)
    assert ours.dtype == TONIC_EVENT_DTYPE == tonic.io.events_struct
    np.testing.assert_array_equal(from_tonic(ours), events)
    flipped = tonic.transforms.RandomFlipLR(sensor_size=(128, 128, 2), p=1.0)(ours)
    np.testing.assert_array_equal(from_tonic(flipped)["x"], 127 - events["x"])
    # a dataset's own dtype (DVSGesture: x, y, p, t) and float coordinates holding integers are read too
    other = np.zeros(3, dtype=[("x", "<f8"), ("y", "<f8"), ("p", "<i8"), ("t", "<i8")])
    other["x"], other["y"], other["p"], other["t"] = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [1, 0, 1], [7, 8, 9]
    back = from_tonic(other)
    assert back.dtype == EVENT_DTYPE and back["x"].tolist() == [1, 2, 3] and back["p"].tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros(2, dtype=[("x", "i2"), ("y", "i2"), ("t", "i8")]), r"missing field\(s\) p"),
        (np.zeros((2, 4)), "structured array"),
        (np.array([(0.5, 0, 0, True)], dtype=[("x", "f8"), ("y", "i2"), ("t", "i8"), ("p", "?")]), "x holds"),
        (np.array([(0, 0, 0, 2)], dtype=[("x", "i2"), ("y", "i2"), ("t", "i8"), ("p", "i1")]), "polarity"),
    ],
)
def test_from_tonic_names_what_is_wrong(array, message):
    with pytest.raises(ValueError, match=message):
        from_tonic(array)
