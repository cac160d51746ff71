"""Fetch (or check) the real files of one data source and mark the result complete.

Layout under ``root``: verified downloads in ``root/downloads/``, archives extracted into ``root/``, and
``root/.complete`` (JSON: dataset, source, layout, every file with its digests) written atomically last,
so its presence means the data are complete and verified.

Use from Snakemake (``script:`` with ``params.dataset``, ``params.source``, ``output.marker`` and ``log``)
or from the command line::

    python scripts/fetch_data.py --dataset dvs128_gesture --source tonic --root resources/dvs128_gesture/real
"""

import argparse
import dataclasses
import datetime as _dt
import json
import os
import sys
import tempfile
from pathlib import Path

from bidl.data.sources import SOURCES, Source, get_source
from bidl.data.sources.download import check_placed_files, download, extract_archive, file_digest, is_archive
from bidl.data.staging import remove_leftovers
from bidl.errors import BidlError, ConfigError, DownloadError
from bidl.io import redirect_output

MARKER_NAME = ".complete"
DOWNLOADS_DIR = "downloads"


def _log(message: str) -> None:
    print(f"[fetch_data] {message}", file=sys.stderr, flush=True)


def _write_json_atomic(path: Path, payload: dict) -> None:
    """Write ``payload`` as JSON to ``path`` via a temporary file in the same directory and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _with_checksums(src: Source) -> Source:
    """``src`` with the MD5 and size of every unchecked file filled in from ``src.checksums``.

    A file that has a checksum already (hard-coded, or recorded in a checksum file shipped with bidl) is
    verified against it without network access; the index is asked only when some file has none. Where the
    index answers, a recorded MD5 that differs from the index's is an error naming the file and both values.
    """
    unchecked = [rf.name for rf in src.files if not (rf.md5 or rf.sha256)]
    if src.checksums is None or not unchecked:
        return src
    try:
        table = src.checksums()
    except Exception as exc:  # network, HTTP or JSON errors of the index
        raise DownloadError(
            f"{src.key}: no checksum is recorded for {unchecked}, and the index that provides them cannot be "
            f"reached ({exc}), so these files cannot be verified; nothing was downloaded.\n{src.instructions}"
        ) from exc
    missing = [name for name in unchecked if name not in table]
    if missing:
        raise DownloadError(f"{src.key}: the checksum index lists no MD5 for {missing}; nothing downloaded")
    stale = [
        f"{rf.name}: recorded MD5 {rf.md5}, the index's {table[rf.name]['md5']}"
        for rf in src.files
        if rf.md5 and rf.name in table and table[rf.name].get("md5") and table[rf.name]["md5"] != rf.md5
    ]
    if stale:
        raise DownloadError(
            f"{src.key}: the recorded checksums disagree with the index: " + "; ".join(stale) + ". The "
            f"record changed or a recorded value is wrong; nothing was downloaded.\n{src.instructions}"
        )
    files = tuple(
        dataclasses.replace(rf, md5=table[rf.name]["md5"], size=table[rf.name].get("size"))
        if rf.name in unchecked
        else rf
        for rf in src.files
    )
    _log(f"{src.key}: checksums of {len(unchecked)} files taken from the index")
    return dataclasses.replace(src, files=files)


def fetch(src: Source, root: Path, *, force: bool = False) -> Path:
    """Obtain every file of ``src`` under ``root`` and return the path of the written ``root/.complete``.

    * A marker already present for the same dataset/source is trusted and returned (unless ``force``).
    * Files without a checksum (hard-coded, or recorded in a file shipped with bidl such as
      ``bidl/data/luna16_checksums.json``, against which a placed copy is verified offline) get theirs
      from ``src.checksums`` (an authoritative index such as Zenodo's API) first, when the source has one;
      a file it does not list, or an index that cannot be reached, stops the fetch before anything is
      downloaded unverified, naming the files without a checksum.
    * Files with URLs are downloaded into ``root/downloads/`` and verified (a verified file already there is
      kept). For a non-manual source a failed download raises :class:`DownloadError` with the source's
      instructions; for a manual source the failure is reported and the file is then expected by hand.
    * For a manual source :func:`check_placed_files` then checks all files in ``root/downloads/`` and raises
      with the exact paths, the missing/mismatched files and the instructions.
    * Archives are extracted into ``root`` (never over ``downloads/`` or the marker); finally the marker is
      written atomically. A stale marker is removed first, so a failure leaves no marker; so are the
      staging folders and temporary files of a run that was killed (:mod:`bidl.data.staging`), while an
      interrupted download's ``.part`` file is kept and continued.
    """
    root = Path(root).absolute()
    downloads = root / DOWNLOADS_DIR
    marker = root / MARKER_NAME
    if marker.is_file() and not force:
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict) and (info.get("dataset"), info.get("source")) == (src.dataset, src.name):
            _log(f"{src.key}: already complete ({marker})")
            return marker
    marker.unlink(missing_ok=True)
    remove_leftovers(root, f".{MARKER_NAME}.")  # the temporary marker of a run killed while writing it
    downloads.mkdir(parents=True, exist_ok=True)
    src = _with_checksums(src)

    verified: set[str] = set()
    mirror_failures: list[str] = []
    for rf in src.files:
        if not rf.urls:
            continue
        dest = downloads / rf.name
        try:
            download(rf.urls, dest, md5=rf.md5, sha256=rf.sha256, size=rf.size)
        except DownloadError as exc:
            if not src.manual:
                raise DownloadError(
                    f"{exc}\n{src.key}: {src.instructions}\n"
                    f"A copy placed by hand at {dest} is used if it verifies."
                ) from None
            _log(f"{src.key}: scripted mirror failed for {rf.name}; it must be placed by hand:\n{exc}")
            mirror_failures.append(f"{rf.name}: {str(exc).splitlines()[0]}")
        else:
            verified.add(rf.name)

    if src.manual:
        where = src.instructions
        if mirror_failures:
            where += " (Scripted mirror failed: " + "; ".join(mirror_failures) + ")"
        expected = {rf.name: (None if rf.name in verified else rf.md5) for rf in src.files}
        check_placed_files(downloads, expected, dataset=src.key, where_to_get=where)

    extracted: list[str] = []
    for rf in src.files:
        if is_archive(rf.name):
            extract_archive(downloads / rf.name, root, reserved=(DOWNLOADS_DIR, MARKER_NAME))
            extracted.append(f"{DOWNLOADS_DIR}/{rf.name}")

    files = []
    for rf in src.files:
        path = downloads / rf.name
        files.append(
            {
                "name": f"{DOWNLOADS_DIR}/{rf.name}",
                "size": path.stat().st_size,
                "md5": rf.md5 if rf.md5 is not None else file_digest(path, "md5"),
                "sha256": rf.sha256,
            }
        )
    payload = {
        "dataset": src.dataset,
        "source": src.name,
        "layout": src.layout,
        "files": files,
        "extracted_archives": extracted,
        "contents": sorted(p.name for p in root.iterdir() if p.name not in (DOWNLOADS_DIR, MARKER_NAME)),
        "completed_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    _write_json_atomic(marker, payload)
    _log(f"{src.key}: complete; marker written to {marker}")
    return marker


def main(dataset: str, source: str, root: Path, *, force: bool = False) -> Path:
    """Fetch source ``source`` of ``dataset`` into ``root``; returns the marker path ``root/.complete``.

    Raises :class:`bidl.errors.ConfigError` for an unknown dataset/source and :class:`DownloadError` /
    :class:`bidl.errors.DataFormatError` when the data cannot be obtained or verified.
    """
    return fetch(get_source(dataset, source), Path(root), force=force)


def _cli(argv: list[str] | None = None) -> int:
    choices = ", ".join(f"{d}/{s}" for d in sorted(SOURCES) for s in sorted(SOURCES[d]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=f"known sources: {choices}")
    parser.add_argument("--dataset", required=True, help="dataset key, e.g. dvs128_gesture")
    parser.add_argument("--source", required=True, help="source name, e.g. tonic or ibm")
    parser.add_argument("--root", required=True, type=Path, help="target directory (marker: ROOT/.complete)")
    parser.add_argument("--force", action="store_true", help="ignore an existing marker and check again")
    args = parser.parse_args(argv)
    try:
        marker = main(args.dataset, args.source, args.root, force=args.force)
    except BidlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(marker)
    return 0


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        marker = Path(smk.output.marker)
        if marker.name != MARKER_NAME:
            raise ConfigError(f"output.marker {marker}: must be named ROOT/{MARKER_NAME}")
        main(smk.params.dataset, smk.params.source, marker.parent)


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    sys.exit(_cli())
