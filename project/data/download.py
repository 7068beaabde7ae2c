"""Download an archive, verify its checksum and extract it without letting it write outside the target."""

import hashlib
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info
from torchvision.datasets.utils import download_url


@dataclass(frozen=True)
class RemoteArchive:
    """An archive published at `url` and the checksums its bytes must match: MD5, SHA-256 or both,
    whichever its publisher gives. With neither (a host that publishes none), the download is used as
    is and its SHA-256 is reported so that it can be pinned."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None

    @property
    def checksums(self) -> dict[str, str]:
        return {name: value for name, value in (("md5", self.md5), ("sha256", self.sha256)) if value is not None}


class DownloadError(RuntimeError):
    pass


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _mismatch(path: Path, archive: RemoteArchive) -> str | None:
    """What is wrong with the file at `path`, or None when it matches every published checksum."""
    if not path.is_file():
        return "it is missing"
    for algorithm, expected in archive.checksums.items():
        actual = file_digest(path, algorithm)
        if actual != expected:
            return f"its {algorithm.upper()} is {actual}, not the published {expected}"
    return None


def download_archive(archive: RemoteArchive, root: Path) -> Path:
    """Fetch `archive` into `root` (skipped when a verified copy is already there); return its path."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / archive.filename
    if archive.checksums and _mismatch(path, archive) is None:
        return path
    expected = ", ".join(f"{name.upper()} {value}" for name, value in archive.checksums.items()) or "no checksum"
    how_to_fix = f"Download {archive.url} by hand and put it at {path} ({expected}), then run again."
    try:
        # torchvision fetches (redirects, progress bar); the checksums are checked below, where a
        # mismatch can be reported as such rather than as "File not found or corrupted"
        download_url(archive.url, str(root), filename=archive.filename)
    except (OSError, RuntimeError) as err:  # urllib's URLError is an OSError; torchvision raises RuntimeError
        raise DownloadError(f"Could not download {archive.url}: {err}. {how_to_fix}") from err
    problem = _mismatch(path, archive)
    if problem is not None:
        raise DownloadError(f"{path} downloaded from {archive.url} is corrupt: {problem}. {how_to_fix}")
    if not archive.checksums:
        rank_zero_info(f"Downloaded {archive.url} unverified (SHA-256 {file_digest(path, 'sha256')}).")
    return path


def extract_archive(path: Path, dest: Path) -> None:
    """Extract a .tar(.gz/.xz/.bz2) or .zip into `dest`, refusing members that would land outside it."""
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                _check_inside(dest, name, path)
            zf.extractall(dest)
        return
    with tarfile.open(path) as tar:
        try:
            # The stdlib's "data" filter refuses absolute paths, "..", links pointing outside `dest`
            # and device files, which is exactly the path-traversal protection wanted here.
            tar.extractall(dest, filter="data")
        except tarfile.FilterError as err:
            raise _outside_error(path, dest, str(err)) from err


def _check_inside(dest: Path, name: str, archive: Path) -> None:
    if not (dest / name).resolve().is_relative_to(dest.resolve()):
        raise _outside_error(archive, dest, f"member {name!r}")


def _outside_error(archive: Path, dest: Path, what: str) -> DownloadError:
    return DownloadError(
        f"{archive} tries to write outside {dest} ({what}); refusing to extract it. The archive is "
        "corrupt or malicious: delete it and download it again from the official source."
    )


def download_and_extract(archive: RemoteArchive, root: Path) -> None:
    extract_archive(download_archive(archive, root), root)
