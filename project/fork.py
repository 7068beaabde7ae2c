"""Make a fork yours, in one command each, run from the repository root:

    python -m project.fork rename NEWNAME                  # the package, and every reference to it
    python -m project.fork remove-examples [--keep NAME]   # our CIFAR-10 / FSDD / Speech Commands examples

`rename` moves the package folder and rewrites its references in code, configs, tests, docs and
`pyproject.toml` (its package list, distribution name and console command; the `[project]` tables stay),
then sorts imports and formats with ruff. Runs written before the rename stay loadable: the old name is
kept in the package's `FORMER_NAMES`, and `project.X` then imports `NEWNAME.X` (project/former_names.py).

`remove-examples` deletes each example's recipes, presets, search spaces, sources, networks only it uses,
benchmarks and tests (`EXAMPLES`), drops their exports, and points `DEFAULT_RECIPE` at a recipe that
remains (or none, with the message the CLI gives then). The machinery (CLI, data modules, generic sources
such as image and WAV folders and feature files, callbacks) and its tests stay.

Both print every file they change. Neither touches git: review with `git status` and commit.
"""

import argparse
import importlib
import importlib.util
import keyword
import re
import shutil
import subprocess
import sys
from pathlib import Path

# This package's own name, whatever it was renamed to (`__name__` is `__main__` under `python -m`)
PACKAGE = (__spec__.name if __spec__ else __name__).rsplit(".", 1)[0]
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".toml", ".md", ".txt", ".cfg", ".ini", ".sh", ""}
TOP_SKIPPED = {".venv", "venv", "build", "dist", "data", "logs"}  # environments, data and runs, not sources
SKIPPED = {".git", "__pycache__", ".ruff_cache", ".pytest_cache"}

# What each example brings, relative to the repository root; `{pkg}` is the package folder
EXAMPLES: dict[str, list[str]] = {
    "cifar10": [
        "configs/cifar10.yaml",
        "configs/cifar10_fast.yaml",
        "configs/presets/quick/cifar10.yaml",
        "configs/search/cifar10.yaml",
        "{pkg}/data/sources/cifar10.py",
        "{pkg}/models/airbench.py",
        "{pkg}/models/tta.py",
        "benchmarks/cifar10_fast.py",
        "benchmarks/input_pipeline.py",
        "benchmarks/memory.py",
        "tests/test_cifar10_data.py",
        "tests/test_cifar10_benchmarks.py",
        "tests/test_airbench.py",
        "tests/cifar_format.py",
    ],
    "fsdd": [
        "configs/fsdd.yaml",
        "configs/fsdd_speaker.yaml",
        "configs/presets/quick/fsdd.yaml",
        "configs/search/fsdd.yaml",
        "{pkg}/data/sources/fsdd.py",
        "benchmarks/fsdd.py",
        "tests/test_benchmarks.py",
    ],
    "speech_commands": ["configs/speech_commands.yaml", "{pkg}/data/sources/speech_commands.py"],
}
# Shared by the examples: gone once none of them is kept
SHARED = ["tests/stand_ins_examples.py", "tests/test_real_data.py"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PACKAGE}.fork", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rename_cmd = commands.add_parser("rename", help="rename the package and every reference to it")
    rename_cmd.add_argument("name", help="the new package name: a lower-case Python identifier")
    remove = commands.add_parser("remove-examples", help="delete the example recipes and what only they use")
    remove.add_argument("--keep", action="append", default=[], choices=sorted(EXAMPLES), help="an example to keep")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root (default: here)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / "pyproject.toml").is_file() or not (root / PACKAGE).is_dir():
        parser.error(f"{root} is not the repository root (no pyproject.toml beside a {PACKAGE}/ folder)")
    try:
        changed = rename(root, args.name) if args.command == "rename" else remove_examples(root, args.keep)
    except ValueError as err:
        parser.error(str(err))
    for line in changed:
        print(line)
    return 0


# --- rename ----------------------------------------------------------------------------------------


def _patterns(old: str, new: str, modules: list[str], toml: bool) -> list[tuple[re.Pattern[str], str]]:
    word = re.escape(old)
    # only the package's own modules: a local variable `project.append(...)` is not one
    module = "|".join(re.escape(m) for m in sorted(modules, key=len, reverse=True))
    patterns = [
        # module paths and file paths: project.cli, project/cli.py, and in a regex project\.cli
        # (not pyproject.toml, not [project.scripts])
        (rf"(?<![\w./\[-]){word}(?=\\?[./](?:{module})\b)", new),
        (rf"(?<=\bfrom ){word}(?= import\b)", new),
        (rf"(?m)(?<=^import ){word}\b", new),
        (rf"(?<=[\"'`]){word}(?=\*?[\"'`])", new),  # "project", `project`, "project*"
        (rf"(?<![\w./-]){word}(?= (?:fit|validate|test|predict)\b)", new),  # the console command
    ]
    if toml:
        patterns += [(rf"(?<![\w.\[-]){word}(?=\[)", new), (rf"(?m)^{word}(?= = )", new)]  # project[sweep], script
    return [(re.compile(p), r) for p, r in patterns]


