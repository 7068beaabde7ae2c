"""Make a fork yours, in one command each, run from the repository root:

    python -m project.fork rename NEWNAME                  # the package, and every reference to it
    python -m project.fork remove-examples [--keep NAME]   # our examples, and every page's word on them

`rename` moves the package folder and rewrites its references in code, configs, tests, docs and
`pyproject.toml` (its package list, distribution name and console command; the `[project]` tables stay), and
the environment variables named after it (`PROJECT_DEBUG` becomes `NEWNAME_DEBUG`), then sorts imports and
formats with ruff. Runs written before the rename stay loadable: the old name is kept in the package's
`FORMER_NAMES`, and `project.X` then imports `NEWNAME.X` (project/engine/former_names.py). A name that is
already importable (the standard library's, an installed package's), that git ignores, that is not plain
ASCII or that would push lines past ruff's line length is refused, changing nothing. An install of the old
name is left to the user's environment: the last line printed is the command that reinstalls.

`remove-examples` deletes each example's folder (`{pkg}/examples/<name>/`: its source, nets, recipes, presets,
search spaces, tests and benchmarks), takes its packages out of pyproject.toml, points `settings.DEFAULT_RECIPE`
at a kept example's recipe (or none: `fit` then says what to write), and drops what the pages (every `.md`
file) and scripts say about it, as they mark it:

    <!-- example: cifar10 fsdd -->     on a line of its own, up to a line `<!-- /example -->`: a block
    a line ending in <!-- example: fsdd -->      (or `# example: fsdd` in a script): that line
    <!-- without: cifar10              on a line of its own, up to a line `-->`: text shown once it is removed

A block or line goes when any example it names goes; `*` names them all, and goes when none is left. The
engine, the tasks, the shared networks and their tests stay. Both commands print every file they change.
Neither touches git: review with `git status`.
"""

import argparse
import importlib
import importlib.metadata
import importlib.util
import io
import json
import keyword
import re
import shutil
import subprocess
import sys
import tokenize
import urllib.parse
from pathlib import Path

# This package's own name, whatever it was renamed to, read from where this file is: also right when the
# module was imported under a former name
PACKAGE = Path(__file__).resolve().parents[1].name
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".toml", ".md", ".txt", ".cfg", ".ini", ".sh", ""}
TOP_SKIPPED = {".venv", "venv", "build", "dist", "data", "logs"}  # environments, data and runs, not sources
SKIPPED = {".git", "__pycache__", ".ruff_cache", ".pytest_cache"}
MAX_NAME = 40  # characters: a module name to type, and a folder and distribution name on every system

EXAMPLES = "examples"  # {pkg}/examples/<name>/: one folder per example, holding all it brings


class ForkError(Exception):
    """What the user asked cannot be done as asked: one line, exit status 2, nothing changed."""


def examples(root: Path) -> list[str]:
    """The examples in the tree: each folder of `{pkg}/examples/` that is a package."""
    folder = root / PACKAGE / EXAMPLES
    return sorted(p.name for p in folder.iterdir() if (p / "__init__.py").is_file()) if folder.is_dir() else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PACKAGE}.fork", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rename_cmd = commands.add_parser("rename", help="rename the package and every reference to it")
    rename_cmd.add_argument("name", help="the new package name: a lower-case Python identifier")
    remove = commands.add_parser("remove-examples", help="delete the examples and what the pages say of them")
    remove.add_argument("--keep", action="append", default=[], help="an example to keep (a folder of examples/)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root (default: here)")
    args = parser.parse_args(argv)
    try:
        root = _repository_root(args.root.resolve())
        unknown = [name for name in getattr(args, "keep", []) if name not in examples(root)]
        if unknown:
            raise ForkError(f"--keep {unknown[0]}: no such example (there are: {', '.join(examples(root)) or 'none'})")
        changed = rename(root, args.name) if args.command == "rename" else remove_examples(root, args.keep)
    except ForkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in changed:
        print(line)
    return 0


