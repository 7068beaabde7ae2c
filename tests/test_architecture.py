"""The tree's architecture, held by its imports (read with `ast`, nothing imported):

- the engine (`project/engine/`) serves any LightningModule: it imports nothing from the tasks (`project/tasks/`)
  or the examples (`project/examples/`);
- an example is one folder that nothing else imports: `remove-examples` deletes it whole and leaves nothing
  broken. Only its own files (its tests among them) import `project.examples.<name>`.
"""

import ast
from pathlib import Path

import pytest

from project.engine import fork
from project.engine.fork import EXAMPLES, PACKAGE
from tests.scripts import run_script
from tests.stand_ins import feature_files

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / PACKAGE / "engine"
FORBIDDEN_IN_ENGINE = (f"{PACKAGE}.tasks", f"{PACKAGE}.{EXAMPLES}")


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `path`, relative ones resolved against its package (the
    folders from `root` down to it)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
            # `from project import tasks` imports project.tasks: each name may be a module
            found += [(node.lineno, base)] + [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_engine_imports_no_task_and_no_example():
    offending = [
        f"{path.relative_to(ROOT)}:{n}: {m}"
        for path in _python_files(ENGINE)
        for n, m in imports(path)
        if any(_within(m, f) for f in FORBIDDEN_IN_ENGINE)
    ]
    assert not offending, "the engine must not import the tasks or the examples:\n" + "\n".join(sorted(set(offending)))


def test_an_example_is_imported_only_from_its_own_folder():
    examples = ROOT / PACKAGE / EXAMPLES
    names = sorted(p.name for p in examples.iterdir() if (p / "__init__.py").is_file()) if examples.is_dir() else []
    files = [p for p in fork._text_files(ROOT) if p.suffix == ".py"]  # the sources fork reads, tests and docs too
    wrong = []
    for path in files:
        for name in names:
            own = examples / name
            if path.is_relative_to(own):
                continue
            wrong += [
                f"{path.relative_to(ROOT)}:{n}: {m}"
                for n, m in imports(path)
                if _within(m, f"{PACKAGE}.{EXAMPLES}.{name}")
            ]
    assert not wrong, "only an example's own files may import it (remove-examples deletes it whole):\n" + "\n".join(
        wrong
    )


def test_the_import_reader_sees_every_form(tmp_path):
    """The rules above are only as good as the reading: absolute, `from` and relative imports all count."""
    engine = tmp_path / PACKAGE / "engine"
    engine.mkdir(parents=True)
    module = engine / "probe.py"
    module.write_text(
        f"import {PACKAGE}.tasks.classification\n"
        f"from {PACKAGE} import tasks\n"
        "from ..examples.cifar import source\n"
        "def late():\n"
        f"    from {PACKAGE}.tasks import metrics\n"
    )
    found = [m for _, m in imports(module, tmp_path)]
    assert f"{PACKAGE}.tasks.classification" in found and f"{PACKAGE}.tasks" in found
    assert f"{PACKAGE}.examples.cifar.source" in found and f"{PACKAGE}.tasks.metrics" in found


@pytest.mark.slow  # a fit in a process of its own
def test_a_fit_of_a_generic_recipe_crosses_no_example(tmp_path):
    """benchmarks/lines_crossed.py on a one-epoch fit of configs/features.yaml: the engine, the shared networks and
    the task run; no example is imported."""
    out = run_script(
        "benchmarks/lines_crossed.py", "fit", "--config", "features", *feature_files(tmp_path / "data"),
        "--trainer.max_epochs=1", "--data.batch_size=16", f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}",
    )  # fmt: skip
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if line.startswith("| ")}
    assert {"engine", "models", "tasks/classification", "all"} <= set(rows), out[-2000:]
    assert not [name for name in rows if name.startswith(EXAMPLES)], f"a generic fit imports an example: {rows}"
