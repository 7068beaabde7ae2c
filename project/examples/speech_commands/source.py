"""Google Speech Commands v2: 105,829 one-second words from 2,618 speakers, 16 kHz mono."""

from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from project.engine.data.audio import read_audio, read_split
from project.engine.data.download import RemoteArchive, download_archive, extract_archive
from project.engine.data.source import AudioSource, Samples, Split

URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
# The published SHA-256 of the archive (as torchaudio pins it); no MD5 is published
SHA256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
FOLDER = "speech_commands_v0.02"
WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
    "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)  # fmt: skip
# The 12-class task of the data set's paper: ten command words, any other word, and no word
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
NOISE_FOLDER = "_background_noise_"
RECORDINGS = 105_829  # word recordings in v0.02: 84,843 train, 9,981 validation, 11,005 test
SPLIT_LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}


class SpeechCommands(AudioSource):
    """Speech Commands v2 in its official split (the archive's validation and testing lists).

    Args:
        root: where `speech_commands_v0.02/` is or will be extracted.
        task: 35: every word is a class. 12: the ten commands, `_unknown_` (a seeded sample of the other
            words, as many as an average command has) and `_silence_` (as many one-second cuts of the
            background-noise recordings, at a random volume).
        download: fetch the official archive when the folder is missing; its SHA-256 is verified.
        md5: optionally also check the archive against this MD5.
        seed: fixes the `_unknown_` sample and the `_silence_` cuts.
        expected_recordings: fewer recordings than this (v0.02 has 105,829) is refused as incomplete;
            0 accepts any number.

    Cross-validation by speaker (`data.fold_groups: speaker`) keeps each speaker's recordings in one fold, and
    the `_silence_` cuts of one noise recording.
    """

    group_keys = ("speaker",)

    def __init__(
        self,
        root: str | Path = "data",
        task: Literal[35, 12] = 35,
        download: bool = True,
        md5: str | None = None,
        seed: int = 0,
        expected_recordings: int = RECORDINGS,
    ):
        self.root = Path(root)
        self.task = task
        self.classes = WORDS if task == 35 else (*COMMANDS, UNKNOWN, SILENCE)
        self.download = download
        self.archive = RemoteArchive(url=URL, filename=f"{FOLDER}.tar.gz", md5=md5, sha256=SHA256)
        self.seed = seed
        self.expected_recordings = expected_recordings

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    @property
    def location(self) -> Path:
        return self.folder

    def prepare(self) -> None:
        if (self.folder / SPLIT_LISTS["test"]).is_file():
            return
        if not self.download and not (self.root / self.archive.filename).exists():
            raise FileNotFoundError(
                f"Speech Commands not found: looked for {self.folder / SPLIT_LISTS['test']} and download is false. "
                f"Set --data.source.init_args.download true, or extract {URL} into {self.folder.resolve()}."
            )
        archive = download_archive(self.archive, self.root, download=self.download, extracted=f"{FOLDER}/")
        extract_archive(archive, self.folder)

    def load(self, split: Split, sample_rate: int) -> Samples:
        files = self._word_files(split)
        # A different stream per split, reproducible across processes (str hashes are not)
        generator = torch.Generator().manual_seed(self.seed * 3 + ("train", "val", "test").index(split))
        if self.task == 35:
            items = [(path, self.classes.index(word)) for word, paths in files.items() for path in paths]
            return read_split(items, sample_rate, self.folder)
        per_class = round(sum(len(files[word]) for word in COMMANDS) / len(COMMANDS))
        others = [path for word, paths in files.items() if word not in COMMANDS for path in paths]
        chosen = torch.randperm(len(others), generator=generator)[:per_class].sort().values.tolist()
        items = [(path, self.classes.index(word)) for word in COMMANDS for path in files[word]]
        items += [(others[i], self.classes.index(UNKNOWN)) for i in chosen]
        words = read_split(items, sample_rate, self.folder)
        silence, names = self._silence(per_class, sample_rate, generator)
        return Samples(
            inputs=words.inputs + silence,
            labels=torch.cat([words.labels, torch.full((len(silence),), self.classes.index(SILENCE))]),
            names=words.names + names,
        )

    def group(self, key: str, name: str) -> str:
        # "<word>/<speaker>_nohash_<n>.wav", or a silence cut "_background_noise_/<file>.wav@<start>s"
        return Path(name.split("@")[0]).name.split("_nohash_")[0]

    def _word_files(self, split: Split) -> dict[str, list[Path]]:
        """The recordings of every word in `split`, by word, from the archive's split lists."""
        listed = {name: set(self._read_list(name)) for name in SPLIT_LISTS}
        every = {}
        for word in WORDS:
            folder = self.folder / word
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"{folder} is missing; the extraction is incomplete. Delete {self.folder} and run again."
                )
            every[word] = sorted(folder.glob("*.wav"))
        found = {f"{word}/{p.name}" for word, paths in every.items() for p in paths}
        missing = sorted((listed["val"] | listed["test"]) - found)
        count = len(found)
        if missing or (count < self.expected_recordings):
            raise FileNotFoundError(
                f"{self.folder} is incomplete: it holds {count} word recordings (v0.02 has "
                f"{RECORDINGS}) and lacks {len(missing)} that its split lists name"
                f"{' (' + ', '.join(missing[:3]) + ', ...)' if missing else ''}. Delete {self.folder} and run "
                "again with download true, or set --data.source.init_args.expected_recordings=0 for a "
                "subset of your own."
            )
        files = {}
        for word, paths in every.items():
            if split == "train":
                files[word] = [p for p in paths if f"{word}/{p.name}" not in listed["val"] | listed["test"]]
            else:
                files[word] = [p for p in paths if f"{word}/{p.name}" in listed[split]]
        return files

    def _read_list(self, split: str) -> list[str]:
        path = self.folder / SPLIT_LISTS[split]
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing; the extraction is incomplete. Delete {self.folder} and run again."
            )
        return path.read_text().split()

    def _silence(self, count: int, sample_rate: int, generator: torch.Generator) -> tuple[list[Tensor], list[str]]:
        """`count` one-second cuts of the background-noise recordings, each at a random volume, and
        their names (`file@start-in-seconds`)."""
        paths = sorted((self.folder / NOISE_FOLDER).glob("*.wav"))
        noises = [(path, read_audio(path, sample_rate)) for path in paths]
        noises = [(path, noise) for path, noise in noises if len(noise) >= sample_rate]
        if not noises:
            raise FileNotFoundError(
                f"{self.folder / NOISE_FOLDER} holds no recording of a second or more for `_silence_`."
            )
        which = torch.randint(len(noises), (count,), generator=generator).tolist()
        start, volume = torch.rand(2, count, generator=generator)
        cuts, names = [], []
        for i, choice in enumerate(which):
            path, noise = noises[choice]
            offset = int(start[i] * (len(noise) - sample_rate))
            cuts.append(noise[offset : offset + sample_rate] * volume[i])
            names.append(f"{path.relative_to(self.folder)}@{offset / sample_rate:.3f}s")
        return cuts, names