def _repository_root(root: Path) -> Path:
    if not (root / "pyproject.toml").is_file():
        raise ForkError(f"{root} is not the repository root (no pyproject.toml): run this from the folder holding it")
    if not (root / PACKAGE / "engine" / "fork.py").is_file():
        here = [p.name for p in root.iterdir() if (p / "engine" / "fork.py").is_file()]
        ran = Path(__file__).resolve()
        if here:  # an install of another checkout (or of this one before a rename) answered `python -m`
            raise ForkError(
                f"this tree's package is {here[0]}/, but `python -m {PACKAGE}.fork` ran {ran}: run "
                f"`python -m {here[0]}.fork` from {root}"
            )
        raise ForkError(f"{root} is not the repository root (no {PACKAGE}/ package beside pyproject.toml)")
    return root


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
        (rf"(?m)^{word}(?=/$)", new),  # the package folder heading a tree of the files (README)
        # environment variables and constants named after it: PROJECT_DEBUG, PROJECT_TEST_DATA
        (rf"(?<!\w){re.escape(old.upper())}_(?=[A-Z0-9])", new.upper() + "_"),
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


def _former_names(root: Path) -> tuple[str, ...]:
    match = re.search(r"(?m)^FORMER_NAMES = \((.*)\)$", (root / PACKAGE / "__init__.py").read_text())
    return tuple(n.strip().strip("\"'") for n in match[1].split(",") if n.strip()) if match else ()


def check_name(root: Path, new: str) -> None:
    """Refuse, in one line, a name the tree cannot take; nothing has been changed when this raises."""
    shown = ascii(new) if not new.isascii() else repr(new)
    if not new.isascii():
        # Python reads `ｐroject` as `project` (NFKC), but file systems and pyproject.toml do not
        raise ForkError(f"{shown} is not plain ASCII: use lower-case letters, digits and underscores, e.g. digitsnet")
    if len(new) > MAX_NAME:
        raise ForkError(f"the name is {len(new)} characters long; use at most {MAX_NAME}, e.g. digitsnet")
    if not new.isidentifier() or keyword.iskeyword(new) or new != new.lower():
        raise ForkError(f"{shown} is not a package name: use a lower-case Python identifier, e.g. digitsnet")
    if new == PACKAGE:
        raise ForkError(f"the package is already named {new}")
    if (root / new).exists():
        raise ForkError(f"{root / new} exists already: choose another name or move it away")
    if new in TOP_SKIPPED:
        raise ForkError(f"{new}/ is a folder for environments, data or runs, which git ignores: choose another name")
    if _git_ignores(root, new):
        raise ForkError(
            f"git ignores {new}/ in this tree (.gitignore): the package would vanish from every commit; choose another"
        )
    spec = importlib.util.find_spec(new) if new not in _former_names(root) else None
    if spec is not None:
        where = "the standard library" if new in sys.stdlib_module_names else (spec.origin or "an installed package")
        raise ForkError(
            f"{new} is already importable ({where}): a package of that name would shadow it or be shadowed by it. "
            "Choose a name `python -c 'import NAME'` does not find"
        )
    _check_line_room(root, new)


def _git_ignores(root: Path, name: str) -> bool:
    try:  # --no-index: ignored whether or not anything of that name is tracked; 0 ignored, 1 not, 128 no repository
        done = subprocess.run(
            ["git", "check-ignore", "-q", "--no-index", f"{name}/__init__.py"], cwd=root, capture_output=True
        )
        if done.returncode in (0, 1):
            return done.returncode == 0
    except OSError:
        pass
    # no git, or not a repository yet: the lines of the top-level .gitignore that name the folder
    ignore = root / ".gitignore"
    lines = ignore.read_text().splitlines() if ignore.is_file() else []
    return any(line.strip().strip("/") == name for line in lines)


def _line_length(root: Path) -> int:
    match = re.search(r"(?ms)^\[tool\.ruff\]\n.*?^line-length = (\d+)", (root / "pyproject.toml").read_text())
    return int(match[1]) if match else 88


def _unwrappable(token: tokenize.TokenInfo) -> list[tuple[int, str, str]]:
    """(line number, the line as it is, the least of it `ruff format` can leave on a line) for each line of a comment
    or string: a comment stays where it is; a one-line string can go on a line of its own, at the statement's
    indentation and one more level, followed by a comma; a string over several lines keeps its lines."""
    if token.type == tokenize.COMMENT:
        line = token.line.rstrip("\n")
        return [(token.start[0], line, line)]
    first, *rest = token.string.split("\n")
    if rest:
        lines = token.line.rstrip("\n").split("\n")
        return [(token.start[0] + i, line, line) for i, line in enumerate(lines)]
    line = token.line.split("\n")[0]
    indent = len(line) - len(line.lstrip())
    return [(token.start[0], line, " " * (indent + 4) + first + ",")]


