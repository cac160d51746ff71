"""Verified, resumable downloads and safe archive extraction (standard library only).

Guarantees shared by everything here:

* a file reaches its final name only after its size and checksums verified, and only by ``os.replace``;
* an interrupted download keeps its bytes in ``<dest>.part`` and the next attempt continues it with an
  HTTP ``Range`` request;
* an archive is extracted completely into a temporary directory and moved into place only when every
  member was checked and written, so a failed extraction leaves nothing behind, and the next extraction
  into the same place removes what a killed one left (:mod:`bidl.data.staging`);
* failures raise :class:`bidl.errors.DownloadError` or :class:`bidl.errors.DataFormatError` whose message
  names the file, the source and, for checksum failures, the expected and the actual digest.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import lzma
import os
import re
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from bidl.data.staging import staging_dir
from bidl.errors import DataFormatError, DownloadError
from bidl.io import file_digest

__all__ = [
    "USER_AGENT",
    "check_placed_files",
    "download",
    "extract_archive",
    "file_digest",
    "is_archive",
    "verify_recorded",
]

USER_AGENT = "bidl-downloader"

#: Seconds slept before the first retry of an attempt that made no progress; doubled on each further retry.
RETRY_BASE_DELAY = 1.0
#: Longest single sleep between retries, in seconds.
RETRY_MAX_DELAY = 30.0
#: Progress lines are printed at most this often (seconds), plus at every tenth of a file of known size.
PROGRESS_INTERVAL = 30.0

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_ZIP_SUFFIXES = (".zip",)
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


def _log(message: str) -> None:
    """Print one progress/diagnostic line to the *current* ``sys.stderr`` (so redirection works)."""
    print(f"[bidl.download] {message}", file=sys.stderr, flush=True)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - loop always returns


# ---------------------------------------------------------------------------------------------------------
# digests and verification
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """Why a file did not verify: which property, what was expected, what was found."""

    what: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.what} mismatch: expected {self.expected}, got {self.actual}"


def _verify(path: Path, md5: str | None, sha256: str | None, size: int | None) -> _Problem | None:
    """Check ``path`` against the given size and digests (reading it once); ``None`` means it verifies."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return _Problem("size", f"{size} bytes", f"{actual_size} bytes")
    hashers = {}
    if md5 is not None:
        hashers["MD5"] = (hashlib.md5(), md5.lower())
    if sha256 is not None:
        hashers["SHA256"] = (hashlib.sha256(), sha256.lower())
    if not hashers:
        return None
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            for h, _ in hashers.values():
                h.update(block)
    for name, (h, expected) in hashers.items():
        if h.hexdigest() != expected:
            return _Problem(name, expected, h.hexdigest())
    return None


# ---------------------------------------------------------------------------------------------------------
# download
# ---------------------------------------------------------------------------------------------------------


class _Transient(Exception):
    """A failure worth retrying on the same URL (dropped connection, timeout, HTTP 5xx/429)."""


class _Refused(Exception):
    """The URL will not serve the file (WAF challenge, HTTP 202/4xx, empty body, retries used up)."""


class _Mismatch(Exception):
    """The server's content cannot be the expected file."""

    def __init__(self, problem: _Problem):
        super().__init__(str(problem))
        self.problem = problem


