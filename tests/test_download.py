"""Offline tests of bidl.data.sources.download, bidl.data.sources and scripts/fetch_data.py.

A local HTTP server on 127.0.0.1 (port 0) serves byte strings with Range support and can simulate a
connection dropped half way, a figshare-style WAF answer (HTTP 202 + x-amzn-waf-action), an empty body,
a server that ignores Range, and wrong content.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import json
import re
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bidl.data.sources import SOURCES, RemoteFile, Source, get_source
from bidl.data.sources import download as dl
from bidl.data.sources.download import (
    check_placed_files,
    download,
    extract_archive,
    file_digest,
)
from bidl.errors import ConfigError, DataFormatError, DownloadError

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) * 64  # 16 KiB
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
WRONG = bytes(reversed(PAYLOAD))
WRONG_MD5 = hashlib.md5(WRONG).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# local HTTP server
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Route:
    body: bytes
    kind: str = "ok"  # ok | drop | waf | empty | norange | stall
    drops: int = 1  # for kind == "drop": how many answers are cut half way


@dataclass
class Seen:
    path: str
    range: str | None
    user_agent: str | None


@dataclass
class Server:
    base: str
    routes: dict[str, Route]
    seen: list[Seen] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: a cut answer ends at connection close

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the default log
        pass

    def do_GET(self) -> None:
        state: Server = self.server.state  # type: ignore[attr-defined]
        state.seen.append(Seen(self.path, self.headers.get("Range"), self.headers.get("User-Agent")))
        route = state.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        if route.kind == "waf":
            self.send_response(202)
            self.send_header("x-amzn-waf-action", "challenge")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"" if route.kind == "empty" else route.body
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and route.kind != "norange":
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if route.kind == "stall":  # half the answer, then nothing until the client goes away
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            time.sleep(30)
            return
        if route.kind == "drop" and route.drops > 0:
            route.drops -= 1
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            return  # the connection closes short of Content-Length
        self.wfile.write(payload)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(dl, "RETRY_BASE_DELAY", 0.0)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = Server(base=f"http://127.0.0.1:{httpd.server_address[1]}", routes={})
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---------------------------------------------------------------------------------------------------------
# download()
# ---------------------------------------------------------------------------------------------------------


def test_download_verifies_and_lands_atomically(server: Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Route(PAYLOAD)
    dest = tmp_path / "sub" / "f.bin"
    out = download(server.url("/f.bin"), dest, md5=PAYLOAD_MD5, sha256=PAYLOAD_SHA256, size=len(PAYLOAD))
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ["f.bin"]  # no .part left
    (seen,) = server.requests("/f.bin")
    assert seen.range is None and seen.user_agent == "bidl-downloader"
    assert file_digest(dest, "md5") == PAYLOAD_MD5 and file_digest(dest, "sha256") == PAYLOAD_SHA256


@pytest.mark.fault
def test_dropped_connection_resumes_with_range(server: Server, tmp_path: Path, fault_log) -> None:
    server.routes["/drop.bin"] = Route(PAYLOAD, kind="drop")
    dest = tmp_path / "drop.bin"
    download(server.url("/drop.bin"), dest, md5=PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD and _leftovers(tmp_path) == ["drop.bin"]
    first, second = server.requests("/drop.bin")
    assert first.range is None
    assert second.range == f"bytes={len(PAYLOAD) // 2}-"
    fault_log(
        "download",
        "connection dropped half way through the file",
        f"resumed with Range: {second.range}; the file verified (MD5) and no .part is left",
    )


@pytest.mark.fault
def test_a_killed_download_resumes_where_it_stopped(server: Server, tmp_path: Path, fault_log) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB: more than the write buffer, so part of it reaches the disk
    big_md5 = hashlib.md5(big).hexdigest()
    server.routes["/k.bin"] = Route(big, kind="stall")
    dest, part = tmp_path / "k.bin", tmp_path / "k.bin.part"
    code = f"from bidl.data.sources.download import download; download({server.url('/k.bin')!r}, {str(dest)!r}, md5={big_md5!r}, chunk=4096)"  # noqa: E501
    process = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size >= len(big) // 4):
        assert process.poll() is None and time.monotonic() < deadline, "the download never got half way"
        time.sleep(0.01)
    process.kill()  # SIGKILL half way
    process.wait(timeout=30)
    held = part.stat().st_size
    server.routes["/k.bin"] = Route(big)
    download(server.url("/k.bin"), dest, md5=big_md5)
    assert dest.read_bytes() == big and not part.exists()
    assert server.requests("/k.bin")[-1].range == f"bytes={held}-"
    fault_log(
        "download",
        "SIGKILL of the downloading process half way through a 1 MiB file",
        f"the rerun continued the .part file with Range: bytes={held}- and the file verified (MD5)",
    )


def test_existing_part_is_continued_with_range(server: Server, tmp_path: Path) -> None:
    server.routes["/p.bin"] = Route(PAYLOAD)
    dest = tmp_path / "p.bin"
    (tmp_path / "p.bin.part").write_bytes(PAYLOAD[:1000])
    download(server.url("/p.bin"), dest, md5=PAYLOAD_MD5, size=len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert [s.range for s in server.requests("/p.bin")] == ["bytes=1000-"]
    assert not (tmp_path / "p.bin.part").exists()


def test_server_ignoring_range_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    server.routes["/nr.bin"] = Route(PAYLOAD, kind="norange")
    dest = tmp_path / "nr.bin"
    (tmp_path / "nr.bin.part").write_bytes(b"garbage-prefix")
    download(server.url("/nr.bin"), dest, md5=PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD
    assert [s.range for s in server.requests("/nr.bin")] == [f"bytes={len(b'garbage-prefix')}-"]


@pytest.mark.fault
def test_wrong_checksum_is_refetched_then_raises(server: Server, tmp_path: Path, fault_log) -> None:
    server.routes["/bad.bin"] = Route(WRONG)
    dest = tmp_path / "bad.bin"
    with pytest.raises(DownloadError) as info:
        download(server.url("/bad.bin"), dest, md5=PAYLOAD_MD5)
    message = str(info.value)
    assert "bad.bin" in message and PAYLOAD_MD5 in message and WRONG_MD5 in message
    assert len(server.requests("/bad.bin")) == 2  # first fetch + one refetch from scratch
    assert all(s.range is None for s in server.requests("/bad.bin"))
    assert not dest.exists() and _leftovers(tmp_path) == []
    fault_log("download", "server sends wrong bytes (MD5 mismatch), twice", info.value)


@pytest.mark.fault
def test_stale_part_with_wrong_bytes_is_discarded_and_refetched(
    server: Server, tmp_path: Path, fault_log
) -> None:
    server.routes["/s.bin"] = Route(PAYLOAD)
    dest = tmp_path / "s.bin"
    (tmp_path / "s.bin.part").write_bytes(WRONG[:500])
    download(server.url("/s.bin"), dest, md5=PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD
    assert [s.range for s in server.requests("/s.bin")] == ["bytes=500-", None]
    fault_log(
        "download",
        "a left-over .part file holds wrong bytes",
        "continued with Range, the checksum failed, the part was discarded and fetched again from byte 0: "
        "the file verified",
    )


@pytest.mark.parametrize("kind", ["waf", "empty"])
def test_waf_or_empty_answer_falls_back_to_next_mirror(server: Server, tmp_path: Path, kind: str) -> None:
    server.routes["/blocked"] = Route(PAYLOAD, kind=kind)
    server.routes["/mirror"] = Route(PAYLOAD)
    dest = tmp_path / "m.bin"
    download([server.url("/blocked"), server.url("/mirror")], dest, md5=PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests("/blocked")) == 1  # refused at once, not retried
    assert len(server.requests("/mirror")) == 1


def test_all_mirrors_refused_raises_naming_each(server: Server, tmp_path: Path) -> None:
    server.routes["/blocked"] = Route(PAYLOAD, kind="waf")
    dest = tmp_path / "x.bin"
    with pytest.raises(DownloadError) as info:
        download([server.url("/blocked"), server.url("/missing")], dest, md5=PAYLOAD_MD5, retries=1)
    message = str(info.value)
    assert "x.bin" in message and "/blocked" in message and "/missing" in message and "404" in message
    assert "x-amzn-waf-action" in message
    assert not dest.exists()


def test_existing_verified_file_is_not_downloaded(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "have.bin"
    dest.write_bytes(PAYLOAD)
    assert download("http://127.0.0.1:9/never", dest, md5=PAYLOAD_MD5, size=len(PAYLOAD)) == dest
    assert server.seen == []


def test_existing_unverified_file_is_replaced(server: Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Route(PAYLOAD)
    dest = tmp_path / "f.bin"
    dest.write_bytes(WRONG)
    download(server.url("/f.bin"), dest, md5=PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD and len(server.seen) == 1


@pytest.mark.fault
def test_wrong_announced_size_is_rejected(server: Server, tmp_path: Path, fault_log) -> None:
    server.routes["/f.bin"] = Route(PAYLOAD)
    with pytest.raises(DownloadError, match=f"expected {len(PAYLOAD) + 1} bytes") as info:
        download(server.url("/f.bin"), tmp_path / "f.bin", size=len(PAYLOAD) + 1)
    assert _leftovers(tmp_path) == []
    fault_log("download", "the server's file is shorter than the index says", info.value)


# ---------------------------------------------------------------------------------------------------------
# extract_archive()
# ---------------------------------------------------------------------------------------------------------


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return path


def _tarinfo(name: str, type_: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = linkname
    return info


def _zip(path: Path, members: list[zipfile.ZipInfo | tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for m in members:
            if isinstance(m, zipfile.ZipInfo):
                zf.writestr(m, b"/etc/passwd")
            else:
                zf.writestr(m[0], m[1])
    return path


def _zip_symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return info


UNSAFE = {
    "tar-absolute": lambda p: _tar(p / "a.tar.gz", [("ok.txt", b"x"), ("/tmp/evil.txt", b"x")]),
    "tar-dotdot": lambda p: _tar(p / "a.tar.gz", [("ok.txt", b"x"), ("d/../../evil.txt", b"x")]),
    "tar-symlink": lambda p: _tar(p / "a.tgz", [("ok.txt", b"x"), _tarinfo("link", tarfile.SYMTYPE, "/etc")]),
    "tar-hardlink": lambda p: _tar(p / "a.tgz", [("ok.txt", b"x"), _tarinfo("hl", tarfile.LNKTYPE, "ok")]),
    "tar-device": lambda p: _tar(p / "a.tar", [("ok.txt", b"x"), _tarinfo("dev", tarfile.CHRTYPE)]),
    "zip-absolute": lambda p: _zip(p / "a.zip", [("ok.txt", b"x"), ("/evil.txt", b"x")]),
    "zip-dotdot": lambda p: _zip(p / "a.zip", [("ok.txt", b"x"), ("../evil.txt", b"x")]),
    "zip-symlink": lambda p: _zip(p / "a.zip", [("ok.txt", b"x"), _zip_symlink("link")]),
}
UNSAFE_MEMBER = {
    "tar-absolute": "/tmp/evil.txt",
    "tar-dotdot": "d/../../evil.txt",
    "tar-symlink": "link",
    "tar-hardlink": "hl",
    "tar-device": "dev",
    "zip-absolute": "/evil.txt",
    "zip-dotdot": "../evil.txt",
    "zip-symlink": "link",
}


@pytest.mark.fault
@pytest.mark.parametrize("case", sorted(UNSAFE))
@pytest.mark.parametrize("dest_exists", [False, True])
def test_unsafe_archives_are_refused(tmp_path: Path, case: str, dest_exists: bool, fault_log) -> None:
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    archive = UNSAFE[case](src_dir)
    work = tmp_path / "work"
    work.mkdir()
    dest = work / "out"
    if dest_exists:
        dest.mkdir()
    with pytest.raises(DataFormatError) as info:
        extract_archive(archive, dest)
    message = str(info.value)
    assert str(archive) in message and repr(UNSAFE_MEMBER[case]) in message
    assert _leftovers(work) == (["out"] if dest_exists else [])  # no temporary directory left
    if dest_exists:
        assert _leftovers(dest) == []
    assert not (tmp_path / "evil.txt").exists()
    if not dest_exists:
        fault_log("archive extraction", f"unsafe archive: {case} member", info.value)


def test_safe_tar_gz_and_zip_extract(tmp_path: Path) -> None:
    members = [("top/a.txt", b"alpha"), ("top/sub/b.bin", PAYLOAD), ("c.txt", b"gamma")]
    tgz = _tar(tmp_path / "ok.tgz", members)
    zp = _zip(tmp_path / "ok.zip", members)
    for archive in (tgz, zp):
        dest = tmp_path / f"out-{archive.suffix}"
        assert extract_archive(archive, dest) == dest
        assert (dest / "top" / "a.txt").read_bytes() == b"alpha"
        assert (dest / "top" / "sub" / "b.bin").read_bytes() == PAYLOAD
        assert (dest / "c.txt").read_bytes() == b"gamma"
    assert not [p for p in tmp_path.iterdir() if ".extract-" in p.name]


def test_extract_into_existing_dir_replaces_entries_and_keeps_others(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    (dest / "top").mkdir(parents=True)
    (dest / "top" / "stale.txt").write_text("old")
    (dest / "downloads").mkdir()
    (dest / "downloads" / "keep.bin").write_bytes(b"k")
    extract_archive(_tar(tmp_path / "t.tar.gz", [("top/a.txt", b"new")]), dest)
    assert _leftovers(dest) == ["downloads", "top"]
    assert _leftovers(dest / "top") == ["a.txt"]
    assert (dest / "downloads" / "keep.bin").read_bytes() == b"k"
    with pytest.raises(DataFormatError, match="reserved"):
        extract_archive(_zip(tmp_path / "z.zip", [("downloads/x", b"x")]), dest, reserved=("downloads",))
    assert (dest / "downloads" / "keep.bin").exists() and not (dest / "downloads" / "x").exists()


@pytest.mark.fault
def test_corrupt_archive_raises_data_format_error(tmp_path: Path, fault_log) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataFormatError, match="bad.tar.gz") as info:
        extract_archive(bad, tmp_path / "out")
    assert _leftovers(tmp_path) == ["bad.tar.gz"]
    fault_log("archive extraction", "a corrupt .tar.gz (not gzip data)", info.value)


# ---------------------------------------------------------------------------------------------------------
# check_placed_files()
# ---------------------------------------------------------------------------------------------------------


def test_check_placed_files_names_missing_and_mismatched(tmp_path: Path) -> None:
    root = tmp_path / "downloads"
    root.mkdir()
    (root / "good.txt").write_bytes(PAYLOAD)
    (root / "bad.txt").write_bytes(WRONG)
    expected = {
        "good.txt": PAYLOAD_MD5,
        "bad.txt": PAYLOAD_MD5,
        "missing.tar.gz": PAYLOAD_MD5,
        "any.csv": None,
    }
    with pytest.raises(DownloadError) as info:
        check_placed_files(root, expected, dataset="demo", where_to_get="https://example.org/box")
    message = str(info.value)
    missing_part = message.split("Missing:")[1].split("Wrong content")[0]
    assert str(root / "missing.tar.gz") in missing_part and str(root / "any.csv") in missing_part
    assert str(root / "good.txt") not in missing_part
    assert f"{root / 'bad.txt'}: expected MD5 {PAYLOAD_MD5}, actual {WRONG_MD5}" in message
    assert "demo" in message and "https://example.org/box" in message
    (root / "bad.txt").write_bytes(PAYLOAD)
    (root / "missing.tar.gz").write_bytes(PAYLOAD)
    (root / "any.csv").write_text("x")
    check_placed_files(root, expected, dataset="demo", where_to_get="-")


# ---------------------------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------------------------


def test_get_source_unknown_names_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="no_such_dataset"):
        get_source("no_such_dataset", "tonic")
    with pytest.raises(ConfigError, match="'nope'.*dvs128_gesture"):
        get_source("dvs128_gesture", "nope")


def test_dvs128_gesture_sources() -> None:
    ibm, tonic = get_source("dvs128_gesture", "ibm"), get_source("dvs128_gesture", "tonic")
    assert ibm.manual and ibm.layout == "ibm_aedat31" and "ibm.ent.box.com" in ibm.instructions
    md5s = {f.name: f.md5 for f in ibm.files}
    assert md5s["DvsGesture.tar.gz"] == "8a5c71fb11e24e5ca5b11866ca6c00a1" and len(md5s) == 4
    assert ibm.files[0].urls == ("https://www.dropbox.com/s/cct5kyilhtsliup/DvsGesture.tar.gz?dl=1",)
    assert not tonic.manual and tonic.layout == "tonic_npy"
    train = tonic.files[0]
    assert train.urls == (
        "https://api.figshare.com/v2/file/download/38022171",
        "https://ndownloader.figshare.com/files/38022171",
    )
    assert {f.md5 for f in tonic.files} == {
        "3a8f0d4120a166bac7591f77409cb105",
        "56070e45dadaa85fff82e0fbfbc06de5",
    }
    assert all(s.dataset == ds and s.name == name for ds, by in SOURCES.items() for name, s in by.items())
    with pytest.raises(ConfigError):
        RemoteFile("../x", ("u",), None)
    with pytest.raises(ConfigError):
        RemoteFile("x", ("u",), "not-an-md5")


# ---------------------------------------------------------------------------------------------------------
# scripts/fetch_data.py
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fetch_data():
    spec = importlib.util.spec_from_file_location("fetch_data_under_test", REPO / "scripts" / "fetch_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fetch_downloads_extracts_and_writes_marker(server: Server, tmp_path: Path, fetch_data) -> None:
    archive = _tar(tmp_path / "arch.tar.gz", [("data/x.txt", b"xx")]).read_bytes()
    server.routes["/arch.tar.gz"] = Route(archive)
    server.routes["/notes.txt"] = Route(PAYLOAD)
    src = Source(
        "demo",
        "web",
        (
            RemoteFile(
                "arch.tar.gz",
                (server.url("/blocked"), server.url("/arch.tar.gz")),
                hashlib.md5(archive).hexdigest(),
            ),
            RemoteFile("notes.txt", (server.url("/notes.txt"),), None),
        ),
        manual=False,
        homepage="-",
        instructions="get it",
        layout="demo",
    )
    root = tmp_path / "real"
    marker = fetch_data.fetch(src, root)
    assert marker == root / ".complete"
    info = json.loads(marker.read_text())
    assert (info["dataset"], info["source"], info["layout"]) == ("demo", "web", "demo")
    assert {f["name"]: f["md5"] for f in info["files"]} == {
        "downloads/arch.tar.gz": hashlib.md5(archive).hexdigest(),
        "downloads/notes.txt": PAYLOAD_MD5,
    }
    assert (root / "data" / "x.txt").read_bytes() == b"xx"
    n = len(server.seen)
    assert fetch_data.fetch(src, root) == marker and len(server.seen) == n  # marker trusted


def test_fetch_manual_source_falls_back_to_placed_files(server: Server, tmp_path: Path, fetch_data) -> None:
    archive = _tar(tmp_path / "arch.tar.gz", [("DvsGesture/a.aedat", b"aa")]).read_bytes()
    server.routes["/mirror.tar.gz"] = Route(WRONG)
    src = Source(
        "demo",
        "box",
        (
            RemoteFile("arch.tar.gz", (server.url("/mirror.tar.gz"),), hashlib.md5(archive).hexdigest()),
            RemoteFile("README.txt", (), PAYLOAD_MD5),
        ),
        manual=True,
        homepage="-",
        instructions="open https://box.example/folder",
        layout="demo",
    )
    root = tmp_path / "real"
    with pytest.raises(DownloadError) as info:
        fetch_data.fetch(src, root)
    message = str(info.value)
    assert str(root / "downloads" / "arch.tar.gz") in message
    assert str(root / "downloads" / "README.txt") in message
    assert "https://box.example/folder" in message and "Scripted mirror failed" in message
    assert not (root / ".complete").exists()
    (root / "downloads" / "arch.tar.gz").write_bytes(archive)
    (root / "downloads" / "README.txt").write_bytes(PAYLOAD)
    fetch_data.fetch(src, root)
    assert (root / "DvsGesture" / "a.aedat").read_bytes() == b"aa" and (root / ".complete").is_file()


def test_fetch_main_unknown_source_raises(fetch_data, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'nope'"):
        fetch_data.main("dvs128_gesture", "nope", tmp_path)


def test_fetch_takes_missing_checksums_from_the_index(server: Server, tmp_path: Path, fetch_data) -> None:
    server.routes["/a.bin"] = Route(PAYLOAD)
    calls = []

    def index():
        calls.append(1)
        return {"a.bin": {"md5": PAYLOAD_MD5, "size": len(PAYLOAD)}}

    src = Source(
        "demo",
        "zenodo",
        (RemoteFile("a.bin", (server.url("/a.bin"),), None),),
        manual=False,
        homepage="-",
        instructions="see the record",
        layout="demo",
        checksums=index,
    )
    marker = fetch_data.fetch(src, tmp_path / "ok")
    assert calls and json.loads(marker.read_text())["files"][0]["md5"] == PAYLOAD_MD5
    # the index's MD5 is enforced
    wrong = dataclasses.replace(src, checksums=lambda: {"a.bin": {"md5": "0" * 32, "size": None}})
    with pytest.raises(DownloadError):
        fetch_data.fetch(wrong, tmp_path / "wrong")
    assert not (tmp_path / "wrong" / ".complete").exists()

    def offline():
        raise OSError("network unreachable")

    with pytest.raises(DownloadError, match=r"no checksum is recorded for \['a.bin'\].*network unreachable"):
        fetch_data.fetch(dataclasses.replace(src, checksums=offline), tmp_path / "offline")
    assert not (tmp_path / "offline" / "downloads" / "a.bin").exists()
    with pytest.raises(DownloadError, match=r"lists no MD5 for \['a.bin'\]"):
        fetch_data.fetch(dataclasses.replace(src, checksums=lambda: {}), tmp_path / "unlisted")


def test_luna16_zenodo_files_are_verified_against_the_zenodo_api(monkeypatch) -> None:
    src = get_source("luna16", "zenodo")
    assert src.checksums is not None and all(rf.urls for rf in src.files)
    assert {rf.name for rf in src.files} >= {"annotations.csv", "candidates.csv", "seg-lungs-LUNA16.zip"}
    from bidl.data.sources import zenodo

    asked = []

    def fake(record, **_):
        asked.append(record)
        return {rf.name: {"md5": "a" * 32, "size": 1} for rf in src.files}

    monkeypatch.setattr(zenodo, "fetch_zenodo_checksums", fake)
    table = src.checksums()
    assert sorted(asked) == [3723295, 4121926] and set(table) == {rf.name for rf in src.files}


# ---------------------------------------------------------------------------------------------------------
# LUNA16: checksums recorded in a file shipped with bidl, verified offline
# ---------------------------------------------------------------------------------------------------------


def test_the_shipped_luna16_checksums_cover_the_zenodo_files() -> None:
    from bidl.data import sources

    recorded = sources.read_recorded_checksums(sources.LUNA16_CHECKSUMS)
    zenodo = sources.luna16_files()  # the source also holds the malignancy labels, from GitHub
    assert {rf.name for rf in zenodo} <= set(recorded)
    known = {"annotations.csv", *(f"subset{k}.zip" for k in range(10))}
    for rf in zenodo:
        entry = recorded[rf.name]
        assert entry["record"] == (
            4121926 if rf.name in {"subset7.zip", "subset8.zip", "subset9.zip"} else 3723295
        )
        assert (rf.md5, rf.size) == (entry["md5"], entry["size"] if entry["md5"] else None)
        assert (entry["md5"] is not None) == (rf.name in known), rf.name  # the others: not recorded, null
    assert recorded["subset0.zip"] == {
        "record": 3723295,
        "md5": "1065b0f42b8c25cf29260fd924a3c3a2",
        "size": 6811924508,
    }


def _luna16_placed(root: Path) -> dict[str, bytes]:
    """Small stand-ins for the 14 files of LUNA16's Zenodo records, placed in ``root`` (zips that extract)."""
    contents: dict[str, bytes] = {}
    from bidl.data import sources

    for rf in sources.luna16_files():
        if rf.name.endswith(".zip"):
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                zf.writestr(f"{rf.name[:-4]}/part.txt", rf.name)
            contents[rf.name] = buf.getvalue()
        else:
            contents[rf.name] = f"seriesuid,coordX,coordY,coordZ\n{rf.name}\n".encode()
    root.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (root / name).write_bytes(data)
    return contents


