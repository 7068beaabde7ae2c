"""The tests of optional parts (pyproject's extras) skip in one line naming the extra when it is not installed:
`pip install -e .` leaves them out, `.[dev]` (CI) installs them all."""

import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

from project.engine.errors import EXTRAS


def needs_extra(module: str) -> ModuleType:
    """`module` imported, or the calling test (or, at a module's top, the whole module) skipped, naming its extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS[module]
        caller = Path(inspect.stack()[1].filename).name  # pytest names this file as the skip's place
        pytest.skip(f"{caller} needs the `{extra}` extra: pip install -e '.[{extra}]'", allow_module_level=True)
