"""Atomic file writes and safe checkpoint loading."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "default_file_mode",
    "atomic_write_bytes",
    "atomic_savez",
    "replace_dir",
    "redirect_output",
    "atomic_path",
    "atomic_write_text",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_torch_save",
    "DiskFullError",
    "file_digest",
    "leftover_temporaries",
    "load_checkpoint",
    "load_runs",
    "load_seeded_runs",
    "read_csv_rows",
]


def default_file_mode(directory: bool = False) -> int:
    """The mode a plain ``open`` / ``mkdir`` would give under the current umask (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


class DiskFullError(OSError):
    """A write that ran out of space (or quota) on its file system, naming the file it was writing."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


def _disk_full(path: Path, err: OSError) -> DiskFullError:
    try:
        free = f"{shutil.disk_usage(path.parent).free:,} bytes free now"
    except OSError:
        free = "free space unknown"
    return DiskFullError(
        err.errno,
        f"{path}: the disk is full ({os.strerror(err.errno)}; {free} on the file system of {path.parent}); "
        "nothing was replaced. Free some space and rerun",
    )


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically, else it is deleted.

    Readers never see a half-written file, and a crash leaves the previous version (or nothing) in place.
    The file gets the mode a plain ``open`` would give. A full disk (or quota) is raised as
    :class:`DiskFullError` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        if err.errno in _FULL:
            raise _disk_full(path, err) from None
        raise
    os.fchmod(fd, default_file_mode())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync(path.parent)
    except BaseException as err:
        tmp_path.unlink(missing_ok=True)
        full = _full_disk_error(err)
        if full is not None:  # torch's writer reports it as RuntimeError('unexpected pos ...') on top
            raise _disk_full(path, full) from None
        raise


def _full_disk_error(err: BaseException) -> OSError | None:
    """The out-of-space ``OSError`` behind ``err`` (itself, or what it was raised while handling), if any."""
    seen = 0
    while err is not None and seen < 8 and not isinstance(err, DiskFullError):
        if isinstance(err, OSError) and err.errno in _FULL:
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or a folder's entries) to the disk, so that a rename that survives a power loss
    points at complete content; a file system that cannot sync a folder is left as it is."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        if not path.is_dir():
            raise
    finally:
        os.close(fd)


def leftover_temporaries(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """The temporary files :func:`atomic_path` left in ``folder`` for the given target ``names`` when its
    process was killed before it could delete them (``.<name>.<random>.tmp``)."""
    folder = Path(folder)
    return sorted(p for name in names for p in folder.glob(f".{name}.*.tmp") if p.is_file())


def _write_with(path: str | Path, writer: Callable[[Path], None]) -> Path:
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return _write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return _write_with(path, lambda tmp: tmp.write_bytes(data))


def atomic_savez(path: str | Path, **arrays: np.ndarray) -> Path:
    """``np.savez_compressed`` to ``path`` atomically (the name is kept exactly, no ``.npz`` appended)."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez_compressed(handle, **arrays)

    return _write_with(path, write)


def replace_dir(new: Path, dest: Path) -> None:
    """Move folder ``new`` to ``dest``, swapping out (then deleting) whatever ``dest`` held."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
        os.rename(dest, old / "content")
    os.rename(new, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_csv(path: str | Path, fields: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as CSV (a header of ``fields``, the csv module's dialect) to ``path`` atomically."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(fields))
            writer.writeheader()
            writer.writerows(rows)

    return _write_with(path, write)


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(obj: Any, path: str | Path, *, previous: str | Path | None = None) -> Path:
    """``torch.save`` to ``path`` atomically. With ``previous``, the file ``path`` held so far is kept there
    (hard-linked, else copied, then renamed into place): at every moment ``path`` and ``previous`` are each a
    complete file, and a damaged ``path`` still leaves the one before it.

    The archive is written through a file handle, so that its records are named ``archive/...`` rather than
    after the temporary file: the same object gives the same bytes on every run. A full disk is a
    :class:`DiskFullError` naming ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            torch.save(obj, handle)
        if previous is not None and path.exists():
            with atomic_path(previous) as keep:
                keep.unlink()
                try:
                    os.link(path, keep)
                except OSError:  # a file system without hard links
                    shutil.copyfile(path, keep)
    return path


def file_digest(path: str | Path, algo: str = "sha256") -> str:
    """Return the lower-case hex digest of the file at ``path`` with hashlib algorithm ``algo``.

    Reads the file in 1 MiB blocks, so memory use is constant. Raises ``ValueError`` for an unknown
    algorithm and ``OSError`` if the file cannot be read.
    """
    digest = hashlib.new(algo)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


SEED_FOLDER = re.compile(r"seed(\d+)")


def _run_key(path: Path) -> tuple[str, int | None]:
    """``<runs>/<name>/seed<k>/<file>`` -> (``<name>``, k); ``<runs>/<name>/<file>`` -> (``<name>``, None)."""
    match = SEED_FOLDER.fullmatch(path.parent.name)
    if match:
        return path.parent.parent.name, int(match.group(1))
    return path.parent.name, None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def load_runs(files: Iterable[str | Path]) -> dict[str, Any]:
    """JSON files named ``<runs>/<name>/<file>.json`` or ``<runs>/<name>/seed<k>/<file>.json`` (e.g.
    ``results/<preset>/experiments/<name>/cost.json``) parsed, keyed by ``<name>``, in the given order (one
    file per name: :func:`load_seeded_runs` reads several seeds); a file that is not valid JSON is named."""
    runs = {}
    for path in map(Path, files):
        name, _ = _run_key(path)
        if name in runs:
            raise ValueError(
                f"{path}: a second file for {name!r} (several seeds: read them with load_seeded_runs)"
            )
        runs[name] = _read_json(path)
    return runs


def load_seeded_runs(files: Iterable[str | Path]) -> dict[str, dict[int, Any]]:
    """JSON files named ``<runs>/<name>/seed<k>/<file>.json`` (one training seed's result, e.g.
    ``results/<preset>/experiments/<name>/seed1/metrics.json``) parsed, keyed by ``<name>`` in the given order
    and then by the seed ``k`` in increasing order; a path without a seed folder, or a seed given twice, is an
    error naming the file."""
    runs: dict[str, dict[int, Any]] = {}
    for path in map(Path, files):
        name, seed = _run_key(path)
        if seed is None:
            raise ValueError(f"{path}: not in a seed folder (expected <runs>/<name>/seed<k>/{path.name})")
        if seed in runs.get(name, {}):
            raise ValueError(f"{path}: seed {seed} of {name!r} given twice")
        runs.setdefault(name, {})[seed] = _read_json(path)
    return {name: dict(sorted(seeds.items())) for name, seeds in runs.items()}


def read_csv_rows(path: str | Path, required: Iterable[str] = ()) -> list[dict[str, str]]:
    """The rows of a CSV file with a header (e.g. the measurements a figure is drawn from); a missing
    ``required`` column or an empty file is an error naming the file."""
    path = Path(path)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code from pickles)."""
    return torch.load(path, map_location=map_location, weights_only=True)


@contextmanager
def redirect_output(log_path: str | Path | None) -> Iterator[None]:
    """Send stdout and stderr to ``log_path`` (appending) for the duration; a no-op for ``None``."""
    if log_path is None:
        yield
        return
    import contextlib
    import sys

    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log_path, "a", buffering=1) as handle,
        contextlib.redirect_stdout(handle),
        contextlib.redirect_stderr(handle),
    ):
        try:
            yield
        except BaseException:
            import traceback

            traceback.print_exc(file=handle)
            sys.stderr.flush()
            raise