def _check_line_room(root: Path, new: str) -> None:
    """Refuse a name that would push a comment or string past ruff's line length: `ruff format` re-wraps code,
    never those, and the renamed tree would fail `ruff check` (and CI) until each line was shortened by hand."""
    old, limit = PACKAGE, _line_length(root)
    if len(new) <= len(old):
        return
    patterns = _patterns(old, new, _modules(root), toml=False)
    grows = len(new) - len(old)
    over: list[tuple[int, str]] = []  # (the longest name the line takes, where it is)
    for path in _text_files(root):
        if path.suffix != ".py":
            continue
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
        except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
            continue
        for token in tokens:
            if token.type not in (tokenize.COMMENT, tokenize.STRING) or old not in token.string:
                continue
            for number, line, least in _unwrappable(token):
                count = sum(pattern.subn(replacement, least)[1] for pattern, replacement in patterns)
                shortest = min(len(line), len(least))
                if count and len(line) <= limit < shortest + count * grows:
                    over.append((len(old) + (limit - shortest) // count, f"{path.relative_to(root)}:{number}"))
    if over:
        room, where = min(over)
        raise ForkError(
            f"{new} is {len(new)} characters: {len(set(over))} lines naming the package would pass ruff's line "
            f"length of {limit} (the tightest: {where}), and `ruff format` cannot re-wrap a comment or string. Choose "
            f"a name of at most {room} characters, or shorten those lines first"
        )


def _modules(root: Path) -> list[str]:
    """The package's own modules and sub-packages, and `configs`, the recipes' place in the wheel."""
    return [p.stem for p in (root / PACKAGE).iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()] + [
        "configs"
    ]


def rename(root: Path, new: str) -> list[str]:
    old = PACKAGE
    check_name(root, new)
    distribution = _distribution(root)
    modules = _modules(root)
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
    changed += _reinstall(root, distribution, new)
    return changed


def _distribution(root: Path) -> str | None:
    match = re.search(r'(?ms)^\[project\]\n.*?^name = "([^"]+)"', (root / "pyproject.toml").read_text())
    return match[1] if match else None


def _reinstall(root: Path, old: str | None, new: str) -> list[str]:
    """The command that makes the install match the renamed tree. pip runs in the user's environment (a venv,
    conda, a CI image, with the network it has), so it is printed for them, not run. This tree's editable install
    under the old name answers `import old` from a folder that is gone and keeps the old console command: it
    is uninstalled first. An install of the old name from elsewhere (another checkout) is not this tree's."""
    try:
        url = json.loads(importlib.metadata.distribution(old).read_text("direct_url.json") or "{}").get("url", "")
    except (importlib.metadata.PackageNotFoundError, ValueError, TypeError):
        url = None
    ours = url is not None and url.startswith("file://") and Path(urllib.parse.urlparse(url).path) == root
    if not ours:
        return [
            f"`python -m {new}.cli` works from this folder; for `import {new}` and the `{new}` command from any "
            "folder, install it:",
            'pip install -e ".[dev]"',
        ]
    return [
        f"this tree is installed as {old}, which now points at {old}/, a folder that is gone; reinstall it under "
        f"the new name for `import {new}` and the `{new}` command from any folder:",
        f'pip uninstall -y {old} && pip install -e ".[dev]"',
    ]


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

# The marks of what a page or script says about one example or more (the module's docstring shows them)
_NAMES = r"([\w *]+?)"
BLOCK = re.compile(rf"^<!-- example: {_NAMES} -->[ \t]*\n.*?^<!-- /example -->[ \t]*(?:\n|\Z)", re.M | re.S)
LINE = re.compile(rf"^(?!<!--)[^\n]*?<!-- example: {_NAMES} -->[ \t]*(?:\n|\Z)", re.M)
SCRIPT_LINE = re.compile(rf"^[^\n]*?#\s*example: {_NAMES}[ \t]*(?:\n|\Z)", re.M)  # in a script: a comment
WITHOUT = re.compile(rf"^<!-- without: {_NAMES}[ \t]*\n(.*?)^-->[ \t]*(?:\n|\Z)", re.M | re.S)
MARK = re.compile(r"<!-- (?:/?example|without)\b|#\s*example: ")


def strip_examples(text: str, gone: set[str], known: set[str], page: bool = True) -> str:
    """`text` without what it marks as about any of the `gone` examples, and with what it keeps for their
    absence shown. A mark naming anything but `known` examples is not one (a comment that says "example:").
    A page (Markdown) is marked with HTML comments; a script (`page=False`) only has lines ending in
    `# example: NAME`."""

    def goes(found: str | None) -> bool:
        words = set((found or "").split())
        if not words or not words <= known | {"*"}:
            return False  # not a mark
        return gone >= known if "*" in words else bool(words & gone)

    def block(match: re.Match) -> str:
        return _GONE if goes(match[1]) else match[0]

    def line(match: re.Match) -> str:
        return _GONE if goes(match[1]) else match[0]

    def without(match: re.Match) -> str:
        return match[2] if goes(match[1]) else match[0]

    def join(match: re.Match) -> str:
        # the blank lines on either side of what went, as many as the wider side had (none at the top), so that
        # neither two paragraphs run together nor a code block's blank lines (two between Python definitions) change
        before, after = len(match[1]), len(match[2])
        return "\n" * (after if match.start() == 0 else 1 + max(before - 1, after))

    if not page:
        return re.sub(rf"(\n*)(?:{_GONE})+(\n*)", join, SCRIPT_LINE.sub(line, text))
    joined = re.sub(rf"(\n*)(?:{_GONE})+(\n*)", join, LINE.sub(line, BLOCK.sub(block, text)))
    return WITHOUT.sub(without, joined)


_GONE = "\x00"  # where a block or line went, until the blank lines around it are joined


def remove_examples(root: Path, keep: list[str]) -> list[str]:
    known = set(examples(root))
    gone = known - set(keep)
    pages = _marked_files(root, known)
    # all read before any change
    stripped = {path: strip_examples(path.read_text(), gone, known, path.suffix == ".md") for path in pages}
    changed = []
    for name in sorted(gone):
        shutil.rmtree(root / PACKAGE / EXAMPLES / name)
        changed.append(f"deleted {PACKAGE}/{EXAMPLES}/{name}/")
    for path, text in stripped.items():
        if path.exists() and text != path.read_text():
            path.write_text(text)
            changed.append(f"dropped what {path.relative_to(root)} said about {', '.join(sorted(gone))}")
    changed += _drop_packages(root, [f"{PACKAGE}.{EXAMPLES}.{name}" for name in sorted(gone)])
    changed += _set_default_recipe(root)
    return changed


def _marked_files(root: Path, known: set[str]) -> list[Path]:
    """The text files outside the examples that carry an example's mark."""
    inside = root / PACKAGE / EXAMPLES
    found = []
    for path in _text_files(root):
        if path.is_relative_to(inside) and path.parent != inside:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if MARK.search(text):
            found.append(path)
    return found


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
    """Point settings.DEFAULT_RECIPE, when its recipe was deleted, at a kept example's or a task's recipe, or at
    none: the generic recipes in configs/ read the user's own files, so `fit` without a recipe is better told what
    to write than sent to read files that are not there."""
    settings = root / PACKAGE / "settings.py"
    text = settings.read_text()
    current = re.search(r'(?m)^DEFAULT_RECIPE = "(\w*)"$', text)
    beside_code = sorted(p.stem for p in (root / PACKAGE).glob("*/*/configs/*.yaml"))
    if (
        current is None
        or not current[1]
        or current[1] in {*beside_code, *(p.stem for p in (root / "configs").glob("*.yaml"))}
    ):
        return []
    new = beside_code[0] if beside_code else ""
    settings.write_text(text[: current.start()] + f'DEFAULT_RECIPE = "{new}"' + text[current.end() :])
    return [f"set DEFAULT_RECIPE in {settings.relative_to(root)} to " + (repr(new) if new else "none")]


if __name__ == "__main__":
    sys.exit(main())