def _checksum_file(path: Path, contents: dict[str, bytes], unrecorded: tuple[str, ...] = ()) -> Path:
    files = {
        name: {
            "record": 4121926 if name in {"subset7.zip", "subset8.zip", "subset9.zip"} else 3723295,
            "md5": None if name in unrecorded else hashlib.md5(data).hexdigest(),
            "size": None if name in unrecorded else len(data),
        }
        for name, data in contents.items()
    }
    path.write_text(json.dumps({"dataset": "luna16", "files": files}))
    return path


def _offline():
    raise OSError("network unreachable")


@pytest.mark.fault
def test_luna16_files_placed_by_hand_are_verified_offline(tmp_path: Path, fetch_data, fault_log) -> None:
    from bidl.data import sources

    root = tmp_path / "zenodo"
    contents = _luna16_placed(root / "downloads")
    table = _checksum_file(tmp_path / "luna16_checksums.json", contents)
    src = dataclasses.replace(
        get_source("luna16", "zenodo"), files=sources.luna16_files(table), checksums=_offline
    )
    marker = fetch_data.fetch(src, root)  # Zenodo's API unreachable, and not needed
    info = json.loads(marker.read_text())
    assert {f["name"]: f["md5"] for f in info["files"]} == {
        f"downloads/{name}": hashlib.md5(data).hexdigest() for name, data in contents.items()
    }
    assert (root / "subset9" / "part.txt").read_text() == "subset9.zip"
    fault_log(
        "LUNA16 checksums",
        "the 14 files of the Zenodo records placed by hand; Zenodo's API unreachable",
        f"every file verified against the recorded checksums (size and MD5) without network access; the "
        f"archives were extracted and {marker.name} written",
    )

    damaged = root / "downloads" / "annotations.csv"
    damaged.write_bytes(damaged.read_bytes().replace(b"coordZ", b"coordz"))
    with pytest.raises(DownloadError) as error:
        dl.verify_recorded(root / "downloads", src.files, dataset=src.key, fix="-")
    fault_log(
        "LUNA16 checksums", "a placed annotations.csv with one byte changed, checked offline", error.value
    )
    assert f"{damaged}: MD5 mismatch: expected {hashlib.md5(contents['annotations.csv']).hexdigest()}" in str(
        error.value
    )


