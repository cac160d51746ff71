"""Declarative registry of the real data sources the pipeline can fetch or check.

Each dataset has one or more named :class:`Source` entries; a source lists its :class:`RemoteFile` items
(file name, mirror URLs in the order they are tried, checksums). ``scripts/fetch_data.py`` turns a source
into downloads (:func:`bidl.data.sources.download.download`), archive extraction and, for ``manual``
sources, a check of files the user placed by hand (``check_placed_files``). Adding a dataset means appending
``Source`` objects to ``_ALL_SOURCES`` below; the machinery does not change.

Checksums and URLs are those hard-coded by the libraries that download these datasets; LUNA16's, which no
library hard-codes, are kept in ``bidl/data/luna16_checksums.json`` (see :func:`read_recorded_checksums`).
Every file is verified against them before it is used.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bidl.data.sources import zenodo
from bidl.errors import ConfigError, DownloadError
from bidl.io import atomic_write_text

__all__ = [
    "LUNA16_CHECKSUMS",
    "LUNA16_MALIGNANCY",
    "SOURCES",
    "RemoteFile",
    "Source",
    "figshare_urls",
    "get_source",
    "luna16_files",
    "read_recorded_checksums",
    "write_luna16_checksums",
]

log = logging.getLogger(__name__)

_MD5 = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def figshare_urls(file_id: int) -> tuple[str, ...]:
    """Scriptable URLs of a figshare file, in the order to try them.

    ``figshare.com/ndownloader/files/<id>`` sits behind an AWS WAF challenge (HTTP 202) since 2026; the API
    endpoint is tried first and the ``ndownloader.figshare.com`` host second.
    """
    return (
        f"https://api.figshare.com/v2/file/download/{file_id}",
        f"https://ndownloader.figshare.com/files/{file_id}",
    )


@dataclass(frozen=True)
class RemoteFile:
    """One file of a source.

    ``name`` is the file's path relative to the download directory; ``urls`` are mirrors tried in order
    (empty for a file that can only be placed by hand); ``md5``/``sha256``/``size`` are what the file must
    match (``None``: not checked). Validated on construction.
    """

    name: str
    urls: tuple[str, ...]
    md5: str | None
    sha256: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        p = PurePosixPath(self.name)
        if not self.name or p.is_absolute() or ".." in p.parts or "\\" in self.name:
            raise ConfigError(f"RemoteFile.name {self.name!r}: must be a plain relative path")
        if not isinstance(self.urls, tuple) or not all(isinstance(u, str) and u for u in self.urls):
            raise ConfigError(f"RemoteFile {self.name!r}: urls must be a tuple of non-empty strings")
        if self.md5 is not None and not _MD5.match(self.md5):
            raise ConfigError(f"RemoteFile {self.name!r}: md5 {self.md5!r} is not 32 lower-case hex digits")
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ConfigError(f"RemoteFile {self.name!r}: sha256 {self.sha256!r} is not 64 lower-case hex")
        if self.size is not None and self.size < 0:
            raise ConfigError(f"RemoteFile {self.name!r}: negative size {self.size}")


@dataclass(frozen=True)
class Source:
    """A way to obtain one dataset.

    ``manual`` sources cannot be fully scripted: their files are taken from ``urls`` where a mirror exists
    and otherwise must be placed by hand following ``instructions``. ``layout`` names the on-disk layout
    the files produce after extraction, for the readers (e.g. ``ibm_aedat31``, ``tonic_npy``).
    ``checksums``, for sources whose checksums no library hard-codes, returns ``{file name: {"md5": ...,
    "size": ...}}`` from an authoritative index (Zenodo's API); the fetch step fills in every file without
    a checksum from it before downloading, so nothing is kept unverified.
    """

    dataset: str
    name: str
    files: tuple[RemoteFile, ...]
    manual: bool
    homepage: str
    instructions: str
    layout: str
    checksums: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None

    def __post_init__(self) -> None:
        if not self.files:
            raise ConfigError(f"source {self.dataset}/{self.name}: no files")
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ConfigError(f"source {self.dataset}/{self.name}: duplicate file names {names}")
        if not self.manual and any(not f.urls for f in self.files):
            raise ConfigError(f"source {self.key}: a non-manual source needs URLs for all its files")

    @property
    def key(self) -> str:
        """``"<dataset>/<name>"``."""
        return f"{self.dataset}/{self.name}"


# ---------------------------------------------------------------------------------------------------------
# DVS128 Gesture
# ---------------------------------------------------------------------------------------------------------

_IBM_BOX = "https://ibm.ent.box.com/s/3hiq58ww1pbbjrinh367ykfdf60xsfm8/folder/50167556794"

DVS128_GESTURE_IBM = Source(
    dataset="dvs128_gesture",
    name="ibm",
    files=(
        RemoteFile(
            "DvsGesture.tar.gz",
            # snnTorch's Dropbox mirror (snntorch/spikevision/spikedata/dvs_gesture.py); IBM's MD5 applies.
            ("https://www.dropbox.com/s/cct5kyilhtsliup/DvsGesture.tar.gz?dl=1",),
            "8a5c71fb11e24e5ca5b11866ca6c00a1",
        ),
        RemoteFile("gesture_mapping.csv", (), "109b2ae64a0e1f3ef535b18ad7367fd1"),
        RemoteFile("LICENSE.txt", (), "065e10099753156f18f51941e6e44b66"),
        RemoteFile("README.txt", (), "a0663d3b1d8307c329a43d949ee32d19"),
    ),
    manual=True,
    homepage="https://research.ibm.com/interactive/dvsgesture/",
    instructions=(
        "IBM distributes DVS128 Gesture through a Box folder that cannot be downloaded by script: open "
        f"{_IBM_BOX} in a browser and download the four files DvsGesture.tar.gz, gesture_mapping.csv, "
        "LICENSE.txt and README.txt separately (a gesture_mapping.csv taken from inside the tar has been "
        "reported not to match the expected MD5). "
        "DvsGesture.tar.gz (about 3 GB) is first tried from the snnTorch Dropbox mirror; if that mirror is "
        "unreachable or its bytes differ from IBM's MD5, take it from Box. Licence: CC BY 4.0."
    ),
    layout="ibm_aedat31",
)

DVS128_GESTURE_TONIC = Source(
    dataset="dvs128_gesture",
    name="tonic",
    files=(
        RemoteFile("ibmGestureTrain.tar.gz", figshare_urls(38022171), "3a8f0d4120a166bac7591f77409cb105"),
        RemoteFile("ibmGestureTest.tar.gz", figshare_urls(38020584), "56070e45dadaa85fff82e0fbfbc06de5"),
    ),
    manual=False,
    homepage="https://tonic.readthedocs.io/",
    instructions=(
        "tonic's preprocessed copy of DVS128 Gesture on figshare (train about 2.4 GB, test 691 MB): one .npy "
        "(x, y, p, t in ms) per gesture under ibmGesture{Train,Test}/userNN_<lighting>/<label>.npy. If both "
        "figshare hosts refuse scripted access, download https://api.figshare.com/v2/file/download/38022171 "
        "(ibmGestureTrain.tar.gz) and https://api.figshare.com/v2/file/download/38020584 "
        "(ibmGestureTest.tar.gz) in a browser and place them under those names in the download directory; "
        "a placed file is used once its MD5 matches."
    ),
    layout="tonic_npy",
)

# ---------------------------------------------------------------------------------------------------------
# CIFAR10-DVS
# ---------------------------------------------------------------------------------------------------------

#: (class, figshare file id, MD5) of the ten per-class zips of figshare article 4724671, as hard-coded by
#: spikingjelly ``spikingjelly/datasets/cifar10_dvs.py`` and BIDL ``datasets/bidl_cifar10dvs.py``.
_CIFAR10_DVS_ZIPS: tuple[tuple[str, int, str], ...] = (
    ("airplane", 7712788, "0afd5c4bf9ae06af762a77b180354fdd"),
    ("automobile", 7712791, "8438dfeba3bc970c94962d995b1b9bdd"),
    ("bird", 7712794, "a9c207c91c55b9dc2002dc21c684d785"),
    ("cat", 7712812, "52c63c677c2b15fa5146a8daf4d56687"),
    ("deer", 7712815, "b6bf21f6c04d21ba4e23fc3e36c8a4a3"),
    ("dog", 7712818, "f379ebdf6703d16e0a690782e62639c3"),
    ("frog", 7712842, "cad6ed91214b1c7388a5f6ee56d08803"),
    ("horse", 7712851, "e7cbbf77bec584ffbf913f00e682782a"),
    ("ship", 7712836, "41c7bd7d6b251be82557c6cce9a7d5c9"),
    ("truck", 7712839, "89f3922fd147d9aeff89e76a2b0b70a7"),
)

CIFAR10_DVS_FIGSHARE = Source(
    dataset="cifar10_dvs",
    name="figshare",
    files=tuple(RemoteFile(f"{cls}.zip", figshare_urls(fid), md5) for cls, fid, md5 in _CIFAR10_DVS_ZIPS),
    manual=False,
    homepage="https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671",
    instructions=(
        "The original CIFAR10-DVS release (Li et al. 2017): ten per-class zips on figshare, each extracting "
        "to <class>/cifar10_<class>_<i>.aedat (jAER AEDAT 2.0, i = 0..999); about 11 GB in all. If both "
        "figshare hosts refuse scripted access, download https://api.figshare.com/v2/file/download/<id> for "
        "each zip in a browser (ids: "
        + ", ".join(f"{cls}.zip {fid}" for cls, fid, _ in _CIFAR10_DVS_ZIPS)
        + ") and place them under those names in the download directory; a placed file is used once its "
        "MD5 matches. Cite Li et al., Front. Neurosci. 11:309 (2017); figshare licence unverified."
    ),
    layout="cifar10dvs_aedat2",
)

# ---------------------------------------------------------------------------------------------------------
# IMDB Large Movie Review Dataset
# ---------------------------------------------------------------------------------------------------------

IMDB_STANFORD = Source(
    dataset="imdb",
    name="stanford",
    files=(
        RemoteFile(
            "aclImdb_v1.tar.gz",
            ("http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",),
            "7c2ac02c03563afcf9b574c7e56c153a",
            sha256="c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
            size=84125825,
        ),
    ),
    manual=False,
    homepage="https://ai.stanford.edu/~amaas/data/sentiment/",
    instructions=(
        "Maas et al.'s Large Movie Review Dataset v1.0 (84 MB), served over plain HTTP by Stanford; it "
        "extracts to aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt (25,000 + 25,000 reviews). If the "
        "server is unreachable, place a copy of aclImdb_v1.tar.gz (MD5 7c2ac02c03563afcf9b574c7e56c153a) in "
        "the download directory. No licence is stated; cite Maas et al., ACL 2011."
    ),
    layout="aclimdb",
)

# ---------------------------------------------------------------------------------------------------------
# LUNA16
# ---------------------------------------------------------------------------------------------------------

#: (Zenodo record, file names): LUNA16 is split over two records (Zenodo's 50 GB limit).
_LUNA16_RECORDS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        3723295,
        (
            "annotations.csv",
            "candidates.csv",
            "candidates_V2.zip",
            "seg-lungs-LUNA16.zip",
            *(f"subset{k}.zip" for k in range(7)),
        ),
    ),
    (4121926, tuple(f"subset{k}.zip" for k in range(7, 10))),
)


LUNA16_CHECKSUMS = Path(__file__).parents[1] / "luna16_checksums.json"
"""LUNA16's checksums, shipped with the package: ``{"files": {name: {"record", "md5", "size"}}}`` (``md5`` and
``size`` null where not recorded); written from Zenodo's API by :func:`write_luna16_checksums`."""

