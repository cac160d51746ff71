"""AEDAT 3.1 and tonic .npy readers (bidl.data.formats.aedat)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from bidl.data.formats.aedat import EVENT_DTYPE, read_aedat31, read_tonic_npy, write_aedat31
from bidl.errors import DataFormatError

HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEADER\r\n"


def _events(rows: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Events from (t, x, y, p) rows."""
    return np.array(rows, dtype=EVENT_DTYPE)


def _packet(event_type: int, size: int, overflow: int, payload: bytes, n: int) -> bytes:
    return struct.pack("<HHIIIIII", event_type, 1, size, 4, overflow, n, n, n) + payload


def _polarity(x: int, y: int, p: int, ts: int, valid: int = 1) -> bytes:
    return struct.pack("<II", (x << 17) | (y << 2) | (p << 1) | valid, ts)


def test_round_trip_keeps_every_field_including_timestamps_past_2_to_the_31(tmp_path):
    rng = np.random.default_rng(0)
    n = 1000
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(2**31 - 5000, 2**31 + 5000, n))
    ev["t"][-1] = 3 * 2**31 + 7  # two overflows further
    ev["x"] = rng.integers(0, 128, n)
    ev["y"] = rng.integers(0, 128, n)
    ev["p"] = rng.integers(0, 2, n)
    path = tmp_path / "rec.aedat"
    write_aedat31(path, ev, packet_events=300)
    back = read_aedat31(path)
    assert back.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(back, ev)
    assert (back["t"] >= 2**31).sum() == (ev["t"] >= 2**31).sum() > 0


def test_writer_stores_overflow_in_packet_header_and_sets_valid_bit(tmp_path):
    ev = _events([(5, 1, 2, 1), (2**31 + 9, 127, 0, 0)])
    path = tmp_path / "two.aedat"
    write_aedat31(path, ev)
    raw = path.read_bytes()
    body = raw[raw.index(b"#!END-HEADER\r\n") + 14 :]
    assert len(body) == 2 * (28 + 8)  # the overflow change splits the packets
    first = struct.unpack("<HHIIIIII", body[:28])
    second = struct.unpack("<HHIIIIII", body[36:64])
    assert first[0] == 1 and first[2] == 8 and first[4] == 0 and first[5:] == (1, 1, 1)
    assert second[4] == 1
    data, ts = struct.unpack("<II", body[64:72])
    assert data & 1 == 1 and (data >> 17) & 0x1FFF == 127 and ts == 9


def test_non_polarity_packets_are_skipped_and_invalid_events_dropped(tmp_path):
    special = _packet(0, 8, 0, struct.pack("<II", 0xFFFFFFFF, 1), 1)
    polarity = _packet(1, 8, 0, _polarity(3, 4, 1, 10) + _polarity(5, 6, 0, 11, valid=0), 2)
    path = tmp_path / "mixed.aedat"
    path.write_bytes(HEADER + special + polarity)
    ev = read_aedat31(path)
    np.testing.assert_array_equal(ev, _events([(10, 3, 4, 1)]))


def _packets(raw: bytes) -> list[tuple[int, int, int, int, int]]:
    """(eventType, eventSize, eventTSOverflow, eventNumber, eventValid) of every packet of a file."""
    pos = raw.index(b"#!END-HEADER\r\n") + 14
    out = []
    while pos < len(raw):
        kind, _, size, _, overflow, capacity, number, valid = struct.unpack_from("<HHIIIIII", raw, pos)
        out.append((kind, size, overflow, number, valid))
        pos += 28 + capacity * size
    return out


def test_real_file_features_past_2_to_the_31_other_packets_and_invalid_events(tmp_path):
    # a timestamp-wrap special event, an IMU-like packet of 36-byte events, polarity events past 2**31 us
    # with invalid ones among them: only the valid polarity events come back, on the full clock
    wrap = _packet(0, 8, 1, struct.pack("<II", (0 << 1) | 1, 0), 1)
    imu = _packet(3, 36, 1, bytes(range(36)) * 2, 2)
    polarity = _packet(
        1,
        8,
        1,
        _polarity(3, 4, 1, 10)
        + _polarity(5, 6, 0, 11, valid=0)
        + _polarity(7, 8, 0, 12)
        + _polarity(1, 1, 1, 12),
        4,
    )
    later = _packet(1, 8, 2, _polarity(9, 9, 1, 5, valid=0) + _polarity(127, 127, 0, 6), 2)
    path = tmp_path / "user30_led.aedat"
    path.write_bytes(HEADER + wrap + imu + polarity + later)
    ev = read_aedat31(path)
    base = 2**31
    expected = [(base + 10, 3, 4, 1), (base + 12, 7, 8, 0), (base + 12, 1, 1, 1), (2 * base + 6, 127, 127, 0)]
    np.testing.assert_array_equal(ev, _events(expected))


