"""Fetch a data set archive: resumable download, SHA-256 check, safe extraction.

The Speech Commands archive is 2.4 GB, so a cut connection must not cost the bytes already
received: they stay in `DIR/.kws-download/<archive>.part` and the next request asks for the
rest with an HTTP `Range` header. Nothing is extracted before the digest matches, and no
member is written before every member has been checked (a hostile archive cannot write
outside DIR or plant links). Standard library only, so no extra dependency.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Optional
from urllib.parse import urlparse

from kws.errors import KwsError

#: (stage, bytes done, bytes in all or None): stage is "download", "verify" or "extract".
Progress = Callable[[str, int, Optional[int]], None]

STATE_DIR = ".kws-download"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    url: str
    sha256: str


#: The official archives and their digests, per `--version`.
SPEECH_COMMANDS = {
    "v0.02": Archive("http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
                     "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"),
    "v0.01": Archive("http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
                     "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d"),
}
DATASETS = {"speech-commands": SPEECH_COMMANDS}


@dataclass
class GetReport:
    """What `get` did, for the CLI's lines and its --json object."""

    url: str
    sha256: str
    out: Path
    already_there: bool = False
    resumed_from: int = 0
    archive_bytes: int = 0
    entries: list[str] = field(default_factory=list)
    removed_archive: Optional[Path] = None

    def as_dict(self) -> dict:
        removed = self.removed_archive
        return {**asdict(self), "out": str(self.out), "removed_archive": removed and str(removed)}


def resolve(dataset: str, version: str, url: Optional[str], sha256: Optional[str]) -> Archive:
    """The archive to fetch. A built-in digest only vouches for its own official URL, so any
    other `--url` needs its `--sha256`: an unverified download is never extracted."""
    versions = DATASETS.get(dataset)
    if versions is None:
        raise KwsError(f"unknown data set {dataset!r} (known: {', '.join(DATASETS)})")
    official = versions.get(version)
    if official is None:
        raise KwsError(f"--version {version}: unknown (known: {', '.join(versions)})")
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise KwsError(f"--sha256 {sha256}: give the 64 hex digits of a SHA-256 digest")
    if url is None or url == official.url:
        return Archive(official.url, sha256 or official.sha256)
    if sha256 is None:
        raise KwsError(f"--url {url}: not the official {dataset} {version} archive, so the "
                       "built-in digest does not apply: give its --sha256 too")
    return Archive(url, sha256)


def archive_name(url: str) -> str:
    """The file name the URL ends with (names the part and marker files)."""
    return PurePosixPath(urlparse(url).path).name or "archive"


def get(archive: Archive, out: Path, progress: Optional[Progress] = None, retries: int = 3,
        retry_wait: float = 1.0, timeout: float = 30.0) -> GetReport:
    """Download, verify and extract `archive` into `out`; a quick no-op when a marker says the
    same digest was extracted there already and its entries are still present."""
    out = Path(out)
    state = out / STATE_DIR
    name = archive_name(archive.url)
    part, marker = state / f"{name}.part", state / f"{name}.done"
    report = GetReport(archive.url, archive.sha256, out)
    done = _done(marker, archive.sha256, out)
    if done is not None:
        report.already_there, report.entries = True, done
        return report
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KwsError(f"--out {out}: cannot create {state} ({exc})") from None
    report.resumed_from, report.archive_bytes = fetch(archive.url, part, progress, retries,
                                                         retry_wait, timeout)
    verify(part, archive, progress)
    report.entries = extract(part, out, progress)
    marker.write_text(json.dumps({"url": archive.url, "sha256": archive.sha256,
                                  "entries": report.entries}) + "\n")
    part.unlink()
    report.removed_archive = part
    return report


def _done(marker: Path, sha256: str, out: Path) -> Optional[list[str]]:
    """The entries a marker lists when it vouches for `sha256` and they all still exist."""
    try:
        info = json.loads(marker.read_text())
        entries = list(info["entries"]) if info["sha256"] == sha256 else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return entries if entries and all((out / e).exists() for e in entries) else None


def fetch(url: str, part: Path, progress: Optional[Progress] = None, retries: int = 3,
          retry_wait: float = 1.0, timeout: float = 30.0) -> tuple[int, int]:
    """Complete `part` from `url`, resuming from its size: a 206 appends, a 200 starts over,
    a 416 means the part is whole already (the digest check decides). A cut connection is
    retried from the new size; `retries` attempts in a row that add no byte fail with an error
    that says the part is kept. Returns (the size the server continued from, the final size)."""
    size = part.stat().st_size if part.exists() else 0
    resumed, fruitless = None, 0
    while True:
        request = urllib.request.Request(url, headers={"User-Agent": "kws"})
        if size:
            request.add_header("Range", f"bytes={size}-")
        before = size
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                start, total, length = _body_range(response, size, part)
                resumed = start if resumed is None else resumed
                size = _write(response, part, start, total, progress)
                if length is not None and size - start < length:  # http.client just sees EOF
                    raise ConnectionError(f"connection closed after {size - start:,} of "
                                          f"{length:,} bytes")
            return resumed, size
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and size:
                return size if resumed is None else resumed, size
            raise KwsError(f"{url}: HTTP {exc.code} {exc.reason}{_kept(part)}") from None
        except (OSError, http.client.HTTPException) as exc:
            size = part.stat().st_size if part.exists() else 0
            fruitless = 0 if size > before else fruitless + 1
            if fruitless > retries:
                raise KwsError(f"{url}: download failed at {size:,} bytes ({exc}){_kept(part)}"
                               ) from None
            time.sleep(retry_wait * fruitless)
        except KeyboardInterrupt:
            raise KwsError(f"{url}: interrupted{_kept(part)}") from None


