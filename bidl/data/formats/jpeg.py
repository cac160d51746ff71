"""Checks of JPEG frame files: a cheap structural one, and a complete one that also decodes the frame.

The JPEG-folder datasets (Jester, RGB-gesture) check every frame file when they are preprocessed:

- :func:`jpeg_size` reads the header and the last bytes, without decoding: an empty, truncated or mis-typed
  frame and a frame of another size than its clip's are found at the cost of opening each file;
- :func:`verify_jpeg` reads the whole file, walks all its marker segments and the entropy-coded data of
  every scan (:func:`jpeg_structure`), and decodes it with PIL, as training does: a frame damaged in the
  middle (a marker or a stray end-of-image marker in the scan data, restart markers out of order, a
  segment that runs past the end, data that the decoder refuses) is found here, not when a training epoch
  reads it. Decoding a frame of the stand-ins costs about 0.1 ms.

Entropy-coded data carries no checksum: damage that keeps the marker structure intact (bytes overwritten
by other non-marker bytes, a run of the scan cut out) decodes, with a libjpeg warning that PIL does not
report, to wrong pixels; neither check finds it, and training reads such a frame without error.

A JPEG file (ITU T.81) is a sequence of marker segments: ``FF D8`` (start of image), segments ``FF xx`` +
a big-endian 16-bit length (APPn, DQT, DHT, ...), the frame header ``SOFn`` (``FF C0`` .. ``FF CF`` except
C4, C8, CC) holding precision, height and width, then for each scan an ``SOS`` segment followed by its
entropy-coded data, and ``FF D9`` (end of image) last. Inside the entropy-coded data a ``FF`` byte is always
followed by ``00`` (a stuffed byte) or a restart marker ``D0`` .. ``D7`` (numbered 0..7 in turn from each
scan's start), so a file cut anywhere after its header lacks ``FF D9`` in its last bytes, and any other
marker ends the scan.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from bidl.errors import DataFormatError

__all__ = ["JPEG_MAGIC", "NOT_JPEG", "clip_frame_size", "jpeg_size", "jpeg_structure", "verify_jpeg"]

JPEG_MAGIC = b"\xff\xd8\xff"
"""The first three bytes of every JPEG file (start-of-image marker, then the next marker's FF)."""
NOT_JPEG = "not a JPEG file (no FF D8 FF signature)"

_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD8)) | {0x01, 0xD8}  # RSTn, TEM, SOI: no length field
_END_OF_IMAGE = b"\xff\xd9"
_TAIL_BYTES = 64
_HEAD_BYTES = 1 << 16  # one read takes in a whole frame file of the JPEG datasets (a few KiB each)
_SCAN_END = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")  # the FF of the marker that ends entropy-coded data
_RESTART = re.compile(rb"\xff[\xd0-\xd7]")
_DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class _File:
    """Random access to a file, served from one read of its first 64 KiB where possible."""

    def __init__(self, handle: BinaryIO):
        self.handle = handle
        self.head = handle.read(_HEAD_BYTES)
        self.size = len(self.head) if len(self.head) < _HEAD_BYTES else handle.seek(0, 2)

    def at(self, offset: int, n: int) -> bytes:
        if offset + n <= len(self.head):
            return self.head[offset : offset + n]
        self.handle.seek(offset)
        return self.handle.read(n)


