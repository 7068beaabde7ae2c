"""A stand-in for FSDD (tests/stand_ins.py says what a stand-in is): a few generated recordings, not the
release's count."""

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


STAND_INS: dict[str, StandIn] = {"project.examples.fsdd.FSDD": fsdd}
