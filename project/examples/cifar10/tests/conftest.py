"""CIFAR-10's test fixtures: a small synthetic cifar-10-batches-py, and the overrides that shrink a recipe."""

import os
from pathlib import Path

import pytest

from project.examples.cifar10.tests.cifar_format import write_cifar10
from tests.conftest import cpu_trainer_args

# A script that writes a real cifar-10-batches-py into the folder it is given (from the JPEG copy of
# $PROJECT_TEST_DATA); `.ci/run` sets it where one is at hand
CIFAR10_CONVERTER_ENV = "PROJECT_TEST_CIFAR10_CONVERTER"


def cifar10_converter() -> Path:
    """The script named by $PROJECT_TEST_CIFAR10_CONVERTER; skips the test when it is not set or absent."""
    script = os.environ.get(CIFAR10_CONVERTER_ENV)
    if not script or not Path(script).is_file():
        pytest.skip(f"real-data test: set {CIFAR10_CONVERTER_ENV} to a script writing cifar-10-batches-py")
    return Path(script)


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
