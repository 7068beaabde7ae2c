"""Your own recordings: one sub-folder of audio files per class."""

import re
from pathlib import Path

import torch

from project.engine.data.audio import read_split
from project.engine.data.source import AudioSource, Samples, Split
from project.engine.data.streaming import listing
from project.engine.errors import DataError


class WavFolder(AudioSource):
    """`root/<class>/<any name>.wav`, split per class at random (seeded) into train, val and test. Every file is
    read (hidden ones aside), so a stray non-audio file stops the load with its name rather than being skipped;
    any format, rate and channel count libsndfile reads works.

    Args:
        root: the folder holding one sub-folder per class; the class names are the sorted sub-folder names.
        val_fraction: share of each class held out for validation.
        test_fraction: share of each class held out for testing.
        seed: fixes the split.
        groups: for cross-validation by group (`data.fold_groups`): a regular expression per group key,
            searched in each file's path below root, whose first parenthesised part is the file's group;
            e.g. `{speaker: "([^/_]+)_[^/]*$"}` reads the speaker from `yes/anna_03.wav`.
    """

    def __init__(
        self,
        root: str | Path,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        groups: dict[str, str] | None = None,
    ):
        self.root = Path(root)
        self.patterns = {}
        for key, pattern in (groups or {}).items():
            try:
                self.patterns[key] = re.compile(pattern)
            except re.error as err:
                raise DataError(f"groups.{key}: {pattern!r} is not a regular expression ({err}).") from None
            if self.patterns[key].groups < 1:
                raise DataError(f"groups.{key}: {pattern!r} has no (parenthesised) part to read the {key} from.")
        self.group_keys = tuple(self.patterns)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root.resolve()} is not a folder; point root at one sub-folder per class.")
        if val_fraction <= 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
            raise DataError(
                f"need 0 < val_fraction, 0 <= test_fraction and val_fraction + test_fraction < 1, "
                f"got {val_fraction} and {test_fraction}."
            )
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(folders) < 2:
            raise DataError(
                f"{self.root} holds {len(folders)} class folders; a classifier needs at least two "
                "(root/<class>/<file>.wav)."
            )
        self.classes = tuple(p.name for p in folders)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed

    def load(self, split: Split, sample_rate: int) -> Samples:
        return read_split(self._split_files()[split], sample_rate, self.root)

    def listing(self, split: Split) -> Samples:
        return listing(self._split_files()[split], self.root)

    def group(self, key: str, name: str) -> str:
        match = self.patterns[key].search(Path(name).as_posix())
        if match is None or match.group(1) is None:
            raise DataError(
                f"{self.root / name}: groups.{key} ({self.patterns[key].pattern!r}) finds no {key} in its path "
                f"{Path(name).as_posix()!r}; fix the pattern, or rename or remove the file."
            )
        return match.group(1)

    def _split_files(self) -> dict[Split, list[tuple[Path, int]]]:
        splits: dict[Split, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
        generator = torch.Generator().manual_seed(self.seed)
        for label, name in enumerate(self.classes):
            files = sorted(p for p in (self.root / name).iterdir() if p.is_file() and not p.name.startswith("."))
            if len(files) < 3:
                raise DataError(
                    f"{self.root / name} holds {len(files)} files; each class needs at least 3 (one each for "
                    "train, validation and test)."
                )
            # Per class, so even a small class is in every split
            order = torch.randperm(len(files), generator=generator).tolist()
            n_val = max(1, round(self.val_fraction * len(files)))
            n_test = round(self.test_fraction * len(files))
            parts = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
            for split, indices in parts.items():
                splits[split] += [(files[i], label) for i in sorted(indices)]
        return splits
