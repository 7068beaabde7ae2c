"""What of the package a command crosses, by part (top-level commands, engine, models, each task and example):
the files it imports with their lines, and the distinct lines it executes.

    python benchmarks/lines_crossed.py fit --config features --data.source.init_args.train train.pt \
        --data.source.init_args.test test.pt --trainer.max_epochs 1

Run from the repository root; the arguments are the CLI's (`python -m PACKAGE.cli ARGS`). Only the package's own
files are traced, so the command runs at close to its usual speed. The figure for a task is what a forker
replacing its LightningModule has to read in the worst case; the engine's is what they should not have to.
"""

import atexit
import runpy
import sys
import threading
from collections import defaultdict
from pathlib import Path

ROOT = Path.cwd()
PACKAGE = next((p.name for p in ROOT.iterdir() if (p / "engine" / "fork.py").is_file()), None)
EXECUTED: dict[str, set[int]] = defaultdict(set)


def _local(frame, event, arg):
    if event == "line":
        EXECUTED[frame.f_code.co_filename].add(frame.f_lineno)
    return _local


def _global(frame, event, arg):
    if frame.f_code.co_filename.startswith(str(ROOT / PACKAGE)):
        EXECUTED[frame.f_code.co_filename].add(frame.f_lineno)
        return _local
    return None


def part(path: Path) -> str:
    """engine, models, tasks/<task>, examples/<example>, or (top) for the commands and settings."""
    rel = path.relative_to(ROOT / PACKAGE).parts
    if rel[0] in ("tasks", "examples") and len(rel) > 2:
        return "/".join(rel[:2])
    return rel[0] if len(rel) > 1 else "(top)"


def report() -> None:
    sys.settrace(None)
    imported = {Path(m.__file__).resolve() for m in list(sys.modules.values()) if getattr(m, "__file__", None)}
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # files, lines, lines executed
    for path in sorted(p for p in imported if p.is_relative_to(ROOT / PACKAGE)):
        row = table[part(path)]
        row[0] += 1
        row[1] += len(path.read_text().splitlines())
        row[2] += len(EXECUTED.get(str(path), ()))
    total = [sum(row[i] for row in table.values()) for i in range(3)]
    print(f"\n| {PACKAGE}/ part | files imported | their lines | lines executed |")
    print("| --- | --- | --- | --- |")
    for name, (files, lines, executed) in sorted(table.items()):
        print(f"| {name} | {files} | {lines} | {executed} |")
    print(f"| all | {total[0]} | {total[1]} | {total[2]} |")


if __name__ == "__main__":
    if PACKAGE is None:
        sys.exit(f"run this from the repository root: {ROOT} holds no package with engine/fork.py")
    sys.path.insert(0, str(ROOT))
    atexit.register(report)
    sys.settrace(_global)
    threading.settrace(_global)
    sys.argv = [f"python -m {PACKAGE}.cli", *sys.argv[1:]]
    runpy.run_module(f"{PACKAGE}.cli", run_name="__main__", alter_sys=True)
