"""A fork makes the template its own (project/engine/fork.py): `rename NEWNAME`, then `remove-examples`, on a copy
of the tree, leave it passing ruff and its tests, with runs written under the old name still loadable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from project.engine.fork import PACKAGE, _patterns, _with_former_name
from tests.recipes import needs_recipe
from tests.source_tree import copy_source_tree

MODULES = ["cli", "data", "models", "configs"]


OLD = "pro" + "ject"  # spelled so that a rename of this tree leaves these cases as they are


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("from {old}.data import CIFAR10", "from mynet.data import CIFAR10"),
        ("from {old} import metrics", "from mynet import metrics"),
        ("import {old}\n", "import mynet\n"),
        ("class_path: {old}.models.ResNet", "class_path: mynet.models.ResNet"),
        ("see {old}/cli.py", "see mynet/cli.py"),
        (r"match=r'{old}\.data\.Source has no'", r"match=r'mynet\.data\.Source has no'"),
        ('TRUSTED = ("{old}", "torch")', 'TRUSTED = ("mynet", "torch")'),
        ("{old} fit --config fsdd", "mynet fit --config fsdd"),
        # what is not the package stays
        ("{old}.append(rate)", "{old}.append(rate)"),
        ("the {old}. A template", "the {old}. A template"),
        (r"match=r'{old}\.json does not exist'", r"match=r'{old}\.json does not exist'"),
        ("pyproject.toml and https://pypi.org/{old}/x", "pyproject.toml and https://pypi.org/{old}/x"),
    ],
)
def test_rename_rewrites_references_to_the_package_only(before, after):
    text = before.format(old=OLD)
    for pattern, replacement in _patterns(OLD, "mynet", MODULES, toml=False):
        text = pattern.sub(replacement, text)
    assert text == after.format(old=OLD)


def test_pyproject_keeps_its_project_tables():
    toml = '[{old}]\nname = "{old}"\ndev = ["{old}[sweep]"]\n[{old}.scripts]\n{old} = "{old}.cli:entry"\n'
    text = toml.format(old=OLD)
    for pattern, replacement in _patterns(OLD, "mynet", MODULES, toml=True):
        text = pattern.sub(replacement, text)
    expected = '[{old}]\nname = "mynet"\ndev = ["mynet[sweep]"]\n[{old}.scripts]\nmynet = "mynet.cli:entry"\n'
    assert text == expected.format(old=OLD)


def test_a_rename_remembers_every_former_name():
    init = '"""Doc."""\nFORMER_NAMES = ()\n'
    twice = _with_former_name(_with_former_name(init, "first"), "second")
    assert twice == '"""Doc."""\nFORMER_NAMES = ("first", "second")\n'


def _run(copy: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    result = subprocess.run(args, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
@needs_recipe("cifar10")  # strips our examples: a fork that removed them has none to strip
def test_a_renamed_and_stripped_copy_passes_ruff_and_its_tests(tmp_path):
    new = "digitsnet" if PACKAGE != "digitsnet" else "mynet"  # a fork already named digitsnet renames again
    copy = copy_source_tree(tmp_path / "fork")
    renamed = _run(copy, sys.executable, "-m", f"{PACKAGE}.fork", "rename", new).stdout
    assert f"moved {PACKAGE}/ to {new}/" in renamed and "rewrote pyproject.toml" in renamed
    removed = _run(copy, sys.executable, "-m", f"{new}.fork", "remove-examples").stdout
    assert f"deleted {new}/examples/cifar10/" in removed and "set DEFAULT_RECIPE" in removed
    assert not (copy / PACKAGE).exists() and not list(copy.rglob("cifar10*"))
    _run(copy, sys.executable, "-m", "ruff", "check", ".")
    _run(copy, sys.executable, "-m", "ruff", "format", "--check", ".")
    # a class path written before the rename resolves to the renamed package's own class
    _run(
        copy,
        sys.executable,
        "-c",
        f"import {new}.cli, {PACKAGE}.cli; assert {PACKAGE}.cli.main is {new}.cli.main",
    )
    tests = ["tests/test_recipes.py", "tests/test_sizes.py", "tests/test_plain_datamodule.py"]
    result = _run(copy, sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests, timeout=1200)
    assert " passed" in result.stdout and "failed" not in result.stdout
