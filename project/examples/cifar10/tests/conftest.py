"""CIFAR-10's test fixtures: a small synthetic cifar-10-batches-py, and the overrides that shrink a recipe."""

from pathlib import Path

import pytest

from project.examples.cifar10.tests.cifar_format import write_cifar10
from tests.conftest import cpu_trainer_args


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    """A data_dir holding a small synthetic cifar-10-batches-py (500 train, 100 test images)."""
    write_cifar10(tmp_path / "data", per_batch=100)
    return tmp_path / "data"


def tiny_cifar_args(data_dir: Path, log_dir: Path, epochs: int = 3) -> list[str]:
    """CLI overrides that shrink the default config to seconds on a CPU; everything else stays as shipped."""
    return [
        f"--data.source.init_args.root={data_dir}",
        "--data.batch_size=50",
        "--data.val_size=100",
        "--data.source.init_args.download=false",
        "--model.net.init_args.widths=[8,16,16,16]",
        "--model.net.init_args.channels_last=false",
        "--trainer.precision=32-true",
        *cpu_trainer_args(log_dir, epochs),
    ]
