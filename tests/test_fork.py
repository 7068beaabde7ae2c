"""A fork makes the template its own (project/engine/fork.py): `rename NEWNAME`, then `remove-examples`, on a copy
of the tree, leave it passing ruff and its tests, with runs written under the old name still loadable, the pages
naming nothing removed, and `fit` saying what to write. Names the tree cannot take are refused in one line,
changing nothing (bad-input catalogue cases, tests/catalogue.py)."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from project.engine import fork
from project.engine.fork import PACKAGE, _patterns, _with_former_name, strip_examples
from tests.catalogue import BadInput, Refused, cases, check
from tests.source_tree import copy_source_tree
from tests.test_docs import example_words

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["cli", "data", "models", "configs"]


OLD = "pro" + "ject"  # spelled so that a rename of this tree leaves these cases as they are
UPPER = OLD.upper()


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
        # the environment variables named after it, wherever they are set or read
        ("`{upper}_DEBUG=1` shows it", "`MYNET_DEBUG=1` shows it"),
        ('export {upper}_TEST_DATA="$(pwd)"', 'export MYNET_TEST_DATA="$(pwd)"'),
        ('os.environ["{upper}_TEST_CIFAR10_CONVERTER"]', 'os.environ["MYNET_TEST_CIFAR10_CONVERTER"]'),
        ("the script named by ${upper}_TEST_DATA", "the script named by $MYNET_TEST_DATA"),
        # the README's tree of the files
        ("```text\n{old}/\n  cli.py", "```text\nmynet/\n  cli.py"),
        # what is not the package stays
        ("{old}.append(rate)", "{old}.append(rate)"),
        ("the {old}. A template", "the {old}. A template"),
        (r"match=r'{old}\.json does not exist'", r"match=r'{old}\.json does not exist'"),
        ("pyproject.toml and https://pypi.org/{old}/x", "pyproject.toml and https://pypi.org/{old}/x"),
        ("MY{upper}_HOME and {upper}S_X", "MY{upper}_HOME and {upper}S_X"),
        ("a {old}/ folder of yours", "a {old}/ folder of yours"),
    ],
)
def test_rename_rewrites_references_to_the_package_only(before, after):
    text = before.format(old=OLD, upper=UPPER)
    for pattern, replacement in _patterns(OLD, "mynet", MODULES, toml=False):
        text = pattern.sub(replacement, text)
    assert text == after.format(old=OLD, upper=UPPER)


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


# --- what remove-examples drops from a page ---------------------------------------------------------

PAGE = """# Title

Generic text.

<!-- example: alpha -->
Alpha's paragraph,
over two lines.
<!-- /example -->
<!-- without: alpha
Shown once alpha is gone.
-->

| row | what |
| --- | --- |
| generic | stays |
| alpha's | goes with alpha | <!-- example: alpha -->
| beta's | goes with beta | <!-- example: beta -->
- both: goes with either <!-- example: alpha beta -->

<!-- example: * -->
About the examples in general.
<!-- /example -->

<!-- example: alpha -->
```bash
python -m x fit --config alpha
```
<!-- /example -->

```bash
python -m x fit --config mine  # example: alpha (a page's mark is an HTML comment; this one shows, and stays)
```