@pytest.mark.fault
def test_a_luna16_file_without_a_recorded_checksum_is_named_when_it_cannot_be_verified(
    tmp_path: Path, fetch_data, fault_log
) -> None:
    from bidl.data import sources

    root = tmp_path / "zenodo"
    contents = _luna16_placed(root / "downloads")
    table = _checksum_file(tmp_path / "luna16_checksums.json", contents, unrecorded=("candidates_V2.zip",))
    src = dataclasses.replace(
        get_source("luna16", "zenodo"), files=sources.luna16_files(table), checksums=_offline
    )
    with pytest.raises(DownloadError) as error:
        fetch_data.fetch(src, root)
    fault_log(
        "LUNA16 checksums",
        "no checksum recorded for candidates_V2.zip; Zenodo's API unreachable",
        error.value,
    )
    message = str(error.value)
    assert "no checksum is recorded for ['candidates_V2.zip']" in message and "network unreachable" in message
    assert "--write-luna16-checksums" in message and not (root / ".complete").exists()
    with pytest.raises(DownloadError, match=r"No checksum is recorded for \['candidates_V2.zip'\]"):
        dl.verify_recorded(root / "downloads", src.files, dataset=src.key, fix="-")
    # the real file leaves the three values it lacks visibly unrecorded, and the check command says so
    assert dl._main(["--verify-luna16", str(root / "downloads")]) == 1


