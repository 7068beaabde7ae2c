"""Stand-ins for our example data sets (CIFAR-10, FSDD, Speech Commands); see tests/stand_ins.py.
`python -m project.fork remove-examples` deletes this file with the examples."""

from pathlib import Path

from project.data.sources.speech_commands import WORDS
from tests.cifar_format import write_cifar10
from tests.stand_ins import StandIn
from tests.wav_format import write_fsdd, write_speech_commands

# A few generated recordings, not the release's count
AUDIO = ["--data.source.init_args.download=false", "--data.source.init_args.expected_recordings=0"]


def cifar10(folder: Path) -> list[str]:
    write_cifar10(folder, per_batch=20)
    return [f"--data.source.init_args.root={folder}", "--data.source.init_args.download=false", "--data.val_size=20"]


def fsdd(folder: Path) -> list[str]:
    write_fsdd(folder, speakers=("george", "theo", "lucas"), takes=6)
    return [f"--data.source.init_args.root={folder}", *AUDIO]


def speech_commands(folder: Path) -> list[str]:
    write_speech_commands(folder / "speech_commands_v0.02", WORDS)
    return [f"--data.source.init_args.root={folder}", *AUDIO]


STAND_INS: dict[str, StandIn] = {
    "project.data.CIFAR10": cifar10,
    "project.data.FSDD": fsdd,
    "project.data.SpeechCommands": speech_commands,
}
