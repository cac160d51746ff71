"""Zenodo records: the API and download URLs of a record's files and the MD5 and size Zenodo lists for each
(LUNA16's two records are the one use here)."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Mapping


def zenodo_api_url(record: int) -> str:
    """``https://zenodo.org/api/records/<record>``: the record's JSON, with an MD5 per file."""
    return f"https://zenodo.org/api/records/{int(record)}"


def zenodo_file_url(record: int, name: str) -> str:
    """Download URL of one file of a Zenodo record (the form many LUNA16 scripts use)."""
    return f"https://zenodo.org/record/{int(record)}/files/{name}?download=1"


def parse_zenodo_checksums(record_json: Mapping) -> dict[str, dict]:
    """``{file name: {"md5": ..., "size": ...}}`` from a Zenodo record's API JSON.

    Reads ``files[]`` entries with ``key`` (or ``filename``) and ``checksum`` = ``"md5:<32 hex>"`` (size
    from ``size`` / ``filesize`` when present). Entries with another checksum algorithm are left out.

    Raises:
        ValueError: the JSON has no ``files`` list.
    """
    files = record_json.get("files")
    if isinstance(files, Mapping) and isinstance(files.get("entries"), (list, dict)):
        entries = files["entries"]
        files = list(entries.values()) if isinstance(entries, dict) else entries
    if not isinstance(files, list):
        raise ValueError("Zenodo record JSON has no 'files' list")
    out: dict[str, dict] = {}
    for entry in files:
        name = entry.get("key") or entry.get("filename")
        checksum = str(entry.get("checksum", ""))
        match = re.fullmatch(r"md5:([0-9a-fA-F]{32})", checksum)
        if not name or not match:
            continue
        size = entry.get("size", entry.get("filesize"))
        out[str(name)] = {"md5": match.group(1).lower(), "size": int(size) if size is not None else None}
    return out


def fetch_zenodo_checksums(record: int, *, timeout: float = 30.0) -> dict[str, dict]:
    """Ask the Zenodo API for the MD5 and size of every file of ``record`` (network access).

    Returns :func:`parse_zenodo_checksums` of ``GET https://zenodo.org/api/records/<record>``.
    """
    request = urllib.request.Request(zenodo_api_url(record), headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - fixed https URL
        return parse_zenodo_checksums(json.loads(resp.read().decode("utf-8")))