def test_write_luna16_checksums_records_the_zenodo_api(tmp_path: Path, monkeypatch) -> None:
    from bidl.data import sources
    from bidl.data.sources import zenodo

    names = {rf.name for rf in get_source("luna16", "zenodo").files}
    part2 = {"subset7.zip", "subset8.zip", "subset9.zip"}
    answers = {
        3723295: {n: {"md5": hashlib.md5(n.encode()).hexdigest(), "size": len(n)} for n in names - part2}
        | {"sampleSubmission.csv": {"md5": "b" * 32, "size": 7}},  # a file the fetch step does not take
        4121926: {n: {"md5": "c" * 32, "size": None} for n in part2},
    }
    monkeypatch.setattr(zenodo, "fetch_zenodo_checksums", lambda record, **_: answers[record])
    path = tmp_path / "luna16_checksums.json"
    assert dl._main(["--write-luna16-checksums", str(path)]) == 0
    recorded = sources.read_recorded_checksums(path)
    assert set(recorded) == names | {"sampleSubmission.csv"}
    assert recorded["subset8.zip"] == {"record": 4121926, "md5": "c" * 32, "size": None}
    assert recorded["annotations.csv"]["md5"] == hashlib.md5(b"annotations.csv").hexdigest()
    files = {rf.name: rf for rf in sources.luna16_files(path)}
    assert (
        files["subset0.zip"].md5 == hashlib.md5(b"subset0.zip").hexdigest()
        and files["subset0.zip"].size == 11
    )

    del answers[4121926]["subset9.zip"]
    with pytest.raises(ConfigError, match=r"4121926 lists no MD5 for \['subset9.zip'\]"):
        sources.write_luna16_checksums(tmp_path / "new.json")

    def unreachable(record, **_):
        raise OSError("no route to host")

    monkeypatch.setattr(zenodo, "fetch_zenodo_checksums", unreachable)
    with pytest.raises(DownloadError, match="cannot read the checksums of Zenodo record 3723295.*no route"):
        sources.write_luna16_checksums(tmp_path / "new.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["luna16_checksums.json"]


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"record": 1, "md5": "ABC", "size": 1}, "files.a.zip.md5"),
        ({"record": 1, "md5": "a" * 32, "size": -1}, "files.a.zip.size"),
        ({"record": "x", "md5": None, "size": None}, "files.a.zip.record"),
        ({"md5": None, "size": None}, "files.a.zip: must hold exactly"),
    ],
)
def test_a_malformed_checksum_file_is_refused_naming_the_key(tmp_path: Path, entry: dict, key: str) -> None:
    from bidl.data import sources

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"files": {"a.zip": entry}}))
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {key}")):
        sources.read_recorded_checksums(path)


