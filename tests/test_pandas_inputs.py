"""The pandas reading of LUNA16's point csv files (bidl.data.luna16.read_point_csv) against the csv-module
reader it replaced, kept here as the reference: the same values, dtypes and errors on the stand-in's files and
on edited copies."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from bidl.data.luna16 import (
    ANNOTATIONS_HEADER,
    CANDIDATES_HEADER,
    _point_columns_pandas,
    generate_standin,
    read_point_csv,
)
from bidl.errors import DataFormatError


def reference_read_point_csv(path: Path, header, *, binary: bool):
    """The csv-module reader: every non-blank row parsed with Python's ``float``."""
    text = path.read_text(encoding="utf-8")
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows or tuple(c.strip() for c in rows[0]) != tuple(header):
        raise DataFormatError(path, f"expected header {','.join(header)!r}")
    n = len(rows) - 1
    uids = np.empty(n, dtype=object)
    numbers = np.empty((n, 4), dtype=np.float64)
    for i, row in enumerate(rows[1:]):
        if len(row) != 5:
            raise DataFormatError(path, f"line {i + 2}: expected 5 fields, got {len(row)}")
        uids[i] = row[0].strip()
        try:
            numbers[i] = [float(c) for c in row[1:]]
        except ValueError as exc:
            raise DataFormatError(path, f"line {i + 2}: non-numeric field in {row}") from exc
    if not np.isfinite(numbers).all():
        bad = int(np.flatnonzero(~np.isfinite(numbers).all(axis=1))[0])
        raise DataFormatError(path, f"line {bad + 2}: non-finite number")
    if binary and n and not np.isin(numbers[:, 3], (0.0, 1.0)).all():
        bad = int(np.flatnonzero(~np.isin(numbers[:, 3], (0.0, 1.0)))[0])
        raise DataFormatError(path, f"line {bad + 2}: {header[4]} must be 0 or 1, got {numbers[bad, 3]}")
    return uids.astype(str), numbers[:, :3], numbers[:, 3], np.arange(n, dtype=np.int64)


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    return generate_standin(tmp_path_factory.mktemp("luna") / "raw", n_scans=4, n_nodules=2, n_vessels=1)


def _assert_same(path: Path, header, binary: bool) -> None:
    table = read_point_csv(path, header, binary=binary)
    uids, world, values, rows = reference_read_point_csv(path, header, binary=binary)
    np.testing.assert_array_equal(table.uids, uids)
    assert table.uids.dtype.kind == "U" and table.world.dtype == table.values.dtype == np.float64
    np.testing.assert_array_equal(table.world, world)  # bit-identical: pandas' float parsing is exact here
    np.testing.assert_array_equal(table.values, values)
    np.testing.assert_array_equal(table.rows, rows)


@pytest.mark.parametrize(
    ("name", "header", "binary"),
    [("candidates.csv", CANDIDATES_HEADER, True), ("annotations.csv", ANNOTATIONS_HEADER, False)],
)
def test_standin_point_files_read_as_the_csv_reader_reads_them(standin, name, header, binary):
    assert len((standin / name).read_text().splitlines()) > 5
    assert _point_columns_pandas(standin / name, header) is not None  # read by pandas, not the fallback
    _assert_same(standin / name, header, binary)


_EDITS = {
    "blank and whitespace-only lines": lambda lines: [lines[0], "", *lines[1:3], "  ", " , , , , ",
                                                      *lines[3:]],
    "spaces around fields": lambda lines: [lines[0]] + [" , ".join(line.split(",")) for line in lines[1:]],
    "CRLF line ends and a quoted uid": lambda lines: [lines[0]] + ['"' + lines[1].replace(",", '",', 1)]
    + lines[2:],
    "numbers Python accepts and C does not": lambda lines: [lines[0],
                                                            lines[1].rsplit(",", 4)[0] + ",1_0.5,2,3,0"],
    "header only": lambda lines: lines[:1],
}  # fmt: skip


@pytest.mark.parametrize("edit", sorted(_EDITS))
def test_edited_files_read_the_same(standin, tmp_path, edit):
    lines = (standin / "candidates.csv").read_text().splitlines()
    path = tmp_path / "candidates.csv"
    ending = "\r\n" if "CRLF" in edit else "\n"
    path.write_text(ending.join(_EDITS[edit](lines)) + ending)
    _assert_same(path, CANDIDATES_HEADER, True)


_BAD = {
    "short row": lambda lines: [*lines[:3], lines[3].rsplit(",", 1)[0], *lines[4:]],
    "long row": lambda lines: [*lines[:3], lines[3] + ",7", *lines[4:]],
    "text in a coordinate": lambda lines: [*lines[:2], lines[2].replace(",", ",abc", 1), *lines[3:]],
    "nan": lambda lines: [*lines[:4], lines[4].rsplit(",", 2)[0] + ",nan,0", *lines[5:]],
    "class 2": lambda lines: [*lines[:5], lines[5].rsplit(",", 1)[0] + ",2", *lines[6:]],
    "wrong header": lambda lines: ["seriesuid,x,y,z,class", *lines[1:]],
    "empty file": lambda lines: [],
}


@pytest.mark.parametrize("fault", sorted(_BAD))
def test_malformed_files_raise_the_csv_readers_error(standin, tmp_path, fault):
    lines = (standin / "candidates.csv").read_text().splitlines()
    path = tmp_path / "candidates.csv"
    path.write_text("\n".join(_BAD[fault](lines)) + "\n")
    with pytest.raises(DataFormatError) as expected:
        reference_read_point_csv(path, CANDIDATES_HEADER, binary=True)
    with pytest.raises(DataFormatError) as got:
        read_point_csv(path, CANDIDATES_HEADER, binary=True)
    assert str(got.value) == str(expected.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(DataFormatError, match=r"nothing\.csv: csv file is missing"):
        read_point_csv(tmp_path / "nothing.csv", CANDIDATES_HEADER, binary=True)
