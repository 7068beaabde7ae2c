"""Make a fork yours, in one command each, run from the repository root:

    python -m project.fork rename NEWNAME                  # the package, and every reference to it
    python -m project.fork remove-examples [--keep NAME]   # our CIFAR-10 / FSDD / Speech Commands examples

`rename` moves the package folder and rewrites its references in code, configs, tests, docs and
`pyproject.toml` (its package list, distribution name and console command; the `[project]` tables stay),
then sorts imports and formats with ruff. Runs written before the rename stay loadable: the old name is
kept in the package's `FORMER_NAMES`, and `project.X` then imports `NEWNAME.X` (project/engine/former_names.py).

`remove-examples` deletes each example's folder (`{pkg}/examples/<name>/`: its source, nets, recipes, presets,
search spaces, tests and benchmarks), takes its packages out of pyproject.toml, and points
`settings.DEFAULT_RECIPE` at a recipe that remains (or none, with the message the CLI gives then). The engine,
the tasks, the shared networks and their tests stay.

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
PACKAGE = (__spec__.name if __spec__ else __name__).split(".")[0]
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".toml", ".md", ".txt", ".cfg", ".ini", ".sh", ""}
TOP_SKIPPED = {".venv", "venv", "build", "dist", "data", "logs"}  # environments, data and runs, not sources
SKIPPED = {".git", "__pycache__", ".ruff_cache", ".pytest_cache"}

EXAMPLES = "examples"  # {pkg}/examples/<name>/: one folder per example, holding all it brings


def examples(root: Path) -> list[str]:
    """The examples in the tree: each folder of `{pkg}/examples/` that is a package."""
    folder = root / PACKAGE / EXAMPLES
    return sorted(p.name for p in folder.iterdir() if (p / "__init__.py").is_file()) if folder.is_dir() else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PACKAGE}.fork", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rename_cmd = commands.add_parser("rename", help="rename the package and every reference to it")
    rename_cmd.add_argument("name", help="the new package name: a lower-case Python identifier")
    remove = commands.add_parser("remove-examples", help="delete the example recipes and what only they use")
    remove.add_argument("--keep", action="append", default=[], help="an example to keep (a folder of examples/)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root (default: here)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / "pyproject.toml").is_file() or not (root / PACKAGE).is_dir():
        parser.error(f"{root} is not the repository root (no pyproject.toml beside a {PACKAGE}/ folder)")
    unknown = [name for name in getattr(args, "keep", []) if name not in examples(root)]
    if unknown:
        parser.error(f"--keep {unknown[0]}: no such example (there are: {', '.join(examples(root)) or 'none'})")
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
        # module paths and file paths: project.cli, project/engine/cli.py, and in a regex project\.cli
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
    changed = []
    gone = [name for name in examples(root) if name not in keep]
    for name in gone:
        shutil.rmtree(root / PACKAGE / EXAMPLES / name)
        changed.append(f"deleted {PACKAGE}/{EXAMPLES}/{name}/")
    changed += _drop_packages(root, [f"{PACKAGE}.{EXAMPLES}.{name}" for name in gone])
    changed += _set_default_recipe(root)
    return changed


def _drop_packages(root: Path, packages: list[str]) -> list[str]:
    """Take the deleted packages out of pyproject.toml's package list."""
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    updated = text
    for package in packages:
        updated = re.sub(rf'(?m)^\s*"{re.escape(package)}(\.[\w.]+)?",\n', "", updated)
    if updated == text:
        return []
    pyproject.write_text(updated)
    return ["removed the deleted packages from pyproject.toml"]


def _set_default_recipe(root: Path) -> list[str]:
    """Point settings.DEFAULT_RECIPE at a recipe that remains (or none)."""
    settings = root / PACKAGE / "settings.py"
    text = settings.read_text()
    current = re.search(r'(?m)^DEFAULT_RECIPE = "(\w*)"$', text)
    left = sorted(p.stem for p in (root / "configs").glob("*.yaml") if p.name != "base.yaml")
    left += sorted(p.stem for p in (root / PACKAGE).glob("*/*/configs/*.yaml"))
    if current is None or current[1] in left:
        return []
    new = left[0] if left else ""
    settings.write_text(text[: current.start()] + f'DEFAULT_RECIPE = "{new}"' + text[current.end() :])
    return [f"set DEFAULT_RECIPE in {settings.relative_to(root)} to " + (repr(new) if new else "none")]


if __name__ == "__main__":
    sys.exit(main())
