"""Download, verify and extract an archive: torchvision's `download_url` fetches; the rest is ours because
torchvision's `download_and_extract_archive` writes in place (a killed run leaves a half file taken later for
data), checks MD5 only, and extracts tar members unchecked (`filter="data"` alone misses CVE-2025-4517)."""

import glob
import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torchvision.datasets.utils import download_url

from project.engine.checkpoints import is_running
from project.engine.data.safe_archive import unsafe_tar_member, unsafe_zip_member
from project.engine.errors import DataError, UserError


@dataclass(frozen=True)
class RemoteArchive:
    """An archive at `url` and its published MD5 and/or SHA-256. With neither, a download that reads to
    its end as an archive is used, and its checksums are logged so that they can be pinned."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None

    @property
    def checksums(self) -> dict[str, str]:
        return {name: value for name, value in (("md5", self.md5), ("sha256", self.sha256)) if value is not None}


class DownloadError(UserError, RuntimeError):
    pass


def file_digest(path: Path, algorithm: str) -> str:  # torchvision's `calculate_md5` has no SHA-256
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _problem(path: Path, archive: RemoteArchive) -> str | None:
    """What is wrong with `path`, or None (torchvision's `check_integrity` says only whether)."""
    if not path.is_file():
        return "it is missing"
    if path.stat().st_size == 0:
        return "it is empty"
    for algorithm, expected in archive.checksums.items():
        actual = file_digest(path, algorithm)
        if actual != expected:
            return f"its {algorithm.upper()} is {actual}, not the published {expected}"
    if not archive.checksums:
        return _unreadable(path)
    return None


def _unreadable(path: Path) -> str | None:
    """Why `path` is not a whole .tar(.gz/.xz/.bz2) or .zip, or None when it reads to its end."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            return None if bad is None else f"its member {bad!r} is corrupt"
        with tarfile.open(path) as tar:
            for _ in tar:  # a truncated stream fails only when read to its end
                pass
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        return f"it is not a whole archive ({type(err).__name__}: {err})"
    return None


def download_archive(archive: RemoteArchive, root: Path, download: bool = True, extracted: str | None = None) -> Path:
    """The verified archive at `root/archive.filename`: the copy there when it checks out, else a fresh
    download (when `download`) renamed into place only once complete and verified. `extracted`: the folder the
    archive extracts to (`cifar-10-batches-py/`), named in the errors as the other way to give the data."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / archive.filename
    expected = ", ".join(f"{name.upper()} {value}" for name, value in archive.checksums.items()) or "no checksum"
    how_to_fix = f"Download {archive.url} by hand and put it at {path} ({expected}), then run again."
    if extracted:
        how_to_fix += (
            f" Already extracted elsewhere? A folder holding `{extracted}` works as it is: move it into "
            f"{root.resolve()}, or pass --data.source.init_args.root FOLDER (the folder holding it)."
        )
    if path.exists():
        problem = _problem(path, archive)
        if problem is None:
            return path
        if not download:
            raise DownloadError(
                f"{path} is there but {problem}, and download is false. Delete {path} and run again with "
                f"download true to fetch a fresh copy, or replace it by hand: {how_to_fix}"
            )
        rank_zero_warn(f"{path} is there but {problem}; downloading a fresh copy to replace it.")
    elif not download:
        raise DownloadError(f"{path} is missing and download is false. {how_to_fix}")
    _remove_leftovers(root, f".{archive.filename}.part-")
    partial = root / f".{archive.filename}.part-{_OWNER}"  # same folder, so the rename is atomic
    partial.unlink(missing_ok=True)  # a dead process's, whose PID this one reuses: the fetch must not resume it
    try:
        try:
            _fetch(archive.url, partial)
        except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError; torchvision raises RuntimeError
            raise DownloadError(f"Could not download {archive.url}: {err}. {how_to_fix}") from err
        problem = _problem(partial, archive)
        if problem is not None:
            raise DownloadError(f"{path} downloaded from {archive.url} is corrupt: {problem}. {how_to_fix}")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    if not archive.checksums:
        digests = ", ".join(f"{name.upper()} {file_digest(path, name)}" for name in ("md5", "sha256"))
        rank_zero_info(f"Downloaded {archive.url} unverified ({digests}); pin a checksum to have it verified.")
    return path


# Temporary names carry their writer (host and PID), so that what a killed process left can be told
# from what a live one, on this machine or another sharing the folder, is still writing
_OWNER = f"{socket.gethostname()}-{os.getpid()}"


def _remove_leftovers(folder: Path, prefix: str) -> None:
    """Delete the temporary downloads and extraction folders of processes of this host that are gone."""
    host = socket.gethostname()
    for leftover in folder.glob(glob.escape(prefix) + "*"):
        writer = leftover.name[len(prefix) :]
        if not writer.startswith(f"{host}-"):
            continue
        pid = writer[len(host) + 1 :].split("-")[0]
        if pid.isdigit() and not is_running(int(pid)):
            rank_zero_warn(f"Removing {leftover}, left by an interrupted download or extraction.")
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def _fetch(url: str, dest: Path) -> None:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":  # a local mirror; torchvision's downloader needs HTTP headers it lacks
        shutil.copyfile(urllib.request.url2pathname(parsed.path), dest)
    elif parsed.scheme in ("http", "https"):
        # Checksums are checked by the caller, to report a mismatch as such, not "File not found or corrupted"
        download_url(url, str(dest.parent), filename=dest.name)
    else:
        raise DataError("only http://, https:// and file:// URLs are supported")


def extract_archive(path: Path, dest: Path) -> None:
    """Extract a .tar(.gz/.xz/.bz2) or .zip into `dest`, all or nothing: into a hidden folder, then
    renamed into place (the whole folder, or each top-level entry when `dest` exists; none overwritten)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Inside `dest` when it exists (so the renames stay on its file system), else beside it
    where = dest if dest.is_dir() else dest.parent
    _remove_leftovers(where, f".{dest.name}.extracting-")
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extracting-{_OWNER}-", dir=where))
    staging.chmod(0o755)  # mkdtemp's 0o700 would otherwise become the data folder's
    try:
        try:
            if zipfile.is_zipfile(path):
                _extract_zip(path, staging, dest)
            else:
                _extract_tar(path, staging, dest)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
            raise DownloadError(
                f"Could not extract {path} ({type(err).__name__}: {err}). Delete {path} and run again to "
                "download it afresh."
            ) from err
        if not dest.exists():
            os.rename(staging, dest)
            return
        entries = sorted(staging.iterdir())
        there = [dest / entry.name for entry in entries if os.path.lexists(dest / entry.name)]
        if there:
            raise DownloadError(
                f"Extracting {path} into {dest} would overwrite {', '.join(map(str, there))}, which is "
                "incomplete or not what the data set expects. Delete it and run again."
            )
        for entry in entries:
            os.rename(entry, dest / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_zip(path: Path, staging: Path, dest: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        problem = unsafe_zip_member(zf.namelist())
        if problem is not None:
            raise _outside_error(path, dest, problem)
        zf.extractall(staging)


def _extract_tar(path: Path, staging: Path, dest: Path) -> None:
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        problem = unsafe_tar_member(members)
        if problem is not None:
            raise _outside_error(path, dest, problem)
        # torchvision's extractor passes no filter (a DeprecationWarning on Python 3.12-3.13); this one also
        # normalises permissions. Pythons before the filters (3.10.11 and older) rely on the check alone.
        filtered = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(staging, members=members, **filtered)


def _outside_error(archive: Path, dest: Path, what: str) -> DownloadError:
    return DownloadError(
        f"{archive} tries to write outside {dest} or holds what a data archive should not ({what}); "
        "refusing to extract it. The archive is corrupt or malicious: delete it and download it again "
        "from the official source."
    )


def download_and_extract(
    archive: RemoteArchive, root: Path, download: bool = True, extracted: str | None = None
) -> None:
    extract_archive(download_archive(archive, root, download, extracted), root)
