"""The CIFAR-10 recipe, stopped by a signal in the middle of a step, resumes bit-identical to a run never
stopped (tests/test_interrupts.py holds the machinery's own cases)."""

import signal
from pathlib import Path

import pytest

from project.examples.cifar10.tests.cifar_format import write_cifar10
from project.examples.cifar10.tests.conftest import tiny_cifar_args
from tests.test_interrupts import EPOCHS, _assert_resumes_exactly


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cifar_format_stopped_mid_step_resumes_exactly(signum, tmp_path):
    write_cifar10(tmp_path / "data", per_batch=40)  # 200 training images, 100 held out: 2 steps an epoch

    def args(log_dir: Path) -> list[str]:
        # the recipe named: the resume then takes it, not the first run's config (which names SignalAt)
        recipe = ["--config=cifar10", *tiny_cifar_args(tmp_path / "data", log_dir, epochs=EPOCHS)]
        return [*recipe, "--trainer.deterministic=true"]

    _assert_resumes_exactly(args, signum, 2, 2, tmp_path)
