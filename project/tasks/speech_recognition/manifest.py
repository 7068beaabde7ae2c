"""Your own transcribed audio, listed as speech toolkits (NeMo, ESPnet's converters, ...) list it: a JSON-lines
manifest per split, one clip a line:

    {"audio_filepath": "clips/0001.wav", "text": "turn the lights off", "duration": 1.92}

Paths are relative to the manifest's folder (or absolute). A line may add "speaker", which cross-validation by
speaker reads (`data.fold_groups: speaker`). Every line is checked when its split is listed; a bad one stops
the run in one line naming the manifest and the line's number.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from project.engine.data.audio import read_audio
from project.engine.data.source import AudioSource, Samples, Split
from project.engine.errors import DataError
from project.tasks.speech_recognition.vocabulary import Vocabulary, normalize_text

KEYS = ("audio_filepath", "text", "duration")


@dataclass(frozen=True)
class Entry:
    path: Path  # the clip, resolved
    name: str  # audio_filepath as the manifest writes it
    text: str  # normalized
    duration: float
    speaker: str | None
    line: int


class SpeechManifest(AudioSource):
    """Transcribed clips listed in JSON-lines manifests. Decoded into memory, or (`data.in_memory: false`) each
    clip read from its file when its batch is fetched, so a set larger than memory trains with flat memory.

    Args:
        train: the training manifest.
        val: the validation manifest; None holds out `data.val_size` of the training clips.
        test: the test manifest; None: the source has no test split.
        vocabulary: the characters a transcript may use, e.g. "abcdefghijklmnopqrstuvwxyz' "; None takes every
            character of the training transcripts. A transcript with another character is refused, naming
            its line.
        lowercase: lower-case every transcript before anything else (words are always separated by single
            spaces).
    """

    group_keys = ("speaker",)

    def __init__(
        self,
        train: str | Path,
        val: str | Path | None = None,
        test: str | Path | None = None,
        vocabulary: str | None = None,
        lowercase: bool = False,
    ):
        self.manifests: dict[Split, Path | None] = {
            "train": Path(train),
            "val": None if val is None else Path(val),
            "test": None if test is None else Path(test),
        }
        if vocabulary is not None and not vocabulary.strip():
            raise DataError(f"data.source.init_args.vocabulary={vocabulary!r} holds no characters; give them, or null.")
        self.lowercase = lowercase
        self._given = None if vocabulary is None else Vocabulary.of(normalize_text(vocabulary, lowercase) + " ")
        self._entries: dict[Split, list[Entry]] = {}
        self._vocabulary: Vocabulary | None = self._given
        self._speakers: dict[str, tuple[Path, Entry]] | None = None

    @property
    def vocabulary(self) -> Vocabulary:
        """The given characters, or those of the training transcripts (the training manifest is read once)."""
        if self._vocabulary is None:
            self._vocabulary = Vocabulary.of(entry.text for entry in self.entries("train"))
        return self._vocabulary

    @property
    def classes(self) -> tuple[str, ...]:  # the tokens: what a target's ids index
        return self.vocabulary.tokens

    def entries(self, split: Split) -> list[Entry]:
        """The split's lines, checked (cached)."""
        if split not in self._entries:
            manifest = self.manifests[split]
            self._entries[split] = [] if manifest is None else read_manifest(manifest, self.lowercase)
            if split != "train" or self._given is not None:
                self._check_characters(split)
        return self._entries[split]

    def _check_characters(self, split: Split) -> None:
        vocabulary = self.vocabulary
        for entry in self._entries[split]:
            unknown = vocabulary.unknown(entry.text)
            if unknown:
                source = "the given vocabulary" if self._given is not None else "the training transcripts"
                raise DataError(
                    f"{self.manifests[split]}:{entry.line}: the text has {', '.join(map(repr, unknown))}, which "
                    f"{source} never use ({vocabulary.describe()}); fix the transcript, or add the character "
                    "to data.source.init_args.vocabulary."
                )

    def _split(self, split: Split) -> list[Entry] | None:
        return None if self.manifests[split] is None else self.entries(split)

    def listing(self, split: Split) -> Samples | None:
        entries = self._split(split)
        if entries is None:
            return None
        return Samples([e.path for e in entries], self._tokens(entries), [e.name for e in entries])

    def load(self, split: Split, sample_rate: int) -> Samples | None:
        entries = self._split(split)
        if entries is None:
            return None
        clips = [read_audio(e.path, sample_rate) for e in entries]
        return Samples(clips, self._tokens(entries), [e.name for e in entries])

    def _tokens(self, entries: list[Entry]) -> list[Tensor]:
        return [self.vocabulary.encode(e.text) for e in entries]

    def group(self, key: str, name: str) -> str:
        if self._speakers is None:
            self._speakers = {}
            for split, manifest in self.manifests.items():
                for entry in self.entries(split) if manifest is not None else ():
                    self._speakers.setdefault(entry.name, (manifest, entry))
        manifest, entry = self._speakers[name]
        if entry.speaker is None:
            raise DataError(
                f'{manifest}:{entry.line}: no "speaker"; cross-validation by speaker (data.fold_groups: speaker) '
                'needs one on every line, e.g. "speaker": "spk01".'
            )
        return entry.speaker