class _Progress:
    """Sparse progress lines: at each tenth of a known total, or every ``PROGRESS_INTERVAL`` seconds."""

    def __init__(self, label: str, done: int, total: int | None):
        self.label, self.done, self.total = label, done, total
        self.start = self.last = time.monotonic()
        self.start_done = done
        self.next_tenth = (done * 10 // total + 1) if total else None

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        crossed = (
            self.total is not None
            and self.next_tenth is not None
            and (self.done * 10 >= self.next_tenth * self.total)
        )
        if crossed and self.done < (self.total or 0):
            self.next_tenth = self.done * 10 // (self.total or 1) + 1
            self._emit(now)
        elif now - self.last >= PROGRESS_INTERVAL:
            self._emit(now)

    def _emit(self, now: float) -> None:
        self.last = now
        rate = (self.done - self.start_done) / max(now - self.start, 1e-6)
        of = f" of {_human(self.total)} ({100 * self.done / self.total:.0f}%)" if self.total else ""
        _log(f"{self.label}: {_human(self.done)}{of}, {_human(rate)}/s")


def _content_length(resp: http.client.HTTPResponse) -> int | None:
    value = resp.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _fetch_once(url: str, part: Path, *, size: int | None, timeout: float, chunk: int, label: str) -> None:
    """Make one HTTP request and write what it delivers into ``part``, continuing it if it holds bytes.

    Returns normally when the server's body ended completely (the caller then verifies ``part``).
    Raises ``_Transient`` (bytes received so far stay in ``part``), ``_Refused`` or ``_Mismatch``.
    """
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size and offset > 0:
        return  # the partial file is already complete; let the caller verify it
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.headers is not None and exc.headers.get("x-amzn-waf-action") is not None:
            raise _Refused(
                f"WAF challenge (HTTP {exc.code}, x-amzn-waf-action: {exc.headers.get('x-amzn-waf-action')})"
            ) from None
        if exc.code == 416 and offset:
            return  # nothing beyond `offset`: the partial file holds everything; verification decides
        if exc.code in (408, 425, 429) or exc.code >= 500:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
        raise _Refused(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Transient(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None

    with resp:
        waf = resp.headers.get("x-amzn-waf-action")
        if waf is not None:
            raise _Refused(f"WAF challenge (HTTP {resp.status}, x-amzn-waf-action: {waf})")
        if resp.status == 202:
            raise _Refused("HTTP 202 Accepted with no file (bot challenge)")
        length = _content_length(resp)
        total: int | None
        if resp.status == 206 and offset:
            match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != offset:
                part.unlink(missing_ok=True)  # an unusable partial answer: start over without Range
                raise _Transient(f"unexpected Content-Range {resp.headers.get('Content-Range')!r}")
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        elif resp.status == 200 or resp.status == 206:
            if offset:
                _log(f"{label}: server ignored the Range request; restarting from byte 0")
            offset = 0
            total = length
            mode = "wb"
        else:
            raise _Refused(f"unexpected HTTP {resp.status}")
        if total is None and length is not None:
            total = offset + length
        if size is not None and total is not None and total != size:
            raise _Mismatch(_Problem("size", f"{size} bytes", f"{total} bytes (announced by the server)"))

        if offset == 0:
            _log(f"{label}: downloading from {url}" + (f" ({_human(total)})" if total else ""))
        else:
            _log(f"{label}: resuming at byte {offset} from {url}")
        progress = _Progress(label, offset, total)
        received = 0
        with open(part, mode) as fh:
            while True:
                try:
                    buf = resp.read(chunk)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Transient(f"connection lost after {received} bytes: {exc!r}") from None
                if not buf:
                    break
                fh.write(buf)
                received += len(buf)
                if size is not None and offset + received > size:
                    raise _Mismatch(_Problem("size", f"{size} bytes", f"more than {size} bytes"))
                progress.update(len(buf))
    if length is not None and received < length:
        raise _Transient(f"connection closed after {received} of {length} bytes")
    if received == 0 and offset == 0 and size != 0:
        raise _Refused(f"empty body (0 bytes, HTTP {resp.status})")
    if received == 0 and offset and length is None:
        raise _Transient("no data received")


def _fetch_with_retries(
    url: str, part: Path, *, size: int | None, timeout: float, chunk: int, retries: int, label: str
) -> None:
    """Call ``_fetch_once`` until the body is complete.

    An attempt that enlarged ``part`` is continued at once and does not use up a retry; ``retries``
    consecutive attempts without progress (with exponential back-off) turn the failure into ``_Refused``.
    """
    fruitless = 0
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            _fetch_once(url, part, size=size, timeout=timeout, chunk=chunk, label=label)
            return
        except _Transient as exc:
            after = part.stat().st_size if part.exists() else 0
            if after > before:
                _log(f"{label}: {exc}; resuming")
                fruitless = 0
                continue
            fruitless += 1
            if fruitless > retries:
                raise _Refused(f"{exc} (gave up after {retries} retries)") from None
            delay = min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2 ** (fruitless - 1))
            _log(f"{label}: {exc}; retry {fruitless}/{retries} in {delay:.0f} s")
            time.sleep(delay)


def download(
    urls: str | Sequence[str],
    dest: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    timeout: float = 60,
    retries: int = 3,
    chunk: int = 1 << 20,
) -> Path:
    """Download one file to ``dest`` from the first of ``urls`` that delivers a verified copy.

    Guarantees:

    * If ``dest`` already exists and matches ``size``/``md5``/``sha256`` (those given), it is returned at
      once without touching the network.
    * Bytes are written to ``<dest>.part``; a ``.part`` left by an earlier run is continued with
      ``Range: bytes=N-`` (a ``206`` answer is appended, a ``200`` answer restarts from byte 0).
    * Per URL, dropped connections, timeouts and HTTP 5xx/429 are retried; an attempt that made progress is
      resumed immediately, ``retries`` fruitless attempts in a row abandon the URL. HTTP 202, an
      ``x-amzn-waf-action`` header (figshare's bot wall), other 4xx and an empty body abandon it at once.
    * A complete ``.part`` whose size or checksum is wrong is deleted and fetched once more from scratch from
      the same URL; if that fails too the next URL is tried.
    * Only a verified file is moved to ``dest`` (``os.replace``, atomic); an existing ``dest`` that does not
      verify is left untouched unless a verified replacement arrives. No ``.part`` survives a checksum
      failure.

    Returns ``dest``. Raises :class:`DownloadError` naming the file, every URL with its failure and, for
    checksum failures, the expected and the actual digest.
    """
    url_list = (urls,) if isinstance(urls, str) else tuple(urls)
    if not url_list:
        raise ValueError(f"download({dest}): no URL given")
    dest = Path(dest)
    label = dest.name
    if dest.is_file():
        problem = _verify(dest, md5, sha256, size)
        if problem is None:
            return dest
        _log(f"{dest} exists but does not verify ({problem}); downloading a fresh copy")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")

    failures: list[str] = []
    mismatches: list[_Problem] = []
    for url in url_list:
        for attempt in ("first", "from scratch"):
            problem: _Problem | None
            try:
                _fetch_with_retries(
                    url, part, size=size, timeout=timeout, chunk=chunk, retries=retries, label=label
                )
            except _Refused as exc:
                failures.append(f"{url}: {exc}")
                break
            except _Mismatch as exc:
                problem = exc.problem
            else:
                problem = _verify(part, md5, sha256, size)
                if problem is None:
                    os.replace(part, dest)
                    _log(f"{label}: verified and saved to {dest}")
                    return dest
            part.unlink(missing_ok=True)
            mismatches.append(problem)
            failures.append(f"{url} ({attempt} attempt): {problem}")
            _log(
                f"{label}: {problem} from {url}"
                + ("; fetching again from scratch" if attempt == "first" else "")
            )

    lines = [f"{label}: no source delivered a verified copy for {dest}."]
    if mismatches:
        last = mismatches[-1]
        lines.append(f"{last.what} expected {last.expected}, actual {last.actual}.")
    lines.append("Tried:")
    lines += [f"  {f}" for f in failures]
    if dest.exists():
        lines.append(f"The existing {dest} does not verify and was left as it is.")
    raise DownloadError("\n".join(lines))


# ---------------------------------------------------------------------------------------------------------
# archives
# ---------------------------------------------------------------------------------------------------------


def is_archive(path: str | Path) -> bool:
    """True if ``path``'s name has a suffix :func:`extract_archive` handles (.tar[.gz/.bz2/.xz], .zip)."""
    name = Path(path).name.lower()
    return name.endswith(_TAR_SUFFIXES + _ZIP_SUFFIXES)


def _unsafe_name(name: str) -> str | None:
    """Why a member name would escape the extraction directory, or ``None`` if it is a plain relative path."""
    if not name:
        return "empty name"
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive:
        return "absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "'..' path component"
    return None


def _check_tar_member(archive: Path, member: tarfile.TarInfo) -> None:
    reason = _unsafe_name(member.name)
    if reason is None:
        if member.issym() or member.islnk():
            reason = f"{'symbolic' if member.issym() else 'hard'} link to {member.linkname!r}"
        elif member.ischr() or member.isblk() or member.isfifo():
            reason = "device or FIFO file"
        elif not (member.isfile() or member.isdir()):
            reason = f"unsupported member type {member.type!r}"
    if reason is not None:
        raise DataFormatError(archive, f"refusing to extract member {member.name!r}: {reason}")


def _check_zip_member(archive: Path, info: zipfile.ZipInfo) -> None:
    reason = _unsafe_name(info.filename)
    mode = info.external_attr >> 16
    if reason is None and mode:
        if stat.S_ISLNK(mode):
            reason = "symbolic link"
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            reason = "device, FIFO or socket file"
    if reason is not None:
        raise DataFormatError(archive, f"refusing to extract member {info.filename!r}: {reason}")


def _extract_tar(archive: Path, into: Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tf:
            for member in tf:  # streams: each member is checked, then written, in one pass
                _check_tar_member(archive, member)
                tf.extract(member, into, filter="data")
    except tarfile.FilterError as exc:
        raise DataFormatError(archive, f"refusing to extract member {exc.tarinfo.name!r}: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as exc:
        raise DataFormatError(archive, f"corrupt or unreadable tar archive: {exc}") from None


def _extract_zip(archive: Path, into: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_zip_member(archive, info)
            for info in infos:
                zf.extract(info, into)  # reads through the CRC check
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DataFormatError(archive, f"corrupt or unreadable zip archive: {exc}") from None


def extract_archive(archive: str | Path, dest_dir: str | Path, *, reserved: Collection[str] = ()) -> Path:
    """Extract a .tar, .tar.gz/.tgz (also .bz2/.xz) or .zip ``archive`` so its contents lie in ``dest_dir``.

    Guarantees:

    * Every member is checked before it is written: an absolute path, a ``..`` component, a symbolic or hard
      link (tar), a zip member whose external attributes mark it a symlink, device/FIFO files and any other
      non-regular, non-directory member raise :class:`DataFormatError` naming the archive and the member.
      Tar members additionally go through ``tarfile``'s ``filter="data"``.
    * Extraction happens in a temporary sibling of ``dest_dir`` (``.<dest name>.extract-<random>``, a
      :func:`bidl.data.staging.staging_dir`). Only when all members were written is it renamed to
      ``dest_dir`` (atomic) or, if ``dest_dir`` already exists, each top-level entry is renamed into it,
      replacing an existing entry of the same name, except that a top-level entry named in ``reserved``
      (e.g. the download directory) raises :class:`DataFormatError` before anything is moved. On any
      failure the temporary directory is removed and ``dest_dir`` is as it was; the temporary directories
      of earlier extractions into ``dest_dir`` that were killed are removed before extracting.

    Returns ``dest_dir``. A corrupt archive raises :class:`DataFormatError`; an unknown suffix ``ValueError``.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    name = archive.name.lower()
    if name.endswith(_ZIP_SUFFIXES):
        extract = _extract_zip
    elif name.endswith(_TAR_SUFFIXES):
        extract = _extract_tar
    else:
        raise ValueError(f"{archive}: not a supported archive (suffixes: {_TAR_SUFFIXES + _ZIP_SUFFIXES})")
    if not archive.is_file():
        raise DataFormatError(archive, "archive not found")
    with staging_dir(dest_dir.parent, f".{dest_dir.name}.extract-") as stage:
        tmp = stage / "content"  # beside the staging folder's lock file, which must not reach dest_dir
        tmp.mkdir()
        _log(f"extracting {archive} into {dest_dir}")
        extract(archive, tmp)
        clash = sorted(set(reserved) & {entry.name for entry in tmp.iterdir()})
        if clash:
            raise DataFormatError(
                archive, f"top-level member(s) {clash} would replace reserved entries of {dest_dir}"
            )
        if not dest_dir.exists():
            os.replace(tmp, dest_dir)
        else:
            for entry in sorted(tmp.iterdir()):
                target = dest_dir / entry.name
                if target.exists() or target.is_symlink():
                    with staging_dir(dest_dir, f".{entry.name}.old-") as trash:
                        os.replace(target, trash / "content")
                        os.replace(entry, target)
                else:
                    os.replace(entry, target)
    return dest_dir


# ---------------------------------------------------------------------------------------------------------
# manually placed files
# ---------------------------------------------------------------------------------------------------------


def check_placed_files(
    root: str | Path,
    expected: Mapping[str, str | None],
    *,
    dataset: str,
    where_to_get: str,
) -> None:
    """Check that files which cannot be fetched by script were placed under ``root``.

    ``expected`` maps each path relative to ``root`` to its MD5 (or ``None`` when only presence is checked).
    Returns ``None`` when every file exists and matches. Otherwise raises :class:`DownloadError` whose
    message lists the absolute path every file must have, which are missing, which have the wrong MD5
    (expected and actual), and ``where_to_get``.
    """
    root = Path(root).absolute()
    missing: list[str] = []
    mismatched: list[str] = []
    for rel, md5 in expected.items():
        path = root / rel
        if not path.is_file():
            missing.append(f"  {path}" + (f"  (MD5 {md5})" if md5 else ""))
            continue
        if md5 is not None:
            actual = file_digest(path, "md5")
            if actual != md5.lower():
                mismatched.append(f"  {path}: expected MD5 {md5.lower()}, actual {actual}")
    if not missing and not mismatched:
        return
    lines = [
        f"{dataset}: {len(missing) + len(mismatched)} of {len(expected)} required file(s) are not in "
        f"place under {root}; they cannot be downloaded by script."
    ]
    if missing:
        lines += ["Missing:", *missing]
    if mismatched:
        lines += ["Wrong content (replace them):", *mismatched]
    lines.append("Place exactly these files:")
    lines += [f"  {root / rel}" + (f"  (MD5 {md5.lower()})" if md5 else "") for rel, md5 in expected.items()]
    lines.append(f"Where to get them: {where_to_get}")
    raise DownloadError("\n".join(lines))


def verify_recorded(root: str | Path, files: Sequence, *, dataset: str, fix: str) -> list[str]:
    """Verify the files ``files`` (:class:`bidl.data.sources.RemoteFile`) placed under ``root`` against their
    recorded size and MD5, without network access; return one line per file (``ok``, and what was checked).

    Raises:
        DownloadError: listing every file that is missing, of the wrong size or MD5, or that has no recorded
            checksum (it cannot be verified offline), with ``fix`` (how to record the missing checksums).
    """
    root = Path(root).absolute()
    report, problems, unrecorded = [], [], []
    for rf in files:
        path = root / rf.name
        if not rf.md5 and not rf.sha256:
            unrecorded.append(rf.name)
            report.append(f"  {path}: NOT VERIFIED, no checksum recorded")
            continue
        if not path.is_file():
            problems.append(f"  {path}: missing")
            continue
        problem = _verify(path, rf.md5, rf.sha256, rf.size)
        if problem is not None:
            problems.append(f"  {path}: {problem}")
        else:
            report.append(f"  {path}: ok (size and {'MD5' if rf.md5 else 'SHA256'})")
    if problems or unrecorded:
        bad = len(problems) + len(unrecorded)
        lines = [f"{dataset}: {bad} of {len(files)} file(s) under {root} do not verify."]
        if problems:
            lines += ["Missing or wrong (replace them):", *problems]
        if unrecorded:
            lines.append(f"No checksum is recorded for {unrecorded}: they cannot be verified offline. {fix}")
        raise DownloadError("\n".join(lines))
    return report


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse

    from bidl.data import sources

    parser = argparse.ArgumentParser(
        prog="python -m bidl.data.sources.download",
        description="Write and check the recorded checksums of LUNA16's Zenodo files "
        "(bidl/data/luna16_checksums.json).",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--write-luna16-checksums",
        nargs="?",
        const=str(sources.LUNA16_CHECKSUMS),
        metavar="PATH",
        help="read the MD5 and size of every file of LUNA16's two Zenodo records from Zenodo's API (network "
        "access) and write them to PATH (default: the file shipped with bidl)",
    )
    group.add_argument(
        "--verify-luna16",
        metavar="DIR",
        help="verify the LUNA16 files placed in DIR (e.g. resources/luna16/zenodo/downloads) against the "
        "recorded checksums, without network access",
    )
    args = parser.parse_args(argv)
    try:
        if args.write_luna16_checksums:
            path = sources.write_luna16_checksums(args.write_luna16_checksums)
            recorded = sources.read_recorded_checksums(path)
            print(f"{path}: {len(recorded)} files of LUNA16's Zenodo records recorded")
        else:
            src = sources.get_source("luna16", "zenodo")
            fix = (
                "Record them with 'python -m bidl.data.sources.download --write-luna16-checksums' "
                "(network access)."
            )
            print("\n".join(verify_recorded(args.verify_luna16, src.files, dataset=src.key, fix=fix)))
    except (DownloadError, DataFormatError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