def _frame_header(path: Path, file: _File) -> tuple[int, int, int]:
    """``(height, width, end of the frame header)`` found by walking the marker segments from byte 2."""
    pos, size = 2, file.size
    while True:
        segment = file.at(pos, 4)
        if len(segment) < 2 or (len(segment) < 4 and segment[1] not in _STANDALONE_MARKERS | {0xFF}):
            raise DataFormatError(path, f"JPEG header cut short at byte {pos} of {size}: truncated file")
        if segment[0] != 0xFF:
            raise DataFormatError(path, f"malformed JPEG header: no marker at byte {pos}")
        marker = segment[1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        if marker in (0xDA, 0xD9):
            raise DataFormatError(path, "malformed JPEG: no frame header (SOFn) before the scan data")
        length = int.from_bytes(segment[2:4], "big")
        if length < 2:
            raise DataFormatError(path, f"malformed JPEG header: segment length {length} at byte {pos}")
        if marker in _SOF_MARKERS:
            body = file.at(pos + 4, 5)
            if len(body) < 5:
                raise DataFormatError(path, f"JPEG frame header cut short at byte {pos}: truncated file")
            height, width = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big")
            if height == 0 or width == 0:
                raise DataFormatError(path, f"JPEG frame header gives a {width}x{height} image")
            return height, width, pos + 2 + length
        pos += 2 + length
        if pos >= size:
            raise DataFormatError(
                path, f"JPEG header runs past the end of the file ({size} bytes): truncated file"
            )


def jpeg_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of a JPEG file, from its frame header, after checking the file's structure.

    Reads the marker segments up to the frame header and the file's last 64 bytes (one read for a file of
    up to 64 KiB); decodes nothing.

    Raises:
        DataFormatError: naming the file: missing ("frame is missing") or unreadable, empty (0 bytes), not
            starting with the JPEG signature (another file type), a header cut short or malformed, a zero
            height or width, or no end-of-image marker ``FF D9`` among its last 64 bytes (a truncated file).
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            file = _File(handle)
            size = file.size
            if size == 0:
                raise DataFormatError(path, "empty file (0 bytes)")
            if not file.head.startswith(JPEG_MAGIC):
                raise DataFormatError(path, NOT_JPEG)
            height, width, header_end = _frame_header(path, file)
            start = max(size - _TAIL_BYTES, header_end)
            tail = file.at(start, size - start)
    except FileNotFoundError as exc:
        raise DataFormatError(path, "frame is missing") from exc
    except OSError as exc:
        raise DataFormatError(path, f"cannot read frame: {exc}") from exc
    if _END_OF_IMAGE not in tail:
        raise DataFormatError(
            path, f"no JPEG end-of-image marker (FF D9) in its last bytes: truncated file ({size} bytes)"
        )
    return height, width


def _scan_end(path: Path, data: bytes, start: int, scan: int) -> int:
    """Where the entropy-coded data of ``scan`` (from byte ``start``) ends: the byte of the next marker's FF;
    its restart markers must count 0, 1, ..., 7, 0, ... in turn."""
    end = _SCAN_END.search(data, start)
    if end is None:
        raise DataFormatError(
            path,
            f"the entropy-coded data of scan {scan} (from byte {start}) runs to the end of the file "
            f"({len(data)} bytes) without a marker: truncated file",
        )
    expected = 0
    for restart in _RESTART.finditer(data, start, end.start()):
        number = data[restart.start() + 1] - 0xD0
        if number != expected:
            raise DataFormatError(
                path,
                f"restart marker RST{number} at byte {restart.start()} in scan {scan} is out of sequence "
                f"(RST{expected} expected): damaged scan data",
            )
        expected = (expected + 1) % 8
    return end.start()