Mentions `<!-- example: NAME -->` in passing, and a comment # example: not a mark
<!-- example: gamma -->
gamma is not an example here: this block stays
<!-- /example -->
"""


def test_remove_examples_drops_the_marked_blocks_and_lines_and_shows_what_stands_in():
    known = {"alpha", "beta"}
    alpha_gone = strip_examples(PAGE, {"alpha"}, known)
    assert "Alpha's paragraph" not in alpha_gone and "Shown once alpha is gone.\n" in alpha_gone
    assert "<!-- without" not in alpha_gone and "| alpha's" not in alpha_gone and "--config alpha" not in alpha_gone
    assert "| beta's | goes with beta | <!-- example: beta -->" in alpha_gone, "beta stays"
    assert "- both" not in alpha_gone, "a line naming two goes when either goes"
    assert "About the examples in general." in alpha_gone, "`*` goes only when no example is left"
    assert "Generic text." in alpha_gone and "| generic | stays |" in alpha_gone and "--config mine" in alpha_gone
    assert "in passing" in alpha_gone and "# example: not a mark" in alpha_gone and "(a page's mark" in alpha_gone
    assert "gamma is not an example here" in alpha_gone, "a mark naming no example is not one"
    assert "\n\n\n" not in alpha_gone
    all_gone = strip_examples(PAGE, known, known)
    assert "About the examples" not in all_gone and "| beta's" not in all_gone
    assert strip_examples(PAGE, set(), known) == PAGE, "nothing removed: the page as it was"
    assert strip_examples(all_gone, known, known) == all_gone, "stripping again changes nothing"


def test_a_script_marks_its_lines_with_a_comment():
    script = 'export A=1\nexport ALPHA_DATA="$(pwd)"  # example: alpha\nrun "<!-- example: alpha -->"\n'
    assert strip_examples(script, {"alpha"}, {"alpha"}, page=False) == 'export A=1\nrun "<!-- example: alpha -->"\n'


def _tree(root: Path, package: str = PACKAGE) -> Path:
    """The least the fork commands take for a repository: pyproject.toml beside the package, its engine's
    fork.py, its settings and two examples with a recipe each, and a marked README."""
    (root / package / "engine").mkdir(parents=True)
    (root / package / "engine" / "fork.py").write_text("")
    (root / package / "engine" / "__init__.py").write_text("")
    (root / package / "__init__.py").write_text('"""Doc."""\n\nFORMER_NAMES = ()\n')
    (root / package / "settings.py").write_text('DEFAULT_RECIPE = "alpha"\n')
    for name in ("alpha", "beta"):
        (root / package / "examples" / name / "configs").mkdir(parents=True)
        (root / package / "examples" / name / "__init__.py").write_text("")
        (root / package / "examples" / name / "configs" / f"{name}.yaml").write_text("seed_everything: 0\n")
    (root / package / "examples" / "__init__.py").write_text("")
    (root / "configs").mkdir()
    (root / "configs" / "features.yaml").write_text("seed_everything: 0\n")
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{package}"\n\n[tool.setuptools]\npackages = [\n    "{package}",\n'
        f'    "{package}.examples.alpha",\n    "{package}.examples.beta",\n]\n\n[tool.ruff]\nline-length = 120\n'
    )
    (root / ".gitignore").write_text("/data/\n/secret/\n")
    (root / "README.md").write_text(PAGE)
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _fork(root: Path, *args: str) -> str:
    """`python -m project.fork --root ROOT ARGS` in this process: its stdout, or `Refused` with its one `error:`
    line once the tree is checked unchanged."""
    before = _snapshot(root)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = fork.main(["--root", str(root), *args])
    if status == 0:
        return out.getvalue()
    lines = err.getvalue().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), (status, err.getvalue())
    assert _snapshot(root) == before, "a refused command must change nothing"
    raise Refused(lines[0][len("error: ") :])


def _rename_in_tree(name: str):
    return lambda t: _fork(_tree(t), "rename", name)


def _long_comment(t: Path) -> None:
    """A comment one character short of the line length that names the package twice: any longer name breaks it."""
    _tree(t)
    comment = f"# see {PACKAGE}/engine/fork.py and {PACKAGE}.engine.fork "
    (t / PACKAGE / "engine" / "long.py").write_text(comment + "x" * (119 - len(comment)) + "\n")
    _fork(t, "rename", PACKAGE + "xyz")


def _another_checkout(t: Path) -> None:
    """The tree's package is `othernet`, but the fork module that ran is this checkout's (another install)."""
    _tree(t, "othernet")
    _fork(t, "rename", "thirdnet")


FORK_BAD_INPUTS = [
    BadInput(
        "rename to a standard-library module (os)",
        _rename_in_tree("os"),
        Refused,
        r"^os is already importable \(the standard library\): a package of that name would shadow it",
    ),
    BadInput(
        "rename to json", _rename_in_tree("json"), Refused, r"^json is already importable \(the standard library\)"
    ),
    BadInput(
        "rename to an installed package (torch)",
        _rename_in_tree("torch"),
        Refused,
        r"^torch is already importable \(/.*torch",
    ),
    BadInput(
        "rename to data (a git-ignored folder)",
        _rename_in_tree("data"),
        Refused,
        r"^data/ is a folder for .* git ignores",
    ),
    BadInput(
        "rename to a folder .gitignore names",
        _rename_in_tree("secret"),
        Refused,
        r"^git ignores secret/ in this tree \(\.gitignore\): the package would vanish from every commit",
    ),
    BadInput(
        "rename to a full-width letter", _rename_in_tree("\uff50roject"), Refused, r"'\\uff50roject' is not plain ASCII"
    ),
    BadInput("rename to a non-ASCII letter", _rename_in_tree("proj\u00e9"), Refused, r"'proj\\xe9' is not plain ASCII"),
    BadInput(
        "rename to a 300-character name",
        _rename_in_tree("x" * 300),
        Refused,
        r"^the name is 300 characters long; use at most 40",
    ),
    BadInput("rename to a keyword", _rename_in_tree("class"), Refused, r"^'class' is not a package name"),
    BadInput("rename to a name with a hyphen", _rename_in_tree("my-net"), Refused, r"^'my-net' is not a package name"),
    BadInput("rename to upper case", _rename_in_tree("MyNet"), Refused, r"^'MyNet' is not a package name"),
    BadInput(
        "rename to the name it has", _rename_in_tree(PACKAGE), Refused, rf"^the package is already named {PACKAGE}"
    ),
    BadInput("rename onto an existing folder", _rename_in_tree("configs"), Refused, r"configs exists already"),
    BadInput(
        "rename to a name pushing a comment past ruff's line length",
        _long_comment,
        Refused,
        rf"is {len(PACKAGE) + 3} characters: 1 lines naming the package would pass ruff's line length of 120 "
        rf"\(the tightest: {PACKAGE}/engine/long\.py:1\).*at most {len(PACKAGE)} characters",
    ),
    BadInput(
        "rename outside a repository",
        lambda t: _fork(t, "rename", "mynet"),
        Refused,
        r"is not the repository root \(no pyproject\.toml\)",
    ),
    BadInput(
        "rename a tree of another name with this checkout's fork",
        _another_checkout,
        Refused,
        rf"this tree's package is othernet/, but `python -m {PACKAGE}\.fork` ran .*: run `python -m othernet\.fork`",
    ),
    BadInput(
        "remove-examples --keep of no example",
        lambda t: _fork(_tree(t), "remove-examples", "--keep", "gamma"),
        Refused,
        r"^--keep gamma: no such example \(there are: alpha, beta\)",
    ),
]


@pytest.mark.parametrize("case", cases(FORK_BAD_INPUTS))
def test_a_name_the_tree_cannot_take_is_refused_in_one_line_changing_nothing(case, tmp_path):
    check(case, tmp_path)


def test_remove_examples_strips_the_pages_and_unsets_a_deleted_default(tmp_path):
    root = _tree(tmp_path)
    printed = _fork(root, "remove-examples", "--keep", "beta")
    assert f"deleted {PACKAGE}/examples/alpha/" in printed and "dropped what README.md said about alpha" in printed
    assert not (root / PACKAGE / "examples" / "alpha").exists() and (root / PACKAGE / "examples" / "beta").is_dir()
    readme = (root / "README.md").read_text()
    assert readme == strip_examples(PAGE, {"alpha"}, {"alpha", "beta"})
    assert f"{PACKAGE}.examples.alpha" not in (root / "pyproject.toml").read_text()
    assert (root / PACKAGE / "settings.py").read_text() == 'DEFAULT_RECIPE = "beta"\n', "a kept example's recipe"
    printed = _fork(root, "remove-examples")
    assert (root / PACKAGE / "settings.py").read_text() == 'DEFAULT_RECIPE = ""\n', "none: fit says what to write"
    assert "set DEFAULT_RECIPE" in printed and "About the examples" not in (root / "README.md").read_text()


def test_rename_prints_the_command_that_installs_the_new_name(tmp_path, monkeypatch):
    """pip runs in the user's environment, so rename prints it: after uninstalling the old name only when the
    installed one is this tree's (an editable install pointing here)."""

    class Installed:
        def __init__(self, url: str):
            self.url = url

        def read_text(self, name: str) -> str:
            return json.dumps({"url": self.url, "dir_info": {"editable": True}})

    monkeypatch.setattr(fork.importlib.metadata, "distribution", lambda name: Installed(tmp_path.as_uri()))
    lines = fork._reinstall(tmp_path, OLD, "mynet")
    assert lines[-1] == f'pip uninstall -y {OLD} && pip install -e ".[dev]"' and "gone" in lines[0]
    monkeypatch.setattr(fork.importlib.metadata, "distribution", lambda name: Installed("file:///elsewhere"))
    assert fork._reinstall(tmp_path, OLD, "mynet")[-1] == 'pip install -e ".[dev]"'


