"""The README and docs/ say only what is so: every relative link reaches a file (and its heading), every
project path they name exists, and every `python -m project...` command they show names a module and config
files that exist and, for `project.cli`, options its parser accepts (parsed with `--print_config`, nothing run)."""

import ast
import contextlib
import importlib.util
import io
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from project.engine import fork, recipes
from project.engine.cli import main
from project.engine.errors import ConfigError
from tests.test_readme_example import example_files, write_into_package

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # BENCHMARKS.md's read /tmp data
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
PKG = main.__module__.split(".")[0]  # the package's name, also in a renamed fork
PATH = re.compile(rf"`((?:{PKG}|configs|tests|benchmarks|docs)/[\w./-]*)`")
PLACEHOLDER = re.compile(r"[<>*{}]|NAME|\.\.\.")  # `configs/presets/quick/<recipe>.yaml`: a pattern, not a file
# Values that point at a checkpoint or a folder of the user's: dropped before parsing (no run, no checkpoint here)
USER_VALUES = ("--ckpt_path",)


# The pages `python -m project.fork remove-examples` rewrites, as it reads their marks
MARKED = [path for path in fork._text_files(ROOT) if path.suffix == ".md"]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def prose(page: Path) -> str:
    """The page without its `# <path>` example files, which name files a fork would create."""
    return re.sub(r"```(?:python|yaml)\n# \S+\n.*?```", "", page.read_text(), flags=re.S)


def test_every_relative_link_reaches_a_file_and_its_heading():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked offline
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_every_project_path_named_exists():
    examples = {path for page in PAGES for path in example_files(page)}
    missing = []
    for page in PAGES:
        for path in PATH.findall(prose(page)):
            if PLACEHOLDER.search(path) or path in examples:
                continue
            if not (ROOT / path.rstrip(".")).exists():
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, "\n".join(missing)


