"""A fork replaces our examples with its own data: deleting the CIFAR-10 recipes, their source and their
tests must leave the machinery tests green. Proved on a copy of the tree, with pytest in a subprocess."""

import os
import re
import subprocess
import sys

import pytest

from tests.source_tree import copy_source_tree

# The tests of the CLI, checkpoints, loaders, reports and reliability: they run on tests/recipes.py
MACHINERY = [
    "tests/test_datamodule.py",
    "tests/test_device_loader.py",
    "tests/test_internals.py",
    "tests/test_reliability.py",
    "tests/test_reports.py",
    "tests/test_user_errors.py",
]


@pytest.mark.slow
def test_machinery_tests_pass_without_cifar10(tmp_path):
    copy = tmp_path / "fork"
    copy_source_tree(copy)
    gone = [*copy.glob("configs/cifar10*.yaml"), copy / "project/data/sources/cifar10.py"]
    gone += [*copy.glob("tests/*cifar*"), *copy.glob("benchmarks/cifar10*")]
    for path in gone:
        path.unlink()
    exports = copy / "project/data/__init__.py"  # what a fork edits besides deleting: the package's exports
    lines = exports.read_text().splitlines(keepends=True)
    exports.write_text("".join(line for line in lines if "cifar10" not in line.lower()))
    assert not list(copy.rglob("cifar10*.py")) and not list((copy / "configs").glob("cifar10*"))

    env = {**os.environ, "PYTHONPATH": str(copy)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", *MACHINERY],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
    # The bad-input catalogue ran there, every case of it (tests/catalogue.py's tally, from conftest)
    tally = re.search(r"all catalogues: bad inputs tried: (\d+), refused with a clear error: (\d+)", result.stdout)
    assert tally and int(tally[1]) > 0 and tally[1] == tally[2], result.stdout[-3000:]