def _run(copy: Path, *args: str, timeout: int = 600, status: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    result = subprocess.run(args, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == status, result.stdout[-4000:] + result.stderr[-3000:]
    return result


def _add_toy_example(copy: Path, package: str) -> None:
    """An example of the test's own, marked in the README, so that every tree has one to remove."""
    toy = copy / package / "examples" / "toy"
    (toy / "configs").mkdir(parents=True)
    (toy / "__init__.py").write_text('"""A toy."""\n\n__all__ = ["ToyNet"]\n')
    (toy / "configs" / "toy.yaml").write_text((copy / "configs" / "features.yaml").read_text())
    readme = copy / "README.md"
    readme.write_text(readme.read_text() + "\n- `toy/`: a ToyNet on the toy recipe <!-- example: toy -->\n")


@pytest.mark.slow
def test_a_renamed_twice_and_stripped_copy_passes_ruff_and_its_tests(tmp_path):
    # spelled so that the renames below leave these lines as they are; a fork already named digitsnet renames too
    first = "digits" + "net" if PACKAGE != "digits" + "net" else "my" + "net"
    new = "twice" + "net"
    copy = copy_source_tree(tmp_path / "fork")
    examples = [*fork.examples(copy), "toy"]
    renamed = _run(copy, sys.executable, "-m", f"{PACKAGE}.fork", "rename", first).stdout
    assert f"moved {PACKAGE}/ to {first}/" in renamed and "rewrote pyproject.toml" in renamed
    assert renamed.splitlines()[-1].startswith("pip "), "it ends with the command that installs the new name"
    again = _run(copy, sys.executable, "-m", f"{first}.fork", "rename", new).stdout  # a renamed tree renames
    assert f"moved {first}/ to {new}/" in again
    _add_toy_example(copy, new)
    words = {name: example_words(name) for name in fork.examples(ROOT)}
    removed = _run(copy, sys.executable, "-m", f"{new}.fork", "remove-examples").stdout
    assert all(f"deleted {new}/examples/{name}/" in removed for name in examples)
    assert not (copy / PACKAGE).exists() and not (copy / first).exists()
    assert not [p for p in (copy / new / "examples").iterdir() if p.is_dir() and p.name != "__pycache__"]
    # The pages name nothing removed, and no mark is left
    pages = [copy / "README.md", copy / "BENCHMARKS.md", *sorted((copy / "docs").glob("*.md"))]
    for page in pages:
        text = page.read_text()
        named = [name for name, word in words.items() if word.search(text)]
        assert not named and "ToyNet" not in text, f"{page.name} still names {named or 'the toy'}"
        assert not re.search(r"(?m)^<!-- (?:example:|without:|/example)", text), f"{page.name} keeps a mark"
    # The README says the new name throughout: commands, the tree, environment variables
    readme = (copy / "README.md").read_text()
    assert f"python -m {new}.fork rename NEWNAME" in readme and f"\n{new}/\n" in readme
    assert f"python -m {PACKAGE}." not in readme and f"{UPPER}_" not in readme and f"{new.upper()}_TEST_DATA" in readme
    ci = (copy / ".ci" / "run").read_text()
    assert f"export {new.upper()}_TEST_DATA=" in ci and f"{UPPER}_" not in ci, "CI sets the renamed variables"
    _run(copy, sys.executable, "-m", "ruff", "check", ".")
    _run(copy, sys.executable, "-m", "ruff", "format", "--check", ".")
    # a class path written before either rename resolves to the renamed package's own class
    same = (
        f"import {new}.cli, {PACKAGE}.cli, {first}.cli; assert {PACKAGE}.cli.main is {first}.cli.main is {new}.cli.main"
    )
    _run(copy, sys.executable, "-c", same)
    debug = f"from {new}.engine.errors import DEBUG_ENV; assert DEBUG_ENV == '{new.upper()}_DEBUG'"
    _run(copy, sys.executable, "-c", debug)
    # The README's first command: one line saying what to write, no traceback
    said = _run(copy, sys.executable, "-m", f"{new}.cli", "fit", status=2).stderr
    assert said.startswith("error: no --config given") and "Traceback" not in said and f"{new}/settings.py" in said
    tests = [
        "tests/test_recipes.py",
        "tests/test_sizes.py",
        "tests/test_plain_datamodule.py",
        "tests/test_docs.py",
        "tests/test_architecture.py",
    ]
    result = _run(copy, sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests, timeout=1200)
    assert " passed" in result.stdout and "failed" not in result.stdout and "skipped" not in result.stdout