def test_the_readme_tree_names_what_exists():
    tree = re.search(r"## The project\n.*?```text\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert tree, "the README's tree of the project (a text block under 'The project') is missing"
    parents: list[str] = []
    missing = []
    for line in tree.group(1).splitlines():
        depth = (len(line) - len(line.lstrip())) // 2
        name = line.split()[0]
        parents = [*parents[:depth], PKG if depth == 0 and name == "project/" else name.rstrip("/")]  # renamed
        if "*" not in name and not (ROOT / "/".join(parents)).exists():
            missing.append("/".join(parents))
    assert not missing, f"the README's tree names what does not exist: {missing}"


def test_the_readme_test_command_is_what_ci_runs():
    readme = re.search(r"Run the tests.*?```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert readme and readme.group(1) == ci[-1], ".ci/run's last command and the README's test command differ"


def shown_commands() -> dict[tuple[str, ...], str]:
    """Every `python -m project.X ...` shown in a page's shell blocks or inline code, as its arguments
    (module first), mapped to where it was first seen."""
    found: dict[tuple[str, ...], str] = {}
    for page in COMMAND_PAGES:
        text = page.read_text()
        blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
        lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
        lines += re.findall(rf"`(python -m {PKG}\.[^`]+)`", text)
        for line in lines:
            for part in re.split(r"&&|;|\||(?<![>&])&(?!&)", line):
                start = re.search(rf"(?:python )?-m ({PKG}\.[\w.]+)(.*)", part)
                if start is None:
                    continue
                try:
                    args = shlex.split(start.group(2), comments=True)
                except ValueError:  # an unclosed quote: kept, to fail by name
                    args = [f"(unreadable: {start.group(2).strip()})"]
                args = args[: next((i for i, a in enumerate(args) if a.startswith(("2>", ">"))), len(args))]
                found.setdefault((start.group(1), *args), page.name)
    return found


def config_problem(value: str, written: dict[str, str] | None = None) -> str | None:
    """Why a `--config`/`--search`/`--preset` value cannot be checked here, or is wrong: None when it exists (or
    the page itself writes it: `written`, the page's files as written here)."""
    if value in (written or {}).values():
        return None
    if "/" not in value and not value.endswith(".yaml"):
        return None if value in recipes.shipped() else f"no shipped recipe {value}"
    if value.startswith("configs/"):
        return None if (ROOT / value).exists() else f"{value} does not exist"
    return "skip"  # a file of the user's (my_recipe.yaml, a run's config.yaml): not here to parse


def parse_problem(argv: list[str]) -> str | None:
    """What `python -m project.cli ARGV --print_config` refuses (its last lines), or None when it parses."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), pytest.raises(SystemExit) as exit:
        main([*argv, "--print_config"])
    return None if exit.value.code == 0 else " ".join(out.getvalue().strip().splitlines()[-2:])


def help_of(module: str, subcommand: str | None) -> str:
    """What `python -m MODULE [SUBCOMMAND] --help` prints."""
    out = io.StringIO()
    argv = [module, *([subcommand] if subcommand else []), "--help"]
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit), pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        runpy.run_module(module, run_name="__main__", alter_sys=False)
    return out.getvalue()


@pytest.mark.slow  # a parse of every shipped recipe the docs show, half a second each
def test_every_command_shown_names_what_exists_and_parses(monkeypatch, tmp_path):
    # The docs' example files (a network, a callback) are written where a fork would put them
    written: dict[str, str] = {}  # a recipe a page writes (`# configs/houses.yaml`), where it is written here
    for page in COMMAND_PAGES:
        for path, text in example_files(page).items():
            if path.startswith(f"{PKG}/") and path.endswith(".py"):
                write_into_package(monkeypatch, tmp_path / Path(path).parent.name, path, text)
            elif path.startswith("configs/") and path.endswith(".yaml") and not (ROOT / path).exists():
                (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / path).write_text(text)
                written[path] = str(tmp_path / path)
    monkeypatch.chdir(ROOT)  # the commands are shown as run from the repository root
    monkeypatch.setattr("sys.argv", ["python -m project.cli"])  # Lightning warns when both argv and args are given
    wrong, skipped = [], []
    groups: dict[tuple[str, ...], list[tuple[list[str], str]]] = {}
    for (module, *args), page in shown_commands().items():
        shown = f"{page}: python -m {module} {' '.join(args)}"
        args = [written.get(a, a) for a in args]
        if importlib.util.find_spec(module) is None:
            wrong.append(f"{shown}: no module {module}")
            continue
        values = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--config", "--search")]
        values += [f"configs/presets/{args[i + 1]}.yaml" for i, a in enumerate(args[:-1]) if a == "--preset"]
        problems = [p for p in (config_problem(v, written) for v in values) if p]
        if any(p != "skip" for p in problems):
            wrong += [f"{shown}: {p}" for p in problems if p != "skip"]
            continue
        if module != f"{PKG}.cli":  # an argparse command: each option it is shown with is in its --help
            subcommand = args[0] if args and not args[0].startswith("-") else None
            ours = args[: args.index("--")] if "--" in args else args  # after `--`: the fits' own keys
            known = set(re.findall(r"--[\w-]+", help_of(module, subcommand)))
            wrong += [
                f"{shown}: {o} is not in its --help"
                for o in ours
                if o.startswith("--") and o.split("=")[0] not in known
            ]
            if "--" not in args or problems:
                continue
            # after `--`: keys for every fit of a sweep or cross-validation, checked as `fit --config RECIPE KEYS`
            args = ["fit", "--config", args[args.index("--config") + 1], *args[args.index("--") + 1 :]]
        if not args:
            continue  # the program named in prose
        if "--config" not in args and recipes.default_recipe() is None:
            if any(a.startswith(USER_VALUES) for a in args):  # rebuilt from a checkpoint of the user's
                skipped.append(f"{shown}: names a checkpoint of the user's, and there is no default recipe")
                continue
            # a fork without a default recipe: the command says, in one line, what to write
            with pytest.raises(ConfigError, match=r"no --config given .*DEFAULT_RECIPE"):
                main([*args, "--print_config"])
            continue
        if problems or any("$" in a for a in args):
            skipped.append(f"{shown}: names a file or value of the user's")
            continue
        argv = [a for i, a in enumerate(args) if a not in USER_VALUES and (i == 0 or args[i - 1] not in USER_VALUES)]
        argv = [a for a in argv if not a.startswith(tuple(f"{u}=" for u in USER_VALUES)) and a != "--help"]
        argv = [re.sub(r"^configs/(\w+)\.yaml$", r"\1", a) for a in argv]  # a shipped recipe by path or by name
        # One parse per subcommand and config files: their other options are parsed together first
        pairs = [tuple(argv[i : i + 2]) for i, a in enumerate(argv) if a in ("--config", "--preset")]
        key = (argv[0], *(v for pair in pairs for v in pair))
        rest = [
            a
            for i, a in enumerate(argv[1:], 1)
            if a not in ("--config", "--preset") and argv[i - 1] not in ("--config", "--preset")
        ]
        groups.setdefault(key, []).append((rest, shown))
    # A page's YAML config snippets (not its `# <path>` files) parse stacked over the generic table recipe
    for page in COMMAND_PAGES:
        for i, block in enumerate(re.findall(r"```yaml\n(?!# \S+\n)(.*?)```", page.read_text(), flags=re.S)):
            snippet = yaml.safe_load(block)
            if isinstance(snippet, dict) and set(snippet) <= {"seed_everything", "trainer", "model", "data"}:
                (tmp_path / f"{page.stem}_{i}.yaml").write_text(block)
                key = ("fit", "--config", "features", "--config", str(tmp_path / f"{page.stem}_{i}.yaml"))
                groups[key] = [([], f"{page.name}: its YAML block {i + 1}")]
    for (subcommand, *configs), commands in groups.items():
        together = [a for rest, _ in commands for a in rest]
        if len(commands) > 1 and parse_problem([subcommand, *configs, *together]) is None:
            continue
        for rest, shown in commands:  # apart, to name the command at fault
            if problem := parse_problem([subcommand, *configs, *rest]):
                wrong.append(f"{shown}: {problem}")
    print(f"{len(groups)} parses; skipped:", *skipped, sep="\n  ")
    assert not wrong, "\n".join(wrong)
    assert groups, "no project.cli command found in the docs: is the extraction broken?"


def test_every_example_mark_is_whole_and_names_an_example():
    """What remove-examples reads (project/engine/fork.py): each block and hidden text closed, each on whole
    lines, each naming examples there are (or `*`), and none inside the examples' own folders' pages'
    fenced code, where a reader would see it."""
    known = set(fork.examples(ROOT)) | {"*"}
    wrong = []
    for page in MARKED:
        text = page.read_text()
        name = page.relative_to(ROOT)
        opened = None
        for number, line in enumerate(text.splitlines(), 1):
            names = re.search(r"<!-- (?:example|without): ([\w *]+?)(?: -->)?\s*$", line)
            if line.startswith(("<!-- example:", "<!-- without:")):
                if opened:
                    wrong.append(f"{name}:{number}: a mark inside the one opened at line {opened[0]}")
                opened = (number, "<!-- /example -->" if line.startswith("<!-- example:") else "-->")
            elif opened and line.strip() == opened[1]:
                opened = None
            elif line.strip() == "<!-- /example -->" or (line.strip() == "-->" and not opened):
                wrong.append(f"{name}:{number}: a closing mark with nothing open")
            if names and not set(names[1].split()) <= known:
                wrong.append(f"{name}:{number}: {names[1]!r} names no example of {sorted(known)}")
        if opened:
            wrong.append(f"{name}:{opened[0]}: never closed")
    assert not wrong, "\n".join(wrong)


def example_words(name: str) -> re.Pattern[str]:
    """What names the example `name` in prose: its folder name however spelt (`cifar10`, `CIFAR-10`, `Speech
    Commands`), its recipes' names and the classes it exports."""
    folder = ROOT / PKG / fork.EXAMPLES / name
    words = {p.stem for p in (folder / "configs").glob("*.yaml")}
    tree = ast.parse((folder / "__init__.py").read_text())
    exported = [n for n in ast.walk(tree) if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "__all__"]
    words |= {value.value for node in exported for value in ast.walk(node.value) if isinstance(value, ast.Constant)}
    spelt = r"[-_ ]?".join(re.escape(part) for part in re.findall(r"[a-z]+|\d+", name))
    return re.compile(rf"(?i:{spelt})|\b(?:{'|'.join(map(re.escape, sorted(words)))})\b")


def test_removing_the_examples_leaves_no_word_of_them_and_no_mark():
    """The pages as `remove-examples` leaves them (project/engine/fork.py, on the text only): not one mark left,
    and nothing that names a removed example (its folder, recipes or classes). A tree without examples checks
    that its pages hold no mark."""
    gone = set(fork.examples(ROOT))
    words = {name: example_words(name) for name in gone}
    left = []
    for page in MARKED:
        stripped = fork.strip_examples(page.read_text(), gone, gone)
        for number, line in enumerate(stripped.splitlines(), 1):
            if re.match(r"<!-- (?:example:|without:|/example -->)", line) or re.search(r"<!-- example: .*-->$", line):
                left.append(f"{page.relative_to(ROOT)}:{number}: a mark is left: {line}")
            left += [
                f"{page.relative_to(ROOT)}:{number}: names {n}: {line}" for n, w in words.items() if w.search(line)
            ]
    assert not left, "\n".join(left)
