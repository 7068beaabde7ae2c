"""Connected spoken digits from real voices: utterances of 1 to 7 digits made by joining FSDD recordings of one
speaker with short random pauses, transcribed in words ("three seven one"). For speech recognition
(project/tasks/speech_recognition): the transcripts are sequences, with no alignment to the audio."""

import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from project.engine.data.audio import read_audio
from project.engine.data.source import AudioSource, Samples, Split
from project.engine.errors import DataError
from project.examples.fsdd.source import FSDD, RECORDINGS, SPEAKERS, URL
from project.tasks.speech_recognition.vocabulary import Vocabulary

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# The characters of every transcript: the digits' words and the space between them
VOCABULARY = Vocabulary.of(" ".join(WORDS))
# Each recording belongs to one split, by its take: no test recording is heard in training
TEST_TAKES, VAL_TAKES = range(0, 5), range(5, 10)  # takes 0-4 are FSDD's usual test set
UTTERANCE = re.compile(r"(?P<split>\w+)/(?P<index>\d+)_(?P<speaker>[a-z]+)_(?P<digits>\d+)")
SPLITS: tuple[Split, ...] = ("train", "val", "test")


class ConnectedDigits(AudioSource):
    """Utterances of `min_digits` to `max_digits` spoken digits, each joined from FSDD recordings of one speaker
    with a random pause between words, deterministic by `seed`. Named `<split>/<index>_<speaker>_<digits>`,
    e.g. `test/00012_theo_371`, transcribed "three seven one".

    Every recording belongs to one split, so no utterance of the test set holds a recording heard in training:

    - split="takes": takes 0-4 of every speaker and digit (FSDD's usual test set) make the test utterances,
      takes 5-9 the validation ones, takes 10-49 the training ones. Every voice is in every split.
    - split="speaker": every recording of `test_speakers` makes the test utterances; the other speakers' takes
      0-4 the validation ones, their takes 5-49 the training ones. The test voices are never heard.

    Cross-validation by speaker (`data.fold_groups: speaker`, `data.num_folds: 6`) pools the three splits and
    holds each voice out once.

    Args:
        root, download, md5, url, expected_recordings: where FSDD's recordings are, or are downloaded to, as
            `project.examples.fsdd.FSDD` takes them. Nothing else is downloaded.
        split: "takes" or "speaker", above.
        test_speakers: the voices held out for split="speaker".
        train_utterances, val_utterances, test_utterances: how many utterances each split has.
        min_digits, max_digits: the shortest and longest utterance, in digits.
        min_pause, max_pause: seconds of silence between two words, drawn for each gap.
        edge: at most this many seconds of silence before the first word and after the last.
        seed: draws every utterance (speaker, digits, takes, pauses).
    """

    classes = VOCABULARY.tokens
    group_keys = ("speaker",)

    def __init__(
        self,
        root: str | Path = "data",
        split: Literal["takes", "speaker"] = "takes",
        test_speakers: list[str] | None = None,
        train_utterances: int = 4000,
        val_utterances: int = 400,
        test_utterances: int = 600,
        min_digits: int = 1,
        max_digits: int = 7,
        min_pause: float = 0.05,
        max_pause: float = 0.3,
        edge: float = 0.1,
        seed: int = 0,
        download: bool = True,
        md5: str | None = None,
        url: str = URL,
        expected_recordings: int = RECORDINGS,
    ):
        test_speakers = list(test_speakers or ["theo"])
        unknown = [s for s in test_speakers if s not in SPEAKERS]
        if unknown:
            raise DataError(
                f"test_speakers: {', '.join(map(repr, unknown))} not an FSDD speaker; choose of {SPEAKERS}."
            )
        if split == "speaker" and len(set(test_speakers)) >= len(SPEAKERS):
            raise DataError("test_speakers holds every FSDD speaker, which leaves no voice to train on.")
        if not 1 <= min_digits <= max_digits:
            raise DataError(
                f"need 1 <= min_digits <= max_digits, got min_digits={min_digits}, max_digits={max_digits}."
            )
        if not 0 <= min_pause <= max_pause or edge < 0:
            raise DataError(f"need 0 <= min_pause <= max_pause and edge >= 0, got {min_pause}, {max_pause}, {edge}.")
        counts = {"train": train_utterances, "val": val_utterances, "test": test_utterances}
        if any(n < 1 for n in counts.values()):
            raise DataError(f"every split needs at least one utterance, got {counts}.")
        self.fsdd = FSDD(root, download=download, md5=md5, url=url, expected_recordings=expected_recordings)
        self.split = split
        self.test_speakers = test_speakers
        self.counts = counts
        self.digits = (min_digits, max_digits)
        self.pause = (min_pause, max_pause)
        self.edge = edge
        self.seed = seed

    def prepare(self) -> None:
        self.fsdd.prepare()

    def load(self, split: Split, sample_rate: int) -> Samples:
        pool = self._recordings()[split]
        if not pool:
            raise DataError(
                f"{self.fsdd.recordings} has no recordings for the {split} utterances of split={self.split!r}; "
                "is the folder complete?"
            )
        speakers = sorted(pool)
        # One stream per split, so a split's utterances do not change with another split's count
        rng = np.random.default_rng([self.seed, SPLITS.index(split)])
        clips: dict[Path, Tensor] = {}
        inputs, labels, names = [], [], []
        for index in range(self.counts[split]):
            speaker = speakers[rng.integers(len(speakers))]
            available = sorted(pool[speaker])  # digits this speaker has recordings of in this split
            digits = [
                available[i] for i in rng.integers(len(available), size=rng.integers(*self.digits, endpoint=True))
            ]
            words = []
            for digit in digits:
                takes = pool[speaker][digit]
                path = takes[rng.integers(len(takes))]
                if path not in clips:
                    clips[path] = read_audio(path, sample_rate)
                words.append(clips[path])
            pauses = rng.uniform(*self.pause, size=len(words) - 1)
            edges = rng.uniform(0, self.edge, size=2)
            inputs.append(join(words, pauses, edges, sample_rate))
            labels.append(VOCABULARY.encode(" ".join(WORDS[d] for d in digits)))
            names.append(f"{split}/{index:05d}_{speaker}_{''.join(map(str, digits))}")
        return Samples(inputs, labels, names)

    def group(self, key: str, name: str) -> str:
        return UTTERANCE.fullmatch(name)["speaker"]

    def _recordings(self) -> dict[Split, dict[str, dict[int, list[Path]]]]:
        """split -> speaker -> digit -> its recordings in that split."""
        pools: dict[Split, dict[str, dict[int, list[Path]]]] = {split: {} for split in SPLITS}
        for path, match in self.fsdd.files():
            speaker, take = match["speaker"], int(match["index"])
            if self.split == "speaker":
                held_out = speaker in self.test_speakers
                split = "test" if held_out else "val" if take in TEST_TAKES else "train"
            else:
                split = "test" if take in TEST_TAKES else "val" if take in VAL_TAKES else "train"
            pools[split].setdefault(speaker, {}).setdefault(int(match["digit"]), []).append(path)
        return pools


def join(words: list[Tensor], pauses: np.ndarray, edges: np.ndarray, sample_rate: int) -> Tensor:
    """Clips (T_i,) with `pauses` seconds of silence between them and `edges` seconds before and after: (T,)."""
    silence = [torch.zeros(round(s * sample_rate)) for s in pauses]
    parts = [torch.zeros(round(edges[0] * sample_rate))]
    for i, word in enumerate(words):
        parts += [word] if i == 0 else [silence[i - 1], word]
    return torch.cat([*parts, torch.zeros(round(edges[1] * sample_rate))])
