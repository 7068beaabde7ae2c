"""A copy of the repository's sources, for tests that build or change a tree of their own: never the
virtual environment, build outputs, caches, data or runs (a venv alone is several GB)."""

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL_SKIPPED = {".git", ".venv", "venv", "build", "dist", "data", "logs"}
SKIPPED_ANYWHERE = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def _not_source(folder: str, names: list[str]) -> list[str]:
    top = TOP_LEVEL_SKIPPED if Path(folder) == ROOT else set()
    return [n for n in names if n in top or n in SKIPPED_ANYWHERE or n.endswith(".egg-info")]


def copy_source_tree(destination: Path) -> Path:
    shutil.copytree(ROOT, destination, ignore=_not_source)
    return destination
