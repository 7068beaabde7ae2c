"""A stand-in for CIFAR-10 (tests/stand_ins.py says what a stand-in is)."""

from pathlib import Path

from project.examples.cifar10.tests.cifar_format import write_cifar10
from tests.stand_ins import StandIn


def cifar10(folder: Path) -> list[str]:
    write_cifar10(folder, per_batch=20)
    return [f"--data.source.init_args.root={folder}", "--data.source.init_args.download=false", "--data.val_size=20"]


STAND_INS: dict[str, StandIn] = {"project.examples.cifar10.CIFAR10": cifar10}
