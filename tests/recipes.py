"""The machinery tests' own recipe: a synthetic table and a small MLP that train in seconds on a CPU.

Nothing here is a shipped data set, network or config, so a fork that deletes those (CIFAR-10, say)
keeps the tests of the CLI, checkpoints, reports and reliability green. `tiny_args` is the command
line: `tests/tiny.yaml` states the whole task.
"""

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from project.engine.data import Samples, Source
from project.engine.recipes import shipped
from tests.conftest import cpu_trainer_args

TINY = Path(__file__).resolve().parent / "tiny.yaml"
CLASSIFIER = "project.tasks.classification.Classifier"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CLASSES = ("north", "east", "south")


class TinyTable(Source):
    """Feature vectors (F,) around one of three unit directions (the class), with noise; learnable to
    about 100% in a few epochs. Seeded per split, so every run reads the same data.

    Args:
        train, test: samples in each split (validation is held out of train by the DataModule).
        features: F.
        root: a folder `prepare` creates, standing in for a download, so a test can see whether the
            data was touched.
    """

    classes = CLASSES

    def __init__(self, train: int = 100, test: int = 100, features: int = 8, root: str | None = None):
        self.sizes = {"train": train, "test": test}
        self.features = features
        self.root = root

    @property
    def input_sizes(self) -> dict[str, int]:
        return {"in_features": self.features}

    def prepare(self) -> None:
        if self.root is not None:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    def load(self, split: str) -> Samples | None:
        if split == "val":
            return None
        generator = torch.Generator().manual_seed(("train", "test").index(split))
        n = self.sizes[split]
        labels = torch.randint(0, len(CLASSES), (n,), generator=generator)
        centres = torch.nn.functional.one_hot(labels, self.features).float() * 3
        return Samples(centres + torch.randn(n, self.features, generator=generator), labels)


class TinyNet(nn.Module):
    """(B, F) -> (B, num_classes), with BatchNorm and dropout, whose statistics and masks a resume must replay."""

    def __init__(self, num_classes: int, in_features: int = 8, hidden: int = 16, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def classifier(**init_args) -> dict:
    """A recipe's `model` section: our Classifier with these arguments."""
    return {"class_path": CLASSIFIER, "init_args": init_args}


def needs_recipe(name: str) -> pytest.MarkDecorator:
    """Skip a test of a shipped example recipe in a fork that removed it (`python -m project.fork
    remove-examples`), saying so in the summary."""
    missing = name not in shipped()
    return pytest.mark.skipif(missing, reason=f"the recipe {name} is not here (removed with the examples)")


def tiny_args(log_dir: Path, epochs: int = 3) -> list[str]:
    """The tiny recipe on one CPU process, logging often (tiny runs have few steps), logs in `log_dir`."""
    return [f"--config={TINY}", *cpu_trainer_args(log_dir, epochs)]


def image_folder_args(root: Path, log_dir: Path, widths: str = "[8,8,8,8]", epochs: int = 3) -> list[str]:
    """The tiny recipe's training with a small ResNet (`widths` per stage) on the folder of images `root`
    (tests/image_tree.py) at 16x16, batches of 6, a quarter held out, deterministic."""
    return [
        f"--config={TINY}",
        "--model.net=project.models.ResNet",
        "--model.net.init_args.channels_last=false",
        f"--model.net.init_args.widths={widths}",
        "--data=project.engine.data.ImageDataModule",
        "--data.source=project.engine.data.ImageFolder",
        f"--data.source.init_args.root={root}",
        "--data.source.init_args.image_size=16",
        "--data.batch_size=6",
        "--data.val_size=0.25",
        "--trainer.precision=32-true",
        "--trainer.deterministic=true",
        *cpu_trainer_args(log_dir, epochs),
    ]


def run_dir(log_dir: Path, name: str = "tiny") -> Path:
    """The latest `version_<n>` folder of the runs named `name` under `log_dir`."""
    runs = sorted((log_dir / name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    return runs[-1]