def jpeg_structure(path: str | Path, data: bytes) -> tuple[int, int]:
    """``(height, width)`` of the JPEG file ``path`` whose bytes are ``data``, after walking all of it.

    Every marker segment must lie within the file; there is one frame header (SOFn) and at least one scan;
    the entropy-coded data of each scan holds only stuffed bytes and restart markers in sequence and ends at
    a marker; the end-of-image marker ends the walk, at most 64 bytes before the end of the file (some
    writers pad).

    Raises:
        DataFormatError: naming ``path`` and the byte where the structure breaks.
    """
    path = Path(path)
    size = len(data)
    if size == 0:
        raise DataFormatError(path, "empty file (0 bytes)")
    if not data.startswith(JPEG_MAGIC):
        raise DataFormatError(path, NOT_JPEG)
    pos, frame, scans = 2, None, 0
    while True:
        if pos + 2 > size:
            raise DataFormatError(
                path, f"no end-of-image marker: the file ends at byte {size}: truncated file"
            )
        if data[pos] != 0xFF:
            raise DataFormatError(path, f"malformed JPEG: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:
            break
        if marker in (0x00, 0xD8):
            what = "a second start-of-image marker" if marker == 0xD8 else "a stuffed byte (FF 00)"
            raise DataFormatError(path, f"malformed JPEG: {what} at byte {pos}, outside scan data")
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        if pos + 4 > size:
            raise DataFormatError(path, f"segment FF {marker:02X} at byte {pos} cut short: truncated file")
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end < pos + 4:
            raise DataFormatError(
                path, f"malformed JPEG: segment FF {marker:02X} at byte {pos} has length < 2"
            )
        if end > size:
            raise DataFormatError(
                path,
                f"segment FF {marker:02X} at byte {pos} runs to byte {end}, past the end of the file "
                f"({size} bytes): truncated file",
            )
        if marker in _SOF_MARKERS:
            if frame is not None:
                raise DataFormatError(path, f"malformed JPEG: a second frame header (SOFn) at byte {pos}")
            if end - pos < 9:
                raise DataFormatError(path, f"malformed JPEG: frame header at byte {pos} too short")
            frame = (
                int.from_bytes(data[pos + 5 : pos + 7], "big"),
                int.from_bytes(data[pos + 7 : pos + 9], "big"),
            )
            if 0 in frame:
                raise DataFormatError(path, f"JPEG frame header gives a {frame[1]}x{frame[0]} image")
        elif marker == 0xDA:
            if frame is None:
                raise DataFormatError(path, "malformed JPEG: no frame header (SOFn) before the scan data")
            scans += 1
            pos = _scan_end(path, data, end, scans)
            continue
        pos = end
    if frame is None or scans == 0:
        raise DataFormatError(path, f"malformed JPEG: end-of-image marker at byte {pos} before any scan data")
    after = size - pos - 2
    if after > _TAIL_BYTES:
        raise DataFormatError(
            path,
            f"end-of-image marker at byte {pos} of {size}, {after} bytes before the end of the file: the "
            "scan data stops early (damaged file)",
        )
    return frame


def verify_jpeg(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of a JPEG file after checking it completely: :func:`jpeg_structure` on its bytes,
    then a full decode with PIL (the decoder training uses).

    Raises:
        DataFormatError: naming the file: missing or unreadable, or any problem of :func:`jpeg_structure`,
            or one that the decoder refuses ("cannot decode JPEG: ...").
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataFormatError(path, "frame is missing") from exc
    except OSError as exc:
        raise DataFormatError(path, f"cannot read frame: {exc}") from exc
    height, width = jpeg_structure(path, data)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except _DECODE_ERRORS as exc:
        raise DataFormatError(path, f"cannot decode JPEG: {exc}") from exc
    return height, width


def clip_frame_size(frames: Sequence[str | Path], *, decode: bool = False) -> tuple[int, int]:
    """Check every frame file of a clip; return the clip's ``(height, width)``.

    Each frame is checked with :func:`jpeg_size` (its structure, not decoded) or, with ``decode``, with
    :func:`verify_jpeg` (all of it, and decoded).

    Raises:
        DataFormatError: naming the first bad frame file, or the first one whose size differs from the
            clip's first frame (a clip's frames come from one camera at one resolution).
    """
    if not frames:
        raise ValueError("clip_frame_size: a clip needs at least one frame")
    check = verify_jpeg if decode else jpeg_size
    first = check(frames[0])
    for path in frames[1:]:
        size = check(path)
        if size != first:
            raise DataFormatError(
                path,
                f"frame size {size[1]}x{size[0]} differs from the clip's first frame {Path(frames[0]).name} "
                f"({first[1]}x{first[0]}; width x height)",
            )
    return first
