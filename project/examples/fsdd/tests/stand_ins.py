"""Stand-ins for FSDD and the connected digits made from it (tests/stand_ins.py says what a stand-in is): a few
generated recordings, not the release's count."""

from pathlib import Path

from project.examples.fsdd.tests.fsdd_format import write_fsdd
from tests.stand_ins import StandIn


def fsdd(folder: Path) -> list[str]:
    write_fsdd(folder, speakers=("george", "theo", "lucas"), takes=6)
    return [
        f"--data.source.init_args.root={folder}",
        "--data.source.init_args.download=false",
        "--data.source.init_args.expected_recordings=0",
    ]


def connected_digits(folder: Path) -> list[str]:
    write_fsdd(folder, speakers=("george", "theo", "lucas"), takes=12)  # takes 10-11 make the training utterances
    return [
        f"--data.source.init_args.root={folder}",
        "--data.source.init_args.download=false",
        "--data.source.init_args.expected_recordings=0",
        "--data.source.init_args.train_utterances=24",
        "--data.source.init_args.val_utterances=8",
        "--data.source.init_args.test_utterances=8",
    ]


STAND_INS: dict[str, StandIn] = {
    "project.examples.fsdd.FSDD": fsdd,
    "project.examples.fsdd.ConnectedDigits": connected_digits,
}
