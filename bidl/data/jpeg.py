"""Structural check of JPEG frame files without decoding them: signature, frame header, end marker.

The JPEG-folder datasets (Jester, RGB-gesture) check every frame file with :func:`jpeg_size` when they are
preprocessed: an empty, truncated or mis-typed frame and a frame of another size than its clip's are found
at the cost of opening and reading each file, without decoding it (Jester's cache is an index: its frames
are decoded only when a training item is read).

A JPEG file (ITU T.81) is a sequence of marker segments: ``FF D8`` (start of image), segments ``FF xx`` +
a big-endian 16-bit length (APPn, DQT, DHT, ...), the frame header ``SOFn`` (``FF C0`` .. ``FF CF`` except
C4, C8, CC) holding precision, height and width, then the scan data, and ``FF D9`` (end of image) last.
Inside the scan data a ``FF`` byte is always followed by ``00`` or a restart marker ``D0`` .. ``D7``, so a
file cut anywhere after its header lacks ``FF D9`` in its last bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from bidl.errors import DataFormatError

__all__ = ["JPEG_MAGIC", "NOT_JPEG", "clip_frame_size", "jpeg_size"]

JPEG_MAGIC = b"\xff\xd8\xff"
"""The first three bytes of every JPEG file (start-of-image marker, then the next marker's FF)."""
NOT_JPEG = "not a JPEG file (no FF D8 FF signature)"

_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD8)) | {0x01, 0xD8}  # RSTn, TEM, SOI: no length field
_END_OF_IMAGE = b"\xff\xd9"
_TAIL_BYTES = 64
_HEAD_BYTES = 1 << 16  # one read takes in a whole frame file of the JPEG datasets (a few KiB each)


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


def clip_frame_size(frames: Sequence[str | Path]) -> tuple[int, int]:
    """Check every frame file of a clip with :func:`jpeg_size`; return the clip's ``(height, width)``.

    Raises:
        DataFormatError: naming the first bad frame file, or the first one whose size differs from the
            clip's first frame (a clip's frames come from one camera at one resolution).
    """
    if not frames:
        raise ValueError("clip_frame_size: a clip needs at least one frame")
    first = jpeg_size(frames[0])
    for path in frames[1:]:
        size = jpeg_size(path)
        if size != first:
            raise DataFormatError(
                path,
                f"frame size {size[1]}x{size[0]} differs from the clip's first frame {Path(frames[0]).name} "
                f"({first[1]}x{first[0]}; width x height)",
            )
    return first
