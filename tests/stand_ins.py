"""Synthetic stand-ins for the data sets recipes read, keyed by the source's class path: each writes a
small copy of the data into a folder and returns the command-line overrides that point a recipe at it.

tests/test_recipes.py trains every recipe found by name a few steps on the stand-in of its source. The
stand-ins are gathered from every `stand_ins*.py` module's `STAND_INS`, in tests/ or in a `tests/` folder
inside the package: a fork adds its own in a module of its own (`tests/stand_ins_mine.py`, or beside its
task), and a recipe whose source has none is reported as skipped, not failed. These are for the generic
sources; each example's are in its own tests/ folder.
"""

from collections.abc import Callable
from pathlib import Path

import torch

from tests.image_tree import write_image_tree
from tests.wav_format import write_wav_folder

StandIn = Callable[[Path], list[str]]


def feature_files(folder: Path) -> list[str]:
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        torch.save({"features": torch.randn(60, 16), "labels": torch.arange(60) % 3}, folder / f"{split}.pt")
    files = {split: folder / f"{split}.pt" for split in ("train", "test")}
    return [f"--data.source.init_args.{split}={path}" for split, path in files.items()]


def image_folder(folder: Path) -> list[str]:
    for split in ("train", "test"):
        write_image_tree(folder / split, per_class=8)  # 24 - 3 held out: 2 full batches of 8
    return [f"--data.source.init_args.root={folder}", "--data.val_size=3"]


def wav_folder(folder: Path) -> list[str]:
    write_wav_folder(folder, per_class=10)  # 3 classes: 24 train, 3 validate, 3 test at 8 kHz
    return [f"--data.source.init_args.root={folder}", "--data.sample_rate=8000"]


STAND_INS: dict[str, StandIn] = {
    "project.engine.data.FeatureFiles": feature_files,
    "project.engine.data.ImageFolder": image_folder,
    "project.engine.data.WavFolder": wav_folder,
}
