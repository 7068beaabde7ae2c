"""Archives with arbitrary members, for the download and extraction tests."""

import io
import tarfile
from pathlib import Path


def add_to_tar(archive: Path, name: str, payload: bytes) -> None:
    """Write a tar.gz with one member of an arbitrary (e.g. path-traversing) name."""
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
