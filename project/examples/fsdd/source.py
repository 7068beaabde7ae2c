"""Free Spoken Digit Dataset: 3,000 recordings of the digits 0-9, six speakers, 8 kHz mono."""

import re
from pathlib import Path
from typing import Literal

import torch

from project.engine.data.audio import read_split
from project.engine.data.download import RemoteArchive, download_and_extract
from project.engine.data.source import AudioSource, Samples, Split
from project.engine.data.streaming import listing
from project.engine.errors import DataError

VERSION = "1.0.10"
URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v{VERSION}.tar.gz"
FOLDER = f"free-spoken-digit-dataset-{VERSION}"
CLASSES = tuple(str(digit) for digit in range(10))
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
NAME = re.compile(r"(?P<digit>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav")
# The usual split: the first five takes of every speaker and digit are the test set
TEST_TAKES = 5
RECORDINGS = 3000  # in release 1.0.10: 6 speakers x 10 digits x 50 takes


class FSDD(AudioSource):
    """FSDD from the tagged release on GitHub, in the usual split or with one speaker held out.

    Args:
        root: where `free-spoken-digit-dataset-1.0.10/` is or will be extracted; a folder that holds
            `recordings/` directly works too.
        split: "usual": takes 0-4 of every speaker and digit are the test set, the rest train. "speaker":
            every recording of `test_speaker` is the test set, the other five speakers train, which
            measures how well the model hears a voice it has never heard.
        test_speaker: the held-out speaker for split="speaker".
        val_fraction: share of the training recordings held out, seeded, for validation.
        download: fetch the release archive when the recordings are missing.
        md5: checksum of the release archive; none is pinned, as GitHub does not promise a tag archive's
            bytes stay the same. Give one to have the download verified (the download logs the one it got).
        url: where the release archive is (http(s)://, or file:// for a local mirror).
        seed: fixes the validation split.
        expected_recordings: fewer recordings than this (the release has 3,000) is refused as incomplete;
            0 accepts any number (a subset of your own).

    Cross-validation by speaker (`data.fold_groups: speaker`, 6 folds) pools every recording, whatever `split`.
    """

    classes = CLASSES
    group_keys = ("speaker",)

    def __init__(
        self,
        root: str | Path = "data",
        split: Literal["usual", "speaker"] = "usual",
        test_speaker: str = "theo",
        val_fraction: float = 0.1,
        download: bool = True,
        md5: str | None = None,
        url: str = URL,
        seed: int = 0,
        expected_recordings: int = RECORDINGS,
    ):
        if split == "speaker" and test_speaker not in SPEAKERS:
            raise DataError(f"test_speaker={test_speaker!r} is not an FSDD speaker; choose one of {SPEAKERS}.")
        if not 0 < val_fraction < 1:
            raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}.")
        self.root = Path(root)
        self.split = split
        self.test_speaker = test_speaker
        self.val_fraction = val_fraction
        self.download = download
        self.archive = RemoteArchive(url=url, filename=f"free-spoken-digit-dataset-{VERSION}.tar.gz", md5=md5)
        self.seed = seed
        self.expected_recordings = expected_recordings

    @property
    def recordings(self) -> Path:
        direct = self.root / "recordings"
        return direct if direct.is_dir() else self.root / FOLDER / "recordings"

    def prepare(self) -> None:
        if self.recordings.is_dir():
            return
        if not self.download and not (self.root / self.archive.filename).exists():
            raise FileNotFoundError(
                f"FSDD not found: looked for {self.root / FOLDER / 'recordings'} and {self.root / 'recordings'}, "
                f"and download is false. Set --data.source.init_args.download true, or extract {self.archive.url} "
                f"into {self.root.resolve()}, or point --data.source.init_args.root at the folder holding it."
            )
        download_and_extract(self.archive, self.root, download=self.download, extracted="recordings/")
        if not self.recordings.is_dir():
            raise FileNotFoundError(f"{self.archive.url} extracted into {self.root} but has no {FOLDER}/recordings/.")

    @property
    def location(self) -> Path:
        return self.recordings

    def load(self, split: Split, sample_rate: int) -> Samples:
        return read_split(self._split_files()[split], sample_rate, self.recordings.parent)

    def listing(self, split: Split) -> Samples:
        return listing(self._split_files()[split], self.recordings.parent)

    def group(self, key: str, name: str) -> str:
        return NAME.fullmatch(Path(name).name)["speaker"]  # every name was checked when its split was read

    def files(self) -> list[tuple[Path, re.Match]]:
        """Every recording, sorted, with its name's parts (digit, speaker, index); an incomplete folder is refused."""
        files = sorted(self.recordings.glob("*.wav"))
        if len(files) < self.expected_recordings:
            whole = self.recordings.parent if self.recordings.parent.name == FOLDER else self.recordings
            raise DataError(
                f"{self.recordings} holds {len(files)} recordings, not the {self.expected_recordings} of FSDD "
                f"{VERSION}: the folder is incomplete. Delete {whole} and run again with download true (or "
                f"extract {self.archive.url} there by hand). For a subset of your own, set "
                "--data.source.init_args.expected_recordings=0."
            )
        named = []
        for path in files:
            match = NAME.fullmatch(path.name)
            if match is None:
                raise DataError(
                    f"{path} is not named {{digit}}_{{speaker}}_{{index}}.wav as FSDD recordings are; "
                    "remove it from the recordings folder."
                )
            named.append((path, match))
        return named

    def _split_files(self) -> dict[Split, list[tuple[Path, int]]]:
        test, pool = [], []
        for path, match in self.files():
            item = (path, int(match["digit"]))
            if self.split == "usual":
                held_out = int(match["index"]) < TEST_TAKES
            else:
                held_out = match["speaker"] == self.test_speaker
            (test if held_out else pool).append(item)
        if not pool or not test:
            raise DataError(
                f"{self.recordings} holds {len(pool)} training and {len(test)} test recordings for "
                f"split={self.split!r}; both must be non-empty. Is the folder complete?"
            )
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(self.seed)).tolist()
        n_val = max(1, round(self.val_fraction * len(pool)))
        return {
            "train": [pool[i] for i in sorted(order[n_val:])],
            "val": [pool[i] for i in sorted(order[:n_val])],
            "test": test,
        }
