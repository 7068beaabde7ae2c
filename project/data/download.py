"""Download an archive, verify its checksum and extract it without letting it write outside the target."""

import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from torchvision.datasets.utils import check_integrity, download_url


@dataclass(frozen=True)
class RemoteArchive:
    """An archive published at `url` whose bytes hash to `md5`."""

    url: str
    md5: str
    filename: str


class DownloadError(RuntimeError):
    pass


def download_archive(archive: RemoteArchive, root: Path) -> Path:
    """Fetch `archive` into `root` (skipped when a verified copy is already there); return its path."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / archive.filename
    if check_integrity(str(path), archive.md5):
        return path
    how_to_fix = f"Download {archive.url} by hand and put it at {path} (its MD5 must be {archive.md5}), then run again."
    try:
        # No md5 here: torchvision would report a mismatch as "File not found or corrupted"; the
        # check below says what is wrong
        download_url(archive.url, str(root), filename=archive.filename)
    except (OSError, RuntimeError) as err:  # urllib's URLError is an OSError; torchvision raises RuntimeError
        raise DownloadError(f"Could not download {archive.url}: {err}. {how_to_fix}") from err
    if not check_integrity(str(path), archive.md5):
        raise DownloadError(f"{path} downloaded from {archive.url} does not match its MD5 checksum. {how_to_fix}")
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