def read_manifest(manifest: Path, lowercase: bool = False) -> list[Entry]:
    """Every line of a JSON-lines manifest, checked; a bad line is refused with its number."""
    if not manifest.is_file():
        raise FileNotFoundError(f"the manifest {manifest.resolve()} does not exist; point the source at your manifest.")
    entries = []
    with open(manifest, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                entries.append(_entry(manifest, number, line, lowercase))
    if not entries:
        raise DataError(f"the manifest {manifest} lists no clips; write one JSON object a line ({_FORMAT}).")
    return entries


_FORMAT = '{"audio_filepath": "clip.wav", "text": "...", "duration": 1.5}'


def _entry(manifest: Path, number: int, line: str, lowercase: bool) -> Entry:
    where = f"{manifest}:{number}"
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: not JSON ({err.msg} at column {err.colno}); each line is one {_FORMAT}.") from None
    if not isinstance(item, dict):
        raise DataError(f"{where}: a JSON {type(item).__name__}, not an object; each line is one {_FORMAT}.")
    missing = [key for key in KEYS if key not in item]
    if missing:
        raise DataError(f"{where}: no {', '.join(map(repr, missing))}; each line is one {_FORMAT}.")
    path, text, duration = item["audio_filepath"], item["text"], item["duration"]
    if not isinstance(path, str) or not path:
        raise DataError(f'{where}: "audio_filepath" must be a path (a string), got {path!r}.')
    if not isinstance(text, str):
        raise DataError(f'{where}: "text" must be a string, got {text!r}.')
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not math.isfinite(duration):
        raise DataError(f'{where}: "duration" must be a number of seconds, got {duration!r}.')
    if duration <= 0:
        raise DataError(f'{where}: "duration" must be positive, got {duration}.')
    if item.get("offset", 0) != 0:
        raise DataError(
            f'{where}: "offset" {item["offset"]!r}: segments of a longer file are not read; cut the clip into a '
            "file of its own."
        )
    text = normalize_text(text, lowercase)
    if not text:
        raise DataError(f'{where}: "text" is empty; every clip needs its transcript (remove the line if it has none).')
    speaker = item.get("speaker")
    if speaker is not None and not isinstance(speaker, str | int):
        raise DataError(f'{where}: "speaker" must be a name or a number, got {speaker!r}.')
    resolved = Path(path) if Path(path).is_absolute() else manifest.parent / path
    if not resolved.is_file():
        raise DataError(f'{where}: "audio_filepath" {path} is not a file (looked for {resolved.resolve()}).')
    return Entry(resolved, path, text, float(duration), None if speaker is None else str(speaker), number)