def test_a_recorded_checksum_that_the_index_contradicts_stops_the_fetch(tmp_path: Path, fetch_data) -> None:
    src = Source(
        "demo",
        "zenodo",
        (RemoteFile("a.bin", ("http://127.0.0.1:9/a.bin",), "a" * 32), RemoteFile("b.bin", ("x",), None)),
        manual=False,
        homepage="-",
        instructions="rewrite the checksum file",
        layout="demo",
        checksums=lambda: {"a.bin": {"md5": "b" * 32, "size": 1}, "b.bin": {"md5": "c" * 32, "size": 1}},
    )
    with pytest.raises(DownloadError, match=f"a.bin: recorded MD5 {'a' * 32}, the index's {'b' * 32}"):
        fetch_data.fetch(src, tmp_path / "root")
    assert not (tmp_path / "root" / "downloads" / "a.bin").exists()


@pytest.mark.fault
def test_a_killed_extraction_is_removed_by_the_next_one_but_not_one_in_use(tmp_path: Path, fault_log) -> None:
    """Within one process: the staging folder of a live extraction is kept, a dead one's is removed."""
    from bidl.data import staging

    archive = _tar(tmp_path / "a.tar.gz", [("data/x.txt", b"xx")])
    dead = tmp_path / ".real.extract-d3adbe3f"
    (dead / "content" / "data").mkdir(parents=True)
    lock = dead / staging.LOCK_NAME
    lock.write_text("pid=999999999\nhost=elsewhere\n")  # its lock file, no longer locked by anyone
    with staging.staging_dir(tmp_path, ".real.extract-", clean=False) as alive:
        extract_archive(archive, tmp_path / "real")
        assert alive.is_dir() and not dead.exists()
    assert (tmp_path / "real" / "data" / "x.txt").read_bytes() == b"xx"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "real"]
    fault_log(
        "archive extraction",
        "the staging folder of an extraction killed earlier, beside that of one still running",
        f"the next extraction removed {dead.name} (its lock free) and kept {alive.name} (locked, in use)",
    )
