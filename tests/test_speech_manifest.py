"""Your own transcribed audio as JSON-lines manifests (project/tasks/speech_recognition/manifest.py): what a good
manifest gives, and the bad-input catalogue's manifest cases, each refused in one line naming the manifest and
the line's number."""

import json
import re
from pathlib import Path

import pytest
import torch

from project.engine.data import AudioDataModule
from project.engine.errors import DataError
from project.tasks.speech_recognition import SpeechManifest
from project.tasks.speech_recognition.vocabulary import BLANK
from tests.catalogue import BadInput, Refused, cases, check, cli
from tests.speech_format import RATE, write_manifests
from tests.wav_format import write_wav

GOOD = {"audio_filepath": "a.wav", "text": "go up", "duration": 0.5}


def _manifest(t: Path, *lines: object, name: str = "train.json") -> Path:
    """A manifest of `lines` (dicts as JSON, text as it is) beside the clips a.wav and b.wav."""
    for clip in ("a.wav", "b.wav"):
        if not (t / clip).exists():
            write_wav(t / clip, torch.zeros(RATE // 2).numpy(), RATE)
    path = t / name
    path.write_text("".join((json.dumps(line) if isinstance(line, dict) else line) + "\n" for line in lines))
    return path


def _list(t: Path, *lines: object, **kwargs) -> None:
    SpeechManifest(_manifest(t, *lines), **kwargs).listing("train")


def _fit(t: Path, *lines: object) -> None:
    """`fit` of the manifest recipe on a training manifest of `lines`, as the shell runs it."""
    train = f"--data.source.init_args.train={_manifest(t, *lines)}"
    nothing = ("--data.source.init_args.val=null", "--data.source.init_args.test=null")
    cli("fit", "--config=speech_manifest", train, *nothing, f"--trainer.logger.init_args.save_dir={t / 'logs'}")


def _one_line(line: int, what: str, name: str = "train.json") -> str:
    """The message of a refused line: the manifest's path and the line's number first, all on one line."""
    return rf"\A[^\n]*/{re.escape(name)}:{line}: [^\n]*{what}[^\n]*\Z"


def _with(**changes: object) -> dict:
    return {k: v for k, v in {**GOOD, **changes}.items() if v is not ...}


MANIFESTS = [
    BadInput("manifest: a line that is not JSON", lambda t: _list(t, GOOD, '{"audio_filepath": "b.wav", "te'),
             DataError, _one_line(2, "not JSON .* each line is one")),
    BadInput("manifest: a line that is a JSON list", lambda t: _list(t, GOOD, '["a.wav", "go", 0.5]'),
             DataError, _one_line(2, "a JSON list, not an object")),
    BadInput("manifest: a line without text", lambda t: _list(t, _with(text=...)),
             DataError, _one_line(1, "no 'text'")),
    BadInput("manifest: a line without duration or path", lambda t: _list(t, {"text": "go"}),
             DataError, _one_line(1, "no 'audio_filepath', 'duration'")),
    BadInput("manifest: a path that is a number", lambda t: _list(t, _with(audio_filepath=7)),
             DataError, _one_line(1, '"audio_filepath" must be a path .* got 7')),
    BadInput("manifest: text that is a list", lambda t: _list(t, _with(text=["go", "up"])),
             DataError, _one_line(1, r'"text" must be a string, got \[')),
    BadInput("manifest: a duration in quotes", lambda t: _list(t, GOOD, _with(duration="1.5")),
             DataError, _one_line(2, "\"duration\" must be a number of seconds, got '1.5'")),
    BadInput("manifest: a duration of zero", lambda t: _list(t, _with(duration=0)),
             DataError, _one_line(1, '"duration" must be positive, got 0')),
    BadInput("manifest: a duration of NaN", lambda t: _list(t, '{"audio_filepath": "a.wav", "text": "go", "duration": NaN}'),  # noqa: E501
             DataError, _one_line(1, '"duration" must be a number of seconds, got nan')),
    BadInput("manifest: a segment of a longer file", lambda t: _list(t, _with(offset=1.5)),
             DataError, _one_line(1, '"offset" 1.5: segments of a longer file are not read')),
    BadInput("manifest: an empty transcript", lambda t: _list(t, GOOD, GOOD, _with(text="  ")),
             DataError, _one_line(3, '"text" is empty')),
    BadInput("manifest: a clip that is not there", lambda t: _list(t, GOOD, _with(audio_filepath="gone/c.wav")),
             DataError, _one_line(2, r'"audio_filepath" gone/c\.wav is not a file \(looked for /.*/gone/c\.wav\)')),
    BadInput("manifest: a speaker that is a list", lambda t: _list(t, _with(speaker=["ann"])),
             DataError, _one_line(1, '"speaker" must be a name or a number')),
    BadInput("manifest: a character outside the given vocabulary",
             lambda t: _list(t, GOOD, _with(text="go úp!"), vocabulary="abcdefghijklmnopqrstuvwxyz"),
             DataError, _one_line(2, "the text has 'ú', '!', which the given vocabulary never use")),
    BadInput("manifest: a test character the training transcripts never use",
             lambda t: SpeechManifest(_manifest(t, GOOD), test=_manifest(t, GOOD, _with(text="gone"), name="test.json"))
             .listing("test"),
             DataError, _one_line(2, "the text has 'n', 'e', which the training transcripts never use", "test.json")),
    BadInput("manifest: a file that is not there",
             lambda t: SpeechManifest(t / "nowhere.json").listing("train"),
             FileNotFoundError, r"the manifest /.*/nowhere\.json does not exist"),
    BadInput("manifest: no lines", lambda t: _list(t, "", "  "),
             DataError, r"the manifest .*/train\.json lists no clips; write one JSON object a line"),
    BadInput("manifest: a vocabulary of spaces", lambda t: SpeechManifest(t / "train.json", vocabulary="  "),
             DataError, r"data\.source\.init_args\.vocabulary='  ' holds no characters"),
    BadInput("manifest: folds by speaker with a line without one",
             lambda t: SpeechManifest(_manifest(t, _with(speaker="ann"), _with(audio_filepath="b.wav")))
             .group("speaker", "b.wav"),
             DataError, _one_line(2, 'no "speaker"; cross-validation by speaker')),
    BadInput("manifest: a bad line through the command line",
             lambda t: _fit(t, GOOD, "{"), Refused,
             r"\A[^\n]*/train\.json:2: not JSON [^\n]*\n\(set PROJECT_DEBUG=1 to see the traceback\)"),
]  # fmt: skip


@pytest.mark.parametrize("case", cases(MANIFESTS))
def test_bad_manifest_is_refused_in_one_line_naming_its_line(case, tmp_path):
    check(case, tmp_path)


def test_a_manifest_lists_its_clips_with_their_tokens_and_names_relative_to_it(tmp_path):
    manifests = write_manifests(tmp_path / "speech", train=6, val=2, test=2)
    source = SpeechManifest(manifests["train"], manifests["val"], lowercase=True)
    assert source.classes == (BLANK, " ", "g", "h", "i", "o", "p", "u")
    listing = source.listing("train")
    lines = [json.loads(line) for line in manifests["train"].read_text().splitlines()]
    assert listing.names == [line["audio_filepath"] for line in lines] and listing.names[0].startswith("train/")
    assert [source.vocabulary.decode(t.tolist()) for t in listing.labels] == [line["text"] for line in lines]
    assert all(path.is_file() for path in listing.inputs)
    assert source.load("val", RATE).inputs[0].dtype == torch.float32 and source.listing("test") is None
    assert source.group("speaker", listing.names[1]) == lines[1]["speaker"]


def test_a_manifest_streams_from_its_files_or_decodes_into_memory_alike(tmp_path):
    manifests = write_manifests(tmp_path / "speech", train=10, val=4, test=2)
    batches = []
    for in_memory in (True, False):
        source = SpeechManifest(manifests["train"], manifests["val"], manifests["test"])
        data = AudioDataModule(source, sample_rate=RATE, batch_size=4, in_memory=in_memory, speed=0.0)
        data.setup("fit")
        batches.append(next(iter(data.val_dataloader())))
    (waves, lengths), (tokens, token_lengths) = batches[0]
    (waves_s, lengths_s), (tokens_s, token_lengths_s) = batches[1]
    assert (
        torch.equal(lengths, lengths_s)
        and torch.equal(tokens, tokens_s)
        and torch.equal(token_lengths, token_lengths_s)
    )
    assert torch.allclose(waves.float(), waves_s.float())


def test_absolute_paths_blank_lines_and_upper_case_are_read(tmp_path):
    clip = write_wav(tmp_path / "clips" / "x.wav", torch.zeros(RATE // 4).numpy(), RATE)
    manifest = tmp_path / "lists" / "train.json"
    manifest.parent.mkdir()
    manifest.write_text("\n" + json.dumps({"audio_filepath": str(clip), "text": " Go  UP ", "duration": 0.25}) + "\n\n")
    source = SpeechManifest(manifest, lowercase=True)
    assert source.entries("train")[0].line == 2 and source.entries("train")[0].text == "go up"
    assert source.listing("train").inputs == [clip]