def _kept(part: Path) -> str:
    if part.exists() and part.stat().st_size:
        return (f"; the partial file {part} ({part.stat().st_size:,} bytes) is kept: run the "
                "same command again to resume")
    return ""


def _body_range(response, size: int, part: Path) -> tuple[int, Optional[int], Optional[int]]:
    """(offset the body starts at, whole file size, body length) of a response: a 206 must
    continue at `size`; anything else is the whole file from 0 (file:// URLs have no status)."""
    length = response.headers.get("Content-Length")
    length = int(length) if length is not None else None
    if (getattr(response, "status", None) or 200) != 206:
        return 0, length, length
    content_range = response.headers.get("Content-Range", "")
    first, _, total = content_range.partition(" ")[2].partition("/")
    if not first.startswith(f"{size}-"):
        raise KwsError(f"{response.url}: asked for bytes from {size:,} and got "
                       f"{content_range!r}{_kept(part)}")
    return size, int(total) if total.isdigit() else None, length


def _write(response, part: Path, start: int, total: Optional[int],
           progress: Optional[Progress]) -> int:
    """Write the body into `part` at `start` (append, or from scratch at 0); the new size."""
    size = start
    with open(part, "ab" if start else "wb") as f:
        while chunk := response.read(CHUNK):
            f.write(chunk)
            size += len(chunk)
            if progress:
                progress("download", size, total)
    return size


def sha256_of(path: Path, progress: Optional[Progress] = None) -> str:
    digest, total, done = hashlib.sha256(), path.stat().st_size, 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress("verify", done, total)
    return digest.hexdigest()


def verify(part: Path, archive: Archive, progress: Optional[Progress] = None) -> None:
    """Raise on a digest mismatch and remove the file, so the next run downloads it anew
    (resuming a wrong file could never succeed)."""
    actual = sha256_of(part, progress)
    if actual != archive.sha256:
        part.unlink()
        raise KwsError(f"{archive.url}: SHA-256 mismatch, expected {archive.sha256}, got "
                       f"{actual}; the download was removed (run again to fetch it anew)")


def unsafe(member: tarfile.TarInfo, root: str) -> Optional[str]:
    """Why `member` must not be extracted under `root`, or None: only plain files and folders
    that stay inside `root` (and out of our own state folder) pass."""
    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        return "has an absolute path"
    target = os.path.normpath(os.path.join(root, name))
    if os.path.commonpath([root, target]) != root:
        return "would land outside the output folder"
    if PurePosixPath(os.path.relpath(target, root)).parts[:1] == (STATE_DIR,):
        return f"uses the reserved folder {STATE_DIR}"
    if member.issym():
        return "is a symbolic link"
    if member.islnk():
        return "is a hard link"
    if member.ischr() or member.isblk():
        return "is a device"
    if member.isfifo():
        return "is a FIFO"
    if not (member.isreg() or member.isdir()):
        return "is not a regular file or folder"
    return None


def extract(archive: Path, out: Path, progress: Optional[Progress] = None) -> list[str]:
    """Extract into a temporary folder inside `out` after checking every member, then move the
    top-level entries into place (merging into existing folders). On any failure the temporary
    folder goes and `out` is untouched. Returns the top-level entry names."""
    state = out / STATE_DIR
    for stale in state.glob("extract-*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix="extract-", dir=state))
    try:
        try:
            members = _extract_checked(archive, tmp, progress)
        except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
            raise KwsError(f"{archive}: cannot extract ({exc}); nothing extracted") from None
        entries = sorted(p.name for p in tmp.iterdir())
        try:
            for entry in entries:
                _move_into(tmp / entry, out / entry)
        except OSError as exc:
            raise KwsError(f"{out}: cannot move the extracted files into place ({exc}); "
                           "the archive is kept: run the same command again") from None
        if progress:
            progress("extract", members, members)
        return entries
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _extract_checked(archive: Path, tmp: Path, progress: Optional[Progress]) -> int:
    """Check every member, then extract them all into `tmp`; the number of members."""
    root = str(tmp.resolve())
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            why = unsafe(member, root)
            if why:
                raise KwsError(f"{archive}: member {member.name!r} {why}; nothing extracted")
        if progress:
            progress("extract", 0, len(members))
        guard = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.11.4
        tar.extractall(tmp, members=members, **guard)
    return len(members)


def _move_into(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`; a folder onto an existing folder merges, a file replaces a file."""
    if src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _move_into(child, dst / child.name)
        src.rmdir()
    else:
        os.replace(src, dst)
