"""Speech Commands' source: the official split lists, the 12-class task's unknown and silence, speakers."""

from pathlib import Path

import pytest
import torch

from project.examples.speech_commands import SpeechCommands
from project.examples.speech_commands.source import COMMANDS, SILENCE, UNKNOWN, WORDS
from project.examples.speech_commands.tests.speech_commands_format import write_speech_commands
from tests.catalogue import BadInput, cases, check


def test_speech_commands_follows_the_official_lists(tmp_path):
    root = write_speech_commands(tmp_path / "speech_commands_v0.02", WORDS)
    data = SpeechCommands(tmp_path, task=35, download=False, expected_recordings=0)
    data.prepare()  # finds the extracted folder; downloads nothing
    assert data.classes == WORDS
    for split, takes in (("train", 2), ("val", 1), ("test", 1)):
        clips, labels, names = data.load(split, 16000)
        assert torch.equal(labels.bincount(minlength=35), torch.full((35,), takes)), split
    assert all(len(c) == 4000 for c in clips)
    assert set(names) == set((root / "testing_list.txt").read_text().split())
    assert (root / "validation_list.txt").read_text().count("\n") == 35


def test_speech_commands_twelve_classes_add_unknown_and_silence(tmp_path):
    write_speech_commands(tmp_path / "speech_commands_v0.02", WORDS)
    data = SpeechCommands(tmp_path, task=12, download=False, expected_recordings=0)
    assert data.classes == (*COMMANDS, UNKNOWN, SILENCE)
    clips, labels, names = data.load("train", 8000)
    counts = labels.bincount(minlength=12)
    assert torch.equal(counts, torch.full((12,), 2)), "unknown and silence are as common as an average command"
    silence = [c for c, label in zip(clips, labels.tolist(), strict=True) if label == 11]
    assert all(len(c) == 8000 for c in silence), "silence is one second of background noise at the data's rate"
    assert names[-1].startswith("_background_noise_/") and names[-1].endswith("s")
    again = data.load("train", 8000).inputs
    assert all(torch.equal(a, b) for a, b in zip(clips, again, strict=True)), "seeded: the same cuts every load"


def test_speech_commands_tell_the_speaker(tmp_path):
    commands = SpeechCommands(tmp_path, download=False)
    assert commands.group("speaker", "yes/0a7c2a8d_nohash_1.wav") == "0a7c2a8d"
    assert commands.group("speaker", "_background_noise_/pink_noise.wav@1.250s") == "pink_noise.wav"


def _short_speech_commands(tmp: Path) -> None:
    write_speech_commands(tmp / "speech_commands_v0.02", WORDS)
    listed = (tmp / "speech_commands_v0.02" / "testing_list.txt").read_text().split()
    (tmp / "speech_commands_v0.02" / listed[0]).unlink()
    SpeechCommands(tmp, download=False, expected_recordings=0).load("train", 16000)


SPEECH_COMMANDS_BAD_INPUTS = [
    BadInput(
        "Speech Commands folder lacking a listed recording",
        _short_speech_commands,
        FileNotFoundError,
        r"speech_commands_v0\.02 is incomplete: .*lacks 1 that its split lists name \(backward/.*\.wav.*Delete",
    ),
]


@pytest.mark.parametrize("case", cases(SPEECH_COMMANDS_BAD_INPUTS))
def test_bad_speech_commands_files_are_refused_with_a_clear_error(case, tmp_path):
    """The reliability catalogue's cases for the Speech Commands source (see tests/catalogue.py)."""
    check(case, tmp_path)