def _text_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if parts[0] in TOP_SKIPPED or any(part in SKIPPED or part.endswith(".egg-info") for part in parts):
            continue
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            found.append(path)
    return found


def rename(root: Path, new: str) -> list[str]:
    old = PACKAGE
    if not new.isidentifier() or keyword.iskeyword(new) or new != new.lower():
        raise ValueError(f"{new!r} is not a package name: use a lower-case Python identifier, e.g. digitsnet")
    if (root / new).exists():
        raise ValueError(f"{root / new} exists already: choose another name or move it away")
    modules = [p.stem for p in (root / old).iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()]
    modules += ["configs"]  # the recipes' place in the wheel: project.configs
    changed = []
    for path in _text_files(root):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        updated = text
        for pattern, replacement in _patterns(old, new, modules, path.name == "pyproject.toml"):
            updated = pattern.sub(replacement, updated)
        if path == root / old / "__init__.py":
            updated = _with_former_name(updated, old)
        if updated != text:
            path.write_text(updated)
            changed.append(f"rewrote {path.relative_to(root)}")
    (root / old).rename(root / new)
    changed.append(f"moved {old}/ to {new}/")
    changed += _ruff(root)
    return changed


def _with_former_name(init: str, old: str) -> str:
    match = re.search(r"(?m)^FORMER_NAMES = \((.*)\)$", init)
    names = [n.strip().strip("\"'") for n in match[1].split(",") if n.strip()] if match else []
    quoted = [f'"{n}"' for n in [*names, old]]
    line = f"FORMER_NAMES = ({quoted[0]},)" if len(quoted) == 1 else f"FORMER_NAMES = ({', '.join(quoted)})"
    return init[: match.start()] + line + init[match.end() :] if match else init + f"\n{line}\n"


def _ruff(root: Path) -> list[str]:
    """Sort the renamed imports and re-format; what ruff still finds is printed, for the user to fix."""
    ruff = [sys.executable, "-m", "ruff"] if importlib.util.find_spec("ruff") else [shutil.which("ruff") or "ruff"]
    try:
        subprocess.run([*ruff, "check", "--fix", "--select", "I", "-q", "."], cwd=root, check=False)
        subprocess.run([*ruff, "format", "-q", "."], cwd=root, check=False)
        left = subprocess.run([*ruff, "check", "-q", "."], cwd=root, capture_output=True, text=True, check=False)
    except OSError:
        return ["ruff is not installed: run `ruff check --fix . && ruff format .` yourself"]
    return ["sorted imports and formatted with ruff"] + ([f"ruff still finds:\n{left.stdout}"] if left.stdout else [])


# --- remove-examples -------------------------------------------------------------------------------


def remove_examples(root: Path, keep: list[str]) -> list[str]:
    pkg = PACKAGE
    gone = [name for name in EXAMPLES if name not in keep]
    paths = [p.format(pkg=pkg) for name in gone for p in EXAMPLES[name]]
    paths += SHARED if not keep else []
    changed = []
    for rel in paths:
        path = root / rel
        if path.is_file():
            path.unlink()
            changed.append(f"deleted {rel}")
    modules = {Path(p).stem for p in paths if p.startswith(pkg + "/")}
    for exports in (root / pkg / "data" / "__init__.py", root / pkg / "models" / "__init__.py"):
        if exports.is_file() and _drop_exports(exports, modules):
            changed.append(f"removed the deleted modules' exports from {exports.relative_to(root)}")
    changed += _set_default_recipe(root, pkg)
    return changed


def _drop_exports(exports: Path, modules: set[str]) -> bool:
    text = exports.read_text()
    names: list[str] = []
    kept = []
    for line in text.splitlines(keepends=True):
        found = re.match(r"from [\w.]+\.(\w+) import (.+)", line)
        if found and found[1] in modules:
            names += [n.strip() for n in found[2].split(",")]
            continue
        kept.append(line)
    updated = "".join(kept)
    for name in names:
        updated = re.sub(rf'(?m)^\s*"{name}",\n', "", updated)
    if updated != text:
        exports.write_text(updated)
    return updated != text


def _set_default_recipe(root: Path, pkg: str) -> list[str]:
    recipes_py = root / pkg / "recipes.py"
    text = recipes_py.read_text()
    current = re.search(r'(?m)^DEFAULT_RECIPE = "(\w+)"$', text)
    if current is None or (root / "configs" / f"{current[1]}.yaml").is_file():
        return []
    left = sorted(p.stem for p in (root / "configs").glob("*.yaml") if p.name != "base.yaml")
    new = left[0] if left else ""
    recipes_py.write_text(text[: current.start()] + f'DEFAULT_RECIPE = "{new}"' + text[current.end() :])
    return [f"set DEFAULT_RECIPE in {recipes_py.relative_to(root)} to " + (repr(new) if new else "none")]


if __name__ == "__main__":
    sys.exit(main())
