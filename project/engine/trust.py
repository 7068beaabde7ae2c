"""Which code a config picked up without being asked for (beside a checkpoint, inside one) may name: only
classes and callables defined in TRUSTED_PACKAGES; passing the config yourself with `--config` accepts it."""

import importlib
import importlib.util
import inspect
import re
from typing import Any

from project.engine.errors import ConfigError

# This package by its own name, so a renamed fork trusts itself and keeps its runs loadable
PROJECT_PACKAGE = __name__.split(".")[0]
TRUSTED_PACKAGES = (PROJECT_PACKAGE, "torch", "torchvision", "lightning", "torchmetrics")


# Inside the trusted packages, what loads or builds code from elsewhere: a hub repository, a pickle, C++ source
UNSAFE_MODULES = ("torch.hub", "torch.serialization", "torch.package", "torch.utils.cpp_extension", "torch.jit")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


class UntrustedConfigError(ConfigError):
    """A config picked up implicitly names code outside the trusted packages."""


def check_trusted(config: Any, source: str, key: str = "") -> None:
    """Refuse a class or callable anywhere in `config` not defined in TRUSTED_PACKAGES, by what a name resolves
    to (`torch.os.system` is `os.system`); a name outside the trusted packages is refused unimported."""
    if isinstance(config, dict):
        for k, v in config.items():
            check_trusted(v, source, f"{key}.{k}" if key else str(k))
    elif isinstance(config, list):
        for i, v in enumerate(config):
            check_trusted(v, source, f"{key}[{i}]")
    elif isinstance(config, str) and _DOTTED.match(config) and _names_code(config, key):
        where = _defined_in(config)
        if where is None and not key.endswith("class_path") and "__" not in config:
            return  # a string that names nothing importable (a run named `torch.v2`): not code
        if where is None or not _trusted(where):
            defined = f" (it is {where}'s)" if where and where.split(".")[0] != config.split(".")[0] else ""
            raise UntrustedConfigError(
                f"Refusing {key}: {config}{defined} from {source}, which was picked up without being asked for. A "
                f"config found beside a checkpoint may only name classes and callables defined in "
                f"{', '.join(TRUSTED_PACKAGES)}. If you trust it, pass it yourself: --config <that file>."
            )


def _trusted(module: str) -> bool:
    unsafe = any(module == m or module.startswith(m + ".") for m in UNSAFE_MODULES)
    return module.split(".")[0] in TRUSTED_PACKAGES and not unsafe


def _defined_in(dotted: str) -> str | None:
    """The module that defines what `dotted` names (a module: itself), or None; only trusted names are imported."""
    parts = dotted.split(".")
    if not _trusted(parts[0]):
        return parts[0]
    if any(p.startswith("__") for p in parts):  # __builtins__, __globals__, __class__...: never a config's class
        return None
    try:
        obj = importlib.import_module(parts[0])
    except ImportError:
        return None
    for part in parts[1:]:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            if not inspect.ismodule(obj):
                return None
            try:  # a submodule its package does not import
                obj = importlib.import_module(f"{obj.__name__}.{part}")
            except ImportError:
                return None
        where = _module_of(obj)
        if where is None or not _trusted(where):  # a re-export: os through torch.os
            return where
    return _module_of(obj)


def _module_of(obj: Any) -> str | None:
    where = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None)
    return where if isinstance(where, str) else None


def _names_code(value: str, key: str) -> bool:
    """A class_path always; any other dotted string when its first part is an importable module."""
    if key.endswith("class_path"):
        return True
    try:
        return importlib.util.find_spec(value.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False
