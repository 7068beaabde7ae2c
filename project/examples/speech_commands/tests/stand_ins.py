"""A stand-in for Speech Commands (tests/stand_ins.py says what a stand-in is): a few generated recordings
of every word, not the release's count."""

from pathlib import Path

from project.examples.speech_commands.source import WORDS
from project.examples.speech_commands.tests.speech_commands_format import write_speech_commands
from tests.stand_ins import StandIn


def speech_commands(folder: Path) -> list[str]:
    write_speech_commands(folder / "speech_commands_v0.02", WORDS)
    return [
        f"--data.source.init_args.root={folder}",
        "--data.source.init_args.download=false",
        "--data.source.init_args.expected_recordings=0",
    ]


STAND_INS: dict[str, StandIn] = {"project.examples.speech_commands.SpeechCommands": speech_commands}