def test_writer_marks_invalid_events_and_writes_special_packets_the_reader_skips(tmp_path):
    n = 12
    ev = _events([(2**31 - 6 + k, k, 2 * k, k % 2) for k in range(n)])  # runs through 2**31
    valid = np.ones(n, dtype=bool)
    valid[[1, 8]] = False
    special = [(2**31, 0), (2**31 - 4, 4), (2**31 + 100, 4)]  # a wrap, two external-input pulses
    path = tmp_path / "w.aedat"
    write_aedat31(path, ev, packet_events=5, valid=valid, special=special)
    raw = path.read_bytes()
    assert _packets(raw) == [
        (1, 8, 0, 2, 1),  # events 0-1 (event 1 invalid)
        (0, 8, 0, 1, 1),  # the pulse at 2**31 - 4, before event 2
        (1, 8, 0, 3, 3),  # events 2-4
        (1, 8, 0, 1, 1),  # event 5: the overflow changes after it
        (0, 8, 1, 1, 1),  # the wrap at 2**31, before event 6
        (1, 8, 1, 4, 3),  # events 6-9 (event 8 invalid)
        (1, 8, 1, 2, 2),  # events 10-11
        (0, 8, 1, 1, 1),  # the pulse after the last event
    ]
    np.testing.assert_array_equal(read_aedat31(path), ev[valid])
    with pytest.raises(ValueError, match="valid"):
        write_aedat31(path, ev, valid=valid[:3])


def test_a_step_back_inside_a_packet_raises_across_packets_is_kept(tmp_path):
    inside = tmp_path / "inside.aedat"
    inside.write_bytes(HEADER + _packet(1, 8, 0, _polarity(1, 1, 1, 50) + _polarity(2, 2, 1, 40), 2))
    offset = len(HEADER) + 28
    with pytest.raises(
        DataFormatError, match=rf"inside.aedat: packet 0 \(payload at byte {offset}\).*go back"
    ):
        read_aedat31(inside)
    across = tmp_path / "across.aedat"
    first, second = _packet(1, 8, 0, _polarity(1, 1, 1, 50), 1), _packet(1, 8, 0, _polarity(2, 2, 1, 40), 1)
    across.write_bytes(HEADER + first + second)
    assert read_aedat31(across)["t"].tolist() == [50, 40]


@pytest.mark.parametrize("damage", ["cut_mid_payload", "cut_mid_packet_header", "partial_trailing_header"])
def test_truncated_file_raises_naming_it(tmp_path, damage):
    path = tmp_path / "user01_led.aedat"
    write_aedat31(path, _events([(t, 1, 1, 1) for t in range(4)]))
    raw = path.read_bytes()
    body_start = raw.index(b"#!END-HEADER\r\n") + 14
    damaged = {
        "cut_mid_payload": raw[:-5],
        "cut_mid_packet_header": raw[: body_start + 14],
        "partial_trailing_header": raw + b"\x00" * 10,
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(DataFormatError, match="user01_led.aedat") as info:
        read_aedat31(path)
    assert str(info.value).startswith(str(path)) and "truncated" in str(info.value)


def test_missing_header_end_raises(tmp_path):
    path = tmp_path / "noend.aedat"
    path.write_bytes(b"#!AER-DAT3.1\r\n#Format: RAW\r\n" + _packet(1, 8, 0, _polarity(1, 1, 1, 1), 1))
    with pytest.raises(DataFormatError, match="noend.aedat.*END-HEADER"):
        read_aedat31(path)


def test_polarity_packet_with_wrong_event_size_raises(tmp_path):
    path = tmp_path / "size.aedat"
    path.write_bytes(HEADER + _packet(1, 4, 0, b"\x00" * 8, 2))
    with pytest.raises(DataFormatError, match="size.aedat.*eventSize 4"):
        read_aedat31(path)


def test_coordinates_outside_the_sensor_raise(tmp_path):
    path = tmp_path / "coords.aedat"
    path.write_bytes(HEADER + _packet(1, 8, 0, _polarity(130, 5, 1, 1), 1))
    with pytest.raises(DataFormatError, match="coords.aedat.*outside"):
        read_aedat31(path)


def test_tonic_npy_converts_milliseconds_to_microseconds(tmp_path):
    path = tmp_path / "3.npy"
    np.save(path, np.array([[1, 2, 1, 0.001], [127, 127, 0, 1500.25], [0, 0, 1, 2.0]]))
    ev = read_tonic_npy(path)
    assert ev.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(ev, _events([(1, 1, 2, 1), (1_500_250, 127, 127, 0), (2000, 0, 0, 1)]))


def test_tonic_npy_malformed_files_raise_naming_them(tmp_path):
    bad_shape = tmp_path / "shape.npy"
    np.save(bad_shape, np.zeros((4, 3)))
    with pytest.raises(DataFormatError, match="shape.npy"):
        read_tonic_npy(bad_shape)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"not a numpy file")
    with pytest.raises(DataFormatError, match="garbage.npy"):
        read_tonic_npy(garbage)
    polarity = tmp_path / "pol.npy"
    np.save(polarity, np.array([[1.0, 1.0, 2.0, 0.0]]))
    with pytest.raises(DataFormatError, match="pol.npy"):
        read_tonic_npy(polarity)