_WRITE_COMMAND = "python -m bidl.data.sources.download --write-luna16-checksums"


def read_recorded_checksums(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{file name: {"record": int, "md5": str | None, "size": int | None}}`` from a checksum file such as
    :data:`LUNA16_CHECKSUMS`; an entry whose ``md5`` is null is not recorded.

    Raises:
        ConfigError: naming the file (and the entry and key) when it cannot be read, is not JSON, or holds an
            entry whose md5 is not 32 lower-case hex digits, whose size is not a non-negative integer or
            whose record is not a positive integer.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the checksum file: {exc}") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise ConfigError(f"{path}: no 'files' mapping of file name -> {{record, md5, size}}")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in files.items():
        if not isinstance(entry, dict) or set(entry) != {"record", "md5", "size"}:
            raise ConfigError(f"{path}: files.{name}: must hold exactly the keys record, md5, size")
        md5, size, record = entry["md5"], entry["size"], entry["record"]
        if md5 is not None and not (isinstance(md5, str) and _MD5.match(md5)):
            raise ConfigError(f"{path}: files.{name}.md5: {md5!r} is not 32 lower-case hex digits or null")
        if size is not None and (type(size) is not int or size < 0):
            raise ConfigError(f"{path}: files.{name}.size: {size!r} is not a non-negative integer or null")
        if type(record) is not int or record < 1:
            raise ConfigError(f"{path}: files.{name}.record: {record!r} is not a Zenodo record number")
        out[name] = {"record": record, "md5": md5, "size": size}
    return out


def _recorded_luna16(path: Path) -> dict[str, dict[str, Any]]:
    """LUNA16's recorded checksums, or none (with a warning) when the file is not installed."""
    if not path.is_file():
        log.warning("%s is missing: LUNA16 files are verified only against Zenodo's API", path)
        return {}
    return read_recorded_checksums(path)


def _luna16_zenodo_checksums() -> dict[str, dict[str, Any]]:
    """MD5 and size of every file of the two LUNA16 Zenodo records, from the Zenodo API (network)."""
    table: dict[str, dict[str, Any]] = {}
    for record, _ in _LUNA16_RECORDS:
        table.update(zenodo.fetch_zenodo_checksums(record))
    return table


def write_luna16_checksums(path: str | Path = LUNA16_CHECKSUMS) -> Path:
    """Ask Zenodo's API (network access) for the MD5 and size of every file of LUNA16's two records and write
    them to ``path`` (atomically) in the format :func:`read_recorded_checksums` reads.

    Raises:
        ConfigError: the API does not list a file the fetch step downloads (nothing is written).
        DownloadError: the API cannot be reached or answers something else than a record (nothing is
            written).
    """
    path = Path(path)
    files: dict[str, dict[str, Any]] = {}
    for record, names in _LUNA16_RECORDS:
        try:
            table = zenodo.fetch_zenodo_checksums(record)
        except (OSError, ValueError) as exc:  # URLError is an OSError; JSON errors are ValueErrors
            raise DownloadError(
                f"cannot read the checksums of Zenodo record {record} from {zenodo.zenodo_api_url(record)} "
                f"({exc}); {path} was not written"
            ) from exc
        missing = sorted(set(names) - set(table))
        if missing:
            raise ConfigError(f"Zenodo record {record} lists no MD5 for {missing}; {path} was not written")
        for name, entry in table.items():
            files[name] = {"record": record, "md5": entry["md5"], "size": entry.get("size")}
    today = _dt.datetime.now(_dt.UTC).date().isoformat()
    document = {
        "dataset": "luna16",
        "source": "zenodo",
        "description": (
            "MD5 and size in bytes of the files of LUNA16's Zenodo records "
            + " and ".join(str(record) for record, _ in _LUNA16_RECORDS)
            + ", as Zenodo's API lists them (files[].checksum 'md5:...', files[].size). The fetch step "
            "verifies downloaded and placed files against these values without network access. Rewrite this "
            f"file from the API with: {_WRITE_COMMAND}"
        ),
        "provenance": f"Zenodo's API, https://zenodo.org/api/records/<record>, read on {today}.",
        "files": dict(sorted(files.items())),
    }
    return atomic_write_text(path, json.dumps(document, indent=1) + "\n")


def luna16_files(checksum_file: str | Path = LUNA16_CHECKSUMS) -> tuple[RemoteFile, ...]:
    """The files of LUNA16's two Zenodo records, with the MD5 and size recorded in ``checksum_file`` (None
    where not recorded: the fetch step then asks Zenodo's API)."""
    recorded = _recorded_luna16(Path(checksum_file))
    files = []
    for record, names in _LUNA16_RECORDS:
        for name in names:
            entry = recorded.get(name, {"md5": None, "size": None})
            md5 = entry["md5"]
            url = zenodo.zenodo_file_url(record, name)
            files.append(RemoteFile(name, (url,), md5, size=entry["size"] if md5 else None))
    return tuple(files)


#: The malignancy labels (paper section 5.1.1: malignant vs benign nodules). LUNA16 has none; LIDC-IDRI's four
#: radiologists rated each nodule 1-5. deep-learning-with-pytorch/dlwpt-code publishes LUNA16's annotations
#: matched to those ratings with pylidc (its generate_annotations_with_malignancy.ipynb): 1182 of LUNA16's
#: 1186 nodules in 600 scans, mal_bool True (at least two readers rated >= 4) for 378 of them, False for 804.
#: The file is fetched from a fixed commit and checked against the SHA-256, MD5 and size recorded here.
LUNA16_MALIGNANCY_COMMIT = "d6c0210143daa133bbdeddaffc8993b1e17b5174"
LUNA16_MALIGNANCY = RemoteFile(
    "annotations_with_malignancy.csv",
    (
        "https://raw.githubusercontent.com/deep-learning-with-pytorch/dlwpt-code/"
        f"{LUNA16_MALIGNANCY_COMMIT}/data/part2/luna/annotations_with_malignancy.csv",
    ),
    md5="cc423c226e5dc9848514ed06d9b7001d",
    sha256="d29a49d0a72aecfacbcce91587691005f19dfb361708e72111e58d944f36ee2a",
    size=268015,
)

LUNA16_ZENODO = Source(
    dataset="luna16",
    name="zenodo",
    files=(*luna16_files(), LUNA16_MALIGNANCY),
    manual=False,
    homepage="https://luna16.grand-challenge.org/Data/",
    instructions=(
        "LUNA16 on Zenodo, records 3723295 (csv files, lung masks, subset0-6) and 4121926 (subset7-9), "
        "about 66 GB, no login. Their MD5s and sizes are recorded in bidl/data/luna16_checksums.json, "
        "so that a downloaded or placed file is verified without network access; a file whose MD5 is not "
        "recorded there (null) is verified against the Zenodo API (https://zenodo.org/api/records/<record>, "
        f"files[].checksum 'md5:...'), read before downloading. '{_WRITE_COMMAND}' (network access) "
        "rewrites the file from the API. A file placed by hand in the download directory is used once it "
        "matches. Some subset zips are reported to fail with plain unzip; '7z x' or 'zip -FFv' repair them. "
        "Extracted layout: subsetK/<seriesuid>.mhd/.raw, seg-lungs-LUNA16/<seriesuid>.mhd/.zraw "
        "(zlib-compressed), csv files in downloads/. Licence CC BY 4.0 (LIDC-IDRI: CC BY 3.0). The "
        "malignancy labels, "
        "annotations_with_malignancy.csv (LUNA16's nodules with the LIDC-IDRI readers' ratings), come from "
        f"GitHub, deep-learning-with-pytorch/dlwpt-code at commit {LUNA16_MALIGNANCY_COMMIT} "
        "(the repository states no licence; the data derive from LUNA16 and LIDC-IDRI), verified against the "
        "SHA-256 recorded in bidl/data/sources/registry.py."
    ),
    layout="luna16_mhd",
    checksums=_luna16_zenodo_checksums,
)

# ---------------------------------------------------------------------------------------------------------
# 20BN-Jester v1
# ---------------------------------------------------------------------------------------------------------

JESTER_QUALCOMM = Source(
    dataset="jester",
    name="qualcomm",
    files=tuple(
        RemoteFile(name, (), None)
        for name in (
            "20bn-jester-download-package-labels.zip",
            *(f"20bn-jester-v1-{k:02d}.zip" for k in range(23)),
        )
    ),
    manual=True,
    homepage="https://www.qualcomm.com/developer/software/jester-dataset",
    instructions=(
        "Jester is distributed by Qualcomm after a free registration/login "
        "(https://www.qualcomm.com/developer/software/jester-dataset, formerly "
        "https://developer.qualcomm.com/software/ai-datasets/jester); it cannot be downloaded by script. "
        "Download the 24 archives 20bn-jester-download-package-labels.zip and 20bn-jester-v1-00.zip ... "
        "20bn-jester-v1-22.zip (about 23 GB) into the download directory; they are extracted next to it and "
        "the tar parts 20bn-jester-v1-?? inside them are joined by the preprocessing step "
        "(bidl.data.jester.unpack_qualcomm_parts). The reader needs 20bn-jester-v1/<id>/%05d.jpg and "
        "jester-v1-{labels,train,validation}.csv or labels/{labels,train,validation}.csv. No checksums "
        "are published. Licence: Qualcomm's terms; do not redistribute."
    ),
    layout="jester_20bn",
)

# ---------------------------------------------------------------------------------------------------------
# RGB-gesture (the BIDL authors' own recordings; not public)
# ---------------------------------------------------------------------------------------------------------

RGB_GESTURE_AUTHORS = Source(
    dataset="rgb_gesture",
    name="authors",
    files=(RemoteFile("rgb_gesture.zip", (), None),),
    manual=True,
    homepage="https://github.com/LynxiTech/BIDL",
    instructions=(
        "The RGB-gesture dataset of the BIDL paper (Wu et al. 2023, section 5.1.1: 10 gestures, ordinary "
        "camera, 25 fps, 760 training + 102 validation clips) is NOT public. To use recordings of your own, "
        "zip the folders train/<class>/<clip>/%05d.jpg and val/<class>/<clip>/%05d.jpg (grey or RGB JPEG "
        "frames at 25 fps; optionally classes.txt with the class names in label order) into "
        "rgb_gesture.zip and place it in the download directory. Otherwise use the generated stand-in."
    ),
    layout="rgb_gesture_jpeg",
)

# Append new Source objects here (Jester, LUNA16, ...).
_ALL_SOURCES: tuple[Source, ...] = (
    DVS128_GESTURE_IBM,
    DVS128_GESTURE_TONIC,
    CIFAR10_DVS_FIGSHARE,
    IMDB_STANFORD,
    LUNA16_ZENODO,
    JESTER_QUALCOMM,
    RGB_GESTURE_AUTHORS,
)


def _build_registry(sources: tuple[Source, ...]) -> dict[str, dict[str, Source]]:
    registry: dict[str, dict[str, Source]] = {}
    for src in sources:
        by_name = registry.setdefault(src.dataset, {})
        if src.name in by_name:
            raise ConfigError(f"duplicate data source {src.key}")
        by_name[src.name] = src
    return registry


#: ``SOURCES[dataset][source_name]``; a constant built once at import, never mutated.
SOURCES: dict[str, dict[str, Source]] = _build_registry(_ALL_SOURCES)


def get_source(dataset: str, name: str) -> Source:
    """Return the source ``name`` of ``dataset``; raises :class:`ConfigError` naming an unknown key and the
    known alternatives."""
    if dataset not in SOURCES:
        raise ConfigError(f"unknown dataset {dataset!r} for data sources; known: {sorted(SOURCES)}")
    by_name = SOURCES[dataset]
    if name not in by_name:
        raise ConfigError(f"unknown source {name!r} for dataset {dataset!r}; known: {sorted(by_name)}")
    return by_name[name]
