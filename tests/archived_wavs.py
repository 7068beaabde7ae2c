"""A published data set of the tests' own: a WAV folder (tests/wav_format.py) released as one .tar.gz holding a
top-level `sounds-1.0/` folder, as public data sets are. Its source fetches, verifies and extracts the archive
with the generic code (project/engine/data/download.py), the way a source of a public data set does, so the
download tests need no example; tests serve the archive from a local HTTP server (conftest's `serve_dir`)."""

import hashlib
import tarfile
from pathlib import Path

from project.engine.data import AudioSource, Samples, WavFolder
from project.engine.data.download import RemoteArchive, download_and_extract
from project.engine.data.source import Split
from tests.wav_format import write_wav_folder

FOLDER = "sounds-1.0"
ARCHIVE = f"{FOLDER}.tar.gz"
CLASSES = ("chirp", "noise", "tone")  # write_wav_folder's default sounds, as its sub-folders sort


class ArchivedWavs(AudioSource):
    """`root/sounds-1.0/<class>/<n>.wav`, downloaded from `url` when missing (and `download`)."""

    classes = CLASSES

    def __init__(self, root: str | Path, url: str, md5: str | None = None, download: bool = True):
        self.root = Path(root)
        self.download = download
        self.archive = RemoteArchive(url=url, filename=ARCHIVE, md5=md5)

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    def prepare(self) -> None:
        if self.folder.is_dir():
            return
        if not self.download and not (self.root / ARCHIVE).exists():
            raise FileNotFoundError(f"{self.folder} is missing and download is false; extract {self.archive.url}.")
        download_and_extract(self.archive, self.root, download=self.download)

    def load(self, split: Split, sample_rate: int) -> Samples:
        return WavFolder(self.folder, val_fraction=0.2, test_fraction=0.2).load(split, sample_rate)


def write_release(folder: Path, per_class: int = 5) -> tuple[Path, str]:
    """`folder/sounds-1.0.tar.gz` (3 classes x `per_class` clips) and its MD5."""
    source = write_wav_folder(folder / "src" / FOLDER, per_class=per_class)
    archive = folder / "site" / ARCHIVE
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=FOLDER)
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()
