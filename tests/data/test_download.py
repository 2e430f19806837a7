"""`kws data get`: resumable download, SHA-256 check, safe extraction, no-op second run.

Everything runs against an http.server on 127.0.0.1 started here, serving small archives made
here, so no test touches the network.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws.data.download import STATE_DIR, Archive, get, resolve
from kws.errors import KwsError


class Handler(BaseHTTPRequestHandler):
    """Serves `server.files`, honours `Range: bytes=N-`, records every Range header, and cuts
    the first `server.cuts` responses at byte `server.cut_at` of the file (HTTP/1.0: closing
    the connection ends the body early)."""

    def do_GET(self) -> None:
        srv = self.server
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        srv.ranges.append(rng)
        start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0
        if start >= len(body) and rng:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        end = len(body)
        if srv.cuts > 0:
            srv.cuts -= 1
            end = max(start, min(end, srv.cut_at))
        self.wfile.write(body[start:end])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    """A local server; shut down at the end of the test whatever happens."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.files, srv.ranges, srv.cuts, srv.cut_at = {}, [], 0, 0
    srv.url = lambda path: f"http://127.0.0.1:{srv.server_address[1]}{path}"
    thread = threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def wav_bytes(freq: float) -> bytes:
    buf = io.BytesIO()
    t = np.arange(16000) / 16000
    sf.write(buf, 0.3 * np.sin(2 * np.pi * freq * t), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def make_tar(extra: list[tarfile.TarInfo] = (), words=("yes", "no"), speakers=6) -> bytes:
    """A .tar.gz in the Speech Commands layout (members `./yes/<speaker>_nohash_0.wav`, as in
    the real archive), with `extra` members appended after the good ones."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for w, word in enumerate(words):
            for s in range(speakers):
                data = wav_bytes(300 + 100 * w + 10 * s)
                info = tarfile.TarInfo(f"./{word}/{s:08x}_nohash_0.wav")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return buf.getvalue()


@pytest.fixture(scope="module")
def good() -> bytes:
    return make_tar()


def serve(server, body: bytes, path: str = "/x.tar.gz") -> Archive:
    server.files[path] = body
    return Archive(server.url(path), hashlib.sha256(body).hexdigest())


def state_of(out: Path) -> list[str]:
    return sorted(p.name for p in (out / STATE_DIR).iterdir())


def test_download_verify_extract_and_summary(server, good, tmp_path):
    archive = serve(server, good)
    report = get(archive, tmp_path / "a")
    assert report.entries == ["no", "yes"] and not report.already_there
    assert len(list((tmp_path / "a" / "yes").glob("*.wav"))) == 6
    assert report.removed_archive is not None and not report.removed_archive.exists()
    assert state_of(tmp_path / "a") == ["x.tar.gz.done"]

    out = tmp_path / "b"
    proc = subprocess.run([sys.executable, "-m", "kws", "data", "get", "speech-commands",
                           "--url", archive.url, "--sha256", archive.sha256, "--out", str(out),
                           "--keywords", "yes,no", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # one JSON object: the `kws data` summary and the get
    assert sum(summary["counts"]["yes"].values()) == 6 and summary["roots"] == [str(out)]
    assert summary["get"]["sha256"] == archive.sha256 and summary["get"]["entries"] == ["no", "yes"]
    assert "removed the archive" in proc.stderr


def test_cut_connection_resumes_with_range(server, good, tmp_path):
    archive = serve(server, good)
    server.cuts, server.cut_at = 1, len(good) // 2
    report = get(archive, tmp_path, retry_wait=0)
    assert server.ranges == [None, f"bytes={len(good) // 2}-"]
    assert report.archive_bytes == len(good) and (tmp_path / "yes").is_dir()


def test_failed_download_keeps_the_part_and_a_later_run_resumes(server, good, tmp_path):
    archive = serve(server, good)
    half = len(good) // 2
    server.cuts, server.cut_at = 99, half  # every response stops at `half`
    with pytest.raises(KwsError) as failed:
        get(archive, tmp_path, retries=2, retry_wait=0)
    message = str(failed.value)
    assert "\n" not in message and "is kept" in message and "again to resume" in message
    assert (tmp_path / STATE_DIR / "x.tar.gz.part").stat().st_size == half
    assert not (tmp_path / "yes").exists()

    server.cuts, server.ranges = 0, []
    report = get(archive, tmp_path, retry_wait=0)
    assert server.ranges == [f"bytes={half}-"] and report.resumed_from == half
    assert (tmp_path / "yes").is_dir()


def test_digest_mismatch_removes_the_download_and_extracts_nothing(server, good, tmp_path):
    archive = serve(server, good)
    wrong = Archive(archive.url, "0" * 64)
    with pytest.raises(KwsError) as failed:
        get(wrong, tmp_path)
    message = str(failed.value)
    assert "\n" not in message and archive.url in message
    assert "0" * 64 in message and archive.sha256 in message
    assert state_of(tmp_path) == []  # no part, no marker, no temporary folder
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_DIR]


def evil(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 4 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize("member, why", [
    (evil("../evil.txt"), "outside the output folder"),
    (evil("./yes/../../evil.txt"), "outside the output folder"),
    (evil("/tmp/kws-evil-absolute.txt"), "absolute path"),
    (evil("./yes/link", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
    (evil("./yes/hard", tarfile.LNKTYPE, "./yes/00000000_nohash_0.wav"), "hard link"),
    (evil("./dev", tarfile.CHRTYPE), "device"),
    (evil("./pipe", tarfile.FIFOTYPE), "FIFO"),
    (evil("./.kws-download/x.tar.gz.done"), ".kws-download"),
])
def test_unsafe_member_is_refused_and_nothing_is_written(server, tmp_path, member, why):
    archive = serve(server, make_tar([member], speakers=1))
    out = tmp_path / "out"
    with pytest.raises(KwsError) as failed:
        get(archive, out)
    message = str(failed.value)
    assert "\n" not in message and repr(member.name) in message and why in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing beside DIR
    assert sorted(p.name for p in out.iterdir()) == [STATE_DIR]  # nothing extracted in it
    assert state_of(out) == ["x.tar.gz.part"]  # the verified download is kept
    assert not Path("/tmp/kws-evil-absolute.txt").exists()


def test_second_run_is_a_quick_no_op(server, good, tmp_path):
    archive = serve(server, good)
    get(archive, tmp_path)
    server.ranges = []
    again = get(archive, tmp_path)
    assert again.already_there and again.entries == ["no", "yes"] and server.ranges == []

    from typer.testing import CliRunner

    from kws.data.cli import data_app

    result = CliRunner().invoke(data_app, [
        "get", "speech-commands", "--url", archive.url, "--sha256", archive.sha256,
        "--out", str(tmp_path), "--keywords", "yes,no", "--no-read"])
    assert result.exit_code == 0, result.output
    assert "already there" in result.output and server.ranges == []


def test_a_mirror_url_needs_its_digest():
    official = resolve("speech-commands", "v0.01", None, None)
    assert official.url.endswith("speech_commands_v0.01.tar.gz")
    assert resolve("speech-commands", "v0.01", official.url, None) == official
    with pytest.raises(KwsError, match="--sha256"):
        resolve("speech-commands", "v0.02", "http://127.0.0.1:9/m.tar.gz", None)
    with pytest.raises(KwsError, match="unknown"):
        resolve("speech-commands", "v9", None, None)
