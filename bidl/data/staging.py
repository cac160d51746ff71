"""Staging folders, and the removal of those a killed process left behind.

Everything :mod:`bidl.data` writes as a whole (a stand-in copy, an extracted archive, a preprocessing cache,
Jester's joined frames) is first written into a hidden staging folder beside its destination and moved into
place when complete. A process killed on the way (SIGKILL, a lost node, a job over its time limit) cannot
remove its staging folder; the next run of the same step does, before it stages anew:

- :func:`staging_dir` makes the folder ``parent/<prefix><random>`` with a lock file, ``.bidl-staging.lock``,
  which the process holds locked (``fcntl.flock``) for as long as it uses the folder. The kernel releases
  the lock when the process ends, however it ends; the file also records the process id and host.
- :func:`remove_leftovers` removes the folders (and files) of one target, named by their prefixes, whose
  owner is gone: the lock can be taken, or, on a file system without locks, the recorded process no longer
  runs on this host. A folder whose lock is held by a running process (another run of the same step, on any
  host that shares the file system) is left alone, and so is any folder of this process. A folder without
  a lock file (written by an earlier version, or the swapped-out old copy of
  :func:`bidl.io.replace_dir`) counts as left over once it has not changed for :data:`GRACE_SECONDS`.

Leftovers of other targets in the same folder are never touched: a prefix names exactly one target
(``.<name>.tmp-``, ``.<name>.extract-``, ``.<name>.staging-``, ...). Standard library only.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "GRACE_SECONDS",
    "LOCK_NAME",
    "remove_leftovers",
    "staged_replacement",
    "staging_dir",
    "unlock",
]

log = logging.getLogger(__name__)

LOCK_NAME = ".bidl-staging.lock"
"""The lock file inside every staging folder, held locked by the process that uses the folder."""

GRACE_SECONDS = 60.0
"""A staging folder or temporary file without a lock counts as left over once unchanged this long."""

_HELD: dict[Path, int] = {}  # staging folders of this process -> the descriptor holding their lock


def _lock_file(folder: Path) -> int | None:
    """Create ``folder/LOCK_NAME``, locked, recording who holds it; the descriptor, or None where the file
    system has no locks (the process id and host then stand for the owner). The file is locked under another
    name and then renamed, so that no other process ever finds it unlocked while this one uses the folder."""
    new = folder / f"{LOCK_NAME}.new"
    fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except OSError as exc:  # ENOLCK, EBADF, ... on file systems without flock
            log.debug("cannot lock %s (%s); its process id and host mark it in use", folder, exc)
            locked = False
        os.write(fd, f"pid={os.getpid()}\nhost={socket.gethostname()}\nstarted={time.time():.0f}\n".encode())
        os.rename(new, folder / LOCK_NAME)
    except BaseException:
        os.close(fd)
        raise
    if not locked:
        os.close(fd)
        return None
    return fd


def _make(parent: Path, prefix: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=prefix)).absolute()
    try:
        fd = _lock_file(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _HELD[folder] = -1 if fd is None else fd
    return folder


def unlock(folder: str | Path) -> None:
    """Remove the lock file of this process's staging ``folder`` and release it: call it right before the
    folder is moved into place (the lock file must not travel with it). Does nothing for another folder."""
    folder = Path(folder).absolute()
    fd = _HELD.pop(folder, None)
    if fd is None:
        return
    try:
        (folder / LOCK_NAME).unlink(missing_ok=True)
    finally:
        if fd >= 0:
            os.close(fd)


@contextmanager
def staging_dir(parent: str | Path, prefix: str, *, clean: bool = True) -> Iterator[Path]:
    """Yield a new empty staging folder ``parent/<prefix><random>`` that holds :data:`LOCK_NAME`, locked.

    With ``clean``, the leftovers of ``prefix`` (:func:`remove_leftovers`) are removed first. When the block
    ends the folder is removed, unless it was moved away (call :func:`unlock` before moving it).
    """
    parent = Path(parent)
    if clean:
        remove_leftovers(parent, prefix)
    folder = _make(parent, prefix)
    try:
        yield folder
    finally:
        unlock(folder)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def staged_replacement(dest: str | Path) -> Iterator[Path]:
    """Yield a staging folder whose content replaces folder ``dest`` as a whole when the block ends without
    an exception (:func:`bidl.io.replace_dir`); on an exception ``dest`` is left as it was.

    The staging folder is ``.<dest name>.tmp-<random>`` beside ``dest``, with the mode a plain ``mkdir``
    gives; the leftovers of earlier runs killed while writing ``dest`` (``.<name>.tmp-*``, and
    ``.<name>.old-*``, the previous copy being swapped out) are removed first.
    """
    from bidl.io import default_file_mode, replace_dir  # bidl.io imports torch: only where needed

    dest = Path(dest)
    remove_leftovers(dest.parent, (f".{dest.name}.tmp-", f".{dest.name}.old-"))
    with staging_dir(dest.parent, f".{dest.name}.tmp-", clean=False) as folder:
        folder.chmod(default_file_mode(directory=True))
        yield folder
        unlock(folder)
        replace_dir(folder, dest)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recorded_owner(lock: Path) -> tuple[int | None, str | None]:
    try:
        fields = dict(
            line.split("=", 1) for line in lock.read_text(errors="replace").splitlines() if "=" in line
        )
    except OSError:
        return None, None
    pid = fields.get("pid", "")
    return (int(pid) if pid.isdigit() else None), fields.get("host")


def _age(path: Path) -> float:
    return time.time() - path.lstat().st_mtime


def _claim(entry: Path) -> tuple[bool, int | None, str]:
    """Whether ``entry`` (a staging folder or temporary file of a target) is left over; the descriptor that
    now holds its lock, if one was taken; and why, in words."""
    if entry.absolute() in _HELD:
        return False, None, "in use by this process"
    lock = entry / LOCK_NAME
    if not entry.is_dir() or entry.is_symlink() or not lock.exists():
        age = _age(entry)
        if age < GRACE_SECONDS:
            return False, None, f"changed {age:.0f} s ago"
        return True, None, f"no owner recorded, unchanged for {age:.0f} s"
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError as exc:
        return False, None, f"lock file unreadable: {exc}"
    pid, host = _recorded_owner(lock)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False, None, f"locked by process {pid} on {host}"
    except OSError as exc:  # no locks on this file system: the recorded owner decides
        os.close(fd)
        if exc.errno == errno.EWOULDBLOCK:
            return False, None, f"locked by process {pid} on {host}"
        if pid is not None and host == socket.gethostname() and not _pid_alive(pid):
            return True, None, f"process {pid} on {host} is gone"
        return False, None, f"process {pid} on {host} may still use it"
    return True, fd, f"process {pid} on {host} is gone"


def remove_leftovers(parent: str | Path, prefixes: str | Iterable[str]) -> list[Path]:
    """Remove the entries of ``parent`` whose names start with one of ``prefixes`` and whose owner is gone
    (see the module docstring); return what was removed. Each removal is logged with its reason."""
    parent = Path(parent)
    prefixes = (prefixes,) if isinstance(prefixes, str) else tuple(prefixes)
    if not parent.is_dir():
        return []
    removed = []
    for entry in sorted(parent.iterdir()):
        if not entry.name.startswith(prefixes):
            continue
        try:
            leftover, fd, why = _claim(entry)
        except FileNotFoundError:  # removed meanwhile by its owner
            continue
        if not leftover:
            log.debug("keeping %s: %s", entry, why)
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        finally:
            if fd is not None:
                os.close(fd)
        if not entry.exists():
            log.warning("removed %s, left by a killed run (%s)", entry, why)
            removed.append(entry)
    return removed
