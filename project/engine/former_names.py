"""Class paths written before `python -m project.fork rename` (in checkpoints and run configs) still
resolve: each former name of the package imports as the package itself."""

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType


class _FormerName(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `old.X` as the module `new.X` itself (one module, not a copy), so class paths written
    before a rename (checkpoints, run configs) still resolve."""

    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname == self.old or fullname.startswith(self.old + "."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec) -> ModuleType:
        module = importlib.import_module(self.new + spec.name[len(self.old) :])
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # the import system set the alias's spec on the module: it keeps its own
        module.__spec__ = self.own_spec


def alias_former_names(package: str, former: tuple[str, ...]) -> None:
    """Let each of `former` (the package's names before a rename) import as `package`."""
    for old in former:
        if old != package and not any(isinstance(f, _FormerName) and f.old == old for f in sys.meta_path):
            # ahead of the finders of installed packages: an old copy still installed under that name must
            # not answer for it
            sys.meta_path.insert(0, _FormerName(old, package))
