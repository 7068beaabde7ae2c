"""Which code a config picked up without being asked for (a run folder's config.yaml, the config stored in a
checkpoint) may name. Such a file is data that came with a run, maybe from someone else: what it names is
built and called when the run is rebuilt, so at each key it may name only the kind of component that key
builds (KINDS: a LightningModule at `model`, a Callback in `trainer.callbacks`, ...), as a class defined in a
trusted package, and no free function but the net builders of NET_BUILDERS. Inside a component's arguments
it names code only where that argument's type asks for a component (a model's `net: nn.Module`) and, inside a
net's arguments, layer classes (nn.Module subclasses). A config the user passes with `--config` is theirs.

A fork extends the trusted packages and builders in project/settings.py (docs/hostile-input.md).
"""

import importlib
import importlib.util
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from project import settings
from project.engine.errors import ConfigError

# This package by its own name, so a renamed fork trusts itself and keeps its runs loadable
PROJECT_PACKAGE = __name__.split(".")[0]
TRUSTED_PACKAGES = (PROJECT_PACKAGE, "torch", "torchvision", "lightning", "torchmetrics")
# Functions a picked-up config may name where a net goes: `module.name`, or `module.*` for the model builders
# a library registers (torchvision's `list_models()`). Each counts only inside a trusted package: timm's once
# a fork lists "timm" in project/settings.py.
NET_BUILDERS = ("torchvision.models.*", "timm.create_model")
# Inside the trusted packages, what loads or builds code from elsewhere: a hub repository, a pickle, C++ source
UNSAFE_MODULES = ("torch.hub", "torch.serialization", "torch.package", "torch.utils.cpp_extension", "torch.jit")
# A net builder's arguments that make it read files or fetch more than weights (timm's): refused in a
# picked-up config, whose net takes its weights from the checkpoint anyway
LOADS_FILES = ("checkpoint_path", "pretrained_cfg_overlay", "cache_dir", "pretrained_cfg")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_COMPONENT_KEYS = ("class_path", "init_args", "dict_kwargs", "__path__")


class UntrustedConfigError(ConfigError):
    """A config picked up implicitly names code it may not name at that key."""


@dataclass(frozen=True)
class Kind:
    """A component a key builds: a subclass of one of `bases` (import paths), or a net builder (`builders`)."""

    name: str
    bases: tuple[str, ...]
    builders: bool = False  # NET_BUILDERS' functions too
    layers: bool = False  # its arguments may name nn.Module classes (a net's layers)


MODEL = Kind("a LightningModule", ("lightning.pytorch.LightningModule",))
NET = Kind("an nn.Module class or a net builder", ("torch.nn.Module",), builders=True, layers=True)
LAYER = Kind("an nn.Module class", ("torch.nn.Module",), layers=True)
OPTIMIZER = Kind("a torch Optimizer", ("torch.optim.Optimizer",))
SCHEDULER = Kind(
    "an LRScheduler", ("torch.optim.lr_scheduler.LRScheduler", "torch.optim.lr_scheduler.ReduceLROnPlateau")
)
DATAMODULE = Kind("a LightningDataModule", ("lightning.pytorch.LightningDataModule",))
SOURCE = Kind("a data Source", (f"{PROJECT_PACKAGE}.engine.data.Source",))
CALLBACK = Kind("a lightning Callback", ("lightning.pytorch.Callback",))
LOGGER = Kind("a lightning Logger", ("lightning.pytorch.loggers.Logger",))
PLUGIN = Kind(
    "a lightning plugin (Precision, CheckpointIO, ClusterEnvironment, LayerSync)",
    (
        "lightning.pytorch.plugins.Precision",
        "lightning.pytorch.plugins.CheckpointIO",
        "lightning.pytorch.plugins.ClusterEnvironment",
        "lightning.pytorch.plugins.LayerSync",
    ),
)
STRATEGY = Kind("a lightning Strategy", ("lightning.pytorch.strategies.Strategy",))
PROFILER = Kind("a lightning Profiler", ("lightning.pytorch.profilers.Profiler",))
ACCELERATOR = Kind("a lightning Accelerator", ("lightning.pytorch.accelerators.Accelerator",))
CHECKPOINT = Kind("a ModelCheckpoint", ("lightning.pytorch.callbacks.ModelCheckpoint",))
PREDICTIONS = Kind("a prediction writer", ("lightning.pytorch.callbacks.BasePredictionWriter",))
KINDS = (MODEL, NET, LAYER, OPTIMIZER, SCHEDULER, DATAMODULE, SOURCE, CALLBACK, LOGGER, PLUGIN, STRATEGY, PROFILER)

# Where a run's config builds a component: top-level keys, and the trainer's
TOP = {
    "model": MODEL,
    "data": DATAMODULE,
    "optimizer": OPTIMIZER,  # LightningCLI's own optimizer and scheduler, beside the model's
    "lr_scheduler": SCHEDULER,
    "checkpoint": CHECKPOINT,
    "last_checkpoint": CHECKPOINT,
    "predictions": PREDICTIONS,
}
TRAINER = {
    "callbacks": CALLBACK,
    "logger": LOGGER,
    "plugins": PLUGIN,
    "strategy": STRATEGY,
    "profiler": PROFILER,
    "accelerator": ACCELERATOR,
}
# What a component's argument may build, told by its type annotation (`net: nn.Module` -> NET); an argument
# whose type names none of these builds nothing, and may name no code
ARGUMENT_KINDS = (NET, OPTIMIZER, SCHEDULER, SOURCE)
# A model without a class_path (a run made before recipes named one): its arguments may build these
MODEL_PARTS = (NET, OPTIMIZER, SCHEDULER)


def trusted_packages() -> tuple[str, ...]:
    return (*TRUSTED_PACKAGES, *getattr(settings, "TRUSTED_PACKAGES", ()))


def net_builders() -> tuple[str, ...]:
    return (*NET_BUILDERS, *getattr(settings, "NET_BUILDERS", ()))


def check_trusted(config: Any, source: str) -> None:
    """Refuse, in one line naming the key, the value and `source`, anything in the picked-up `config` that names
    code other than the component its key builds."""
    if not isinstance(config, dict):
        return
    for key, value in config.items():
        key = str(key)
        if key == "trainer" and isinstance(value, dict):
            for name, setting in value.items():
                where = f"trainer.{name}"
                if str(name).rstrip("+") in TRAINER:  # `callbacks+:` appends, as jsonargparse reads it
                    _components(setting, (TRAINER[str(name).rstrip("+")],), where, source)
                else:
                    _no_code(setting, where, source)
        elif key in TOP:
            _component(value, (TOP[key],), key, source)
        else:
            _no_code(value, key, source)


def _components(value: Any, kinds: tuple[Kind, ...], key: str, source: str) -> None:
    """A key that takes one component or a list of them (trainer.callbacks, logger, plugins)."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            _component(item, kinds, f"{key}[{i}]", source)
    else:
        _component(value, kinds, key, source)


def _component(value: Any, kinds: tuple[Kind, ...], key: str, source: str) -> None:
    """A value where a component of one of `kinds` is built: `{class_path, init_args}`, a class path alone,
    plain settings (a name such as `strategy: ddp`, a checkpoint's `init_args` given directly), or null."""
    if isinstance(value, str) and _DOTTED.match(value):
        _check_class(value, kinds, key, source)
        return
    if not isinstance(value, dict):
        _no_code(value, key, source)
        return
    if "class_path" not in value:
        if kinds == (MODEL,):  # a model config without class_path: its arguments, of the CLI's model class
            _arguments(value, None, key, source, parts=MODEL_PARTS)
        elif any(k.layers for k in kinds):
            _layer_arguments(value, key, source)
        else:
            _arguments(value, _only_class(kinds), key, source)
        return
    class_path = value["class_path"]
    if not isinstance(class_path, str):
        _refuse(f"{key}.class_path", class_path, source, "a class path is an import path, such as torch.nn.Linear")
    target, kind = _check_class(class_path, kinds, f"{key}.class_path", source)
    extra = [k for k in value if k not in _COMPONENT_KEYS]
    if extra:  # jsonargparse takes a class's arguments beside its class_path too
        _arguments({k: value[k] for k in extra}, target, key, source, layers=kind.layers)
    for section in ("init_args", "dict_kwargs"):
        args = value.get(section)
        if isinstance(args, dict):
            _arguments(args, target, f"{key}.{section}", source, layers=kind.layers)
        elif args is not None:
            _no_code(args, f"{key}.{section}", source)


def _arguments(
    args: dict, target: Any, key: str, source: str, layers: bool = False, parts: tuple[Kind, ...] = ()
) -> None:
    """A component's arguments: each builds what its type annotation asks for (`parts` when the class is not
    known), a net's may name layer classes, any other names no code."""
    for name, value in args.items():
        where = f"{key}.{name}"
        if layers and name in LOADS_FILES and value not in (None, "", {}):
            _refuse(where, value, source, f"{name} makes the net read files or fetch a configuration")
        kinds = _argument_kinds(target, str(name)) if target is not None else parts
        if kinds:
            _component(value, kinds, where, source)
        elif layers:
            _layer_arguments(value, where, source)
        else:
            _no_code(value, where, source)


def _layer_arguments(value: Any, key: str, source: str) -> None:
    """Inside a net's arguments: nn.Module classes (`block: project.models.resnet.BasicBlock`, `norm_layer:
    torch.nn.BatchNorm2d`), as names or `{class_path, init_args}`, at any depth; nothing else that is code."""
    _walk(
        value,
        key,
        component=lambda v, k: _component(v, (LAYER,), k, source),
        code=lambda v, k: _check_class(v, (LAYER,), k, source),
    )


def _no_code(value: Any, key: str, source: str) -> None:
    """A value that builds no component: no class_path and no dotted name that resolves to code, at any depth."""

    def component(value: dict, key: str) -> None:
        _refuse(f"{key}.class_path", value["class_path"], source, f"{key} builds no component, so it names no code")

    def code(value: str, key: str) -> None:
        where = _defined_in(value)
        why = f"it is {where}'s" if where and where.split(".")[0] != value.split(".")[0] else "it names code"
        _refuse(key, value, source, f"{why}, and {key} builds no component, so it may name none")

    _walk(value, key, component=component, code=code)


def _walk(value: Any, key: str, *, component: Callable[[dict, str], Any], code: Callable[[str, str], Any]) -> None:
    """Every part of a config value, at any depth, under its key (`a.b[0].c`): `component` for a dict with a
    `class_path` (not walked further: it checks its own arguments), `code` for a string that resolves to code."""
    if isinstance(value, dict) and "class_path" in value:
        component(value, key)
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk(v, f"{key}.{k}", component=component, code=code)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk(v, f"{key}[{i}]", component=component, code=code)
    elif isinstance(value, str) and _resolves_to_code(value):
        code(value, key)


def _check_class(name: str, kinds: tuple[Kind, ...], key: str, source: str) -> tuple[Any, Kind]:
    """The class (or builder) `name` resolves to and its kind, refused unless it is one of `kinds`, defined in a
    trusted package."""
    wanted = " or ".join(k.name for k in kinds)
    if not _DOTTED.match(name):
        _refuse(key, name, source, f"{key} takes {wanted}, named by its import path (such as torch.nn.Linear)")
    if any(p.startswith("_") for p in name.split(".")):
        _refuse(key, name, source, f"it is a private name, and {key} takes {wanted}")
    if not _trusted(name):
        _refuse(key, name, source, f"it is not defined in a trusted package ({', '.join(trusted_packages())})")
    obj = _resolve(name)
    if obj is None:
        _refuse(key, name, source, f"it names nothing importable, and {key} takes {wanted}")
    where = _module_of(obj)
    if where is None or not _trusted(where):  # a re-export: os's system through torch.os
        _refuse(key, name, source, f"it is {_defined_in(name) or where or 'no module'}'s, outside the trusted packages")
    for kind in kinds:
        if inspect.isclass(obj) and any(issubclass(obj, base) for base in _bases(kind)):
            return obj, kind
        if kind.builders and _is_net_builder(obj):
            return obj, kind
    what = "a class" if inspect.isclass(obj) else "a module" if inspect.ismodule(obj) else "a function or object"
    _refuse(key, name, source, f"it is {what} of another kind, and {key} takes {wanted}")


def _refuse(key: str, value: Any, source: str, why: str) -> typing.NoReturn:
    raise UntrustedConfigError(
        f"Refusing {key}: {value} from {source}, which was picked up without being asked for: {why} "
        "(docs/hostile-input.md says what each key may name, and how a fork adds to it in project/settings.py). "
        "If you trust it, pass it yourself: --config <that file>."
    )


def _trusted(module: str) -> bool:
    unsafe = any(module == m or module.startswith(m + ".") for m in UNSAFE_MODULES)
    return module.split(".")[0] in trusted_packages() and not unsafe


@cache
def _bases(kind: Kind) -> tuple[type, ...]:
    found = []
    for path in kind.bases:
        obj = _resolve(path)
        if inspect.isclass(obj):
            found.append(obj)
    return tuple(found)


def _resolve(dotted: str) -> Any:
    """What the public name `dotted` of a trusted package is (submodules imported as needed), or None. Only ever
    called on names `_trusted` passed: importing is running code."""
    parts = dotted.split(".")
    try:
        obj = importlib.import_module(parts[0])
    except ImportError:
        return None
    for part in parts[1:]:
        if part.startswith("_"):
            return None
        try:
            obj = getattr(obj, part)
            continue
        except AttributeError:
            if not inspect.ismodule(obj):
                return None
        submodule = f"{obj.__name__}.{part}"
        if not _trusted(submodule):
            return None
        try:  # a submodule its package does not import
            obj = importlib.import_module(submodule)
        except ImportError:
            return None
    return obj


def resolve(dotted: str) -> Any:
    """What the dotted name of a trusted package resolves to, or None (nothing outside them is imported)."""
    return _resolve(dotted) if _DOTTED.match(dotted) and _trusted(dotted) else None


def _module_of(obj: Any) -> str | None:
    where = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None)
    return where if isinstance(where, str) else None


def _defined_in(dotted: str) -> str | None:
    """The module that defines what `dotted` names, for the refusal's words; an untrusted name is not imported."""
    if not _trusted(dotted.split(".")[0]) or any(p.startswith("_") for p in dotted.split(".")):
        return dotted.split(".")[0]
    parts = dotted.split(".")
    obj = _resolve(parts[0])
    for part in parts[1:]:  # the first step out of the trusted packages: a re-export (os through torch.os)
        obj = getattr(obj, part, None)
        where = _module_of(obj) if obj is not None else None
        if where is not None and not _trusted(where):
            return where
    return _module_of(obj) if obj is not None else None


def _resolves_to_code(value: str) -> bool:
    """Whether the string `value` names an importable module or something in one. Untrusted modules are never
    imported: any regular module or package found there counts as code; a bare folder (a namespace package, a
    data folder on sys.path) only by what it holds."""
    if not _DOTTED.match(value):
        return False
    parts = value.split(".")
    if any(p.startswith("__") for p in parts):
        return True
    if _trusted(parts[0]):
        if not _trusted(value):  # torch.hub.load: never imported
            return True
        if any(p.startswith("_") for p in parts):
            return _private_code(value)
        return _resolve(value) is not None
    for i in range(1, len(parts) + 1):
        try:
            spec = importlib.util.find_spec(".".join(parts[:i]))
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
        if spec.origin not in (None, "namespace"):  # a module with code: never imported here
            return True
    return False


def _private_code(value: str) -> bool:
    """A private name inside a trusted package (`torch._inductor.codecache.PyCodeCache.load`) is code when its
    public prefix is a module; it is never imported to find out more."""
    public = value.split("._", 1)[0]
    return "._" in value and _resolve(public) is not None


def _is_net_builder(obj: Any) -> bool:
    if not inspect.isfunction(obj):
        return False
    where = f"{obj.__module__}.{obj.__qualname__}"
    for entry in net_builders():
        if entry.endswith(".*"):
            if _registered_builder(entry[:-2], obj):
                return True
        elif where == entry or _resolve(entry) is obj:
            return True
    return False


def _registered_builder(module: str, obj: Any) -> bool:
    """`obj` is one of the model builders `module` registers: torchvision's `list_models()`, by name."""
    package = _resolve(module)
    list_models = getattr(package, "list_models", None)
    get_builder = getattr(package, "get_model_builder", None)
    if not callable(list_models) or not callable(get_builder) or not _module_of(obj).startswith(module):
        return False
    try:
        return obj.__name__ in list_models() and get_builder(obj.__name__) is obj
    except (KeyError, ValueError, TypeError):
        return False


def _only_class(kinds: tuple[Kind, ...]) -> Any:
    """The class whose arguments a component's settings are when no class_path says (a checkpoint's
    `init_args` given directly): the kind's own base, when it has one."""
    bases = _bases(kinds[0]) if len(kinds) == 1 else ()
    return bases[0] if len(bases) == 1 else None


def _argument_kinds(target: Any, name: str) -> tuple[Kind, ...]:
    """What argument `name` of the class or builder `target` builds, by its type annotation: `nn.Module` or
    `Callable[..., nn.Module]` a net, `OptimizerCallable` an optimizer, ... (the kinds of ARGUMENT_KINDS)."""
    annotation = _annotation(target, name)
    if annotation is None:
        return ()
    classes = _annotated_classes(annotation)
    return tuple(k for k in ARGUMENT_KINDS if any(issubclass(c, base) for c in classes for base in _bases(k)))


def _annotation(target: Any, name: str) -> Any:
    """The type annotation of argument `name` of `target` (along the classes' __init__ for a class whose own
    takes **kwargs), or None."""
    owners = (
        [c.__init__ for c in inspect.getmro(target) if "__init__" in vars(c)] if inspect.isclass(target) else [target]
    )
    for owner in owners:
        try:
            hints = typing.get_type_hints(owner)
        except Exception:  # an annotation that does not evaluate: judged as none
            hints = getattr(owner, "__annotations__", {})
        if name in hints:
            return hints[name]
    return None


def _annotated_classes(annotation: Any) -> list[type]:
    """The classes a type annotation admits: Union and Optional members, a Callable's return type."""
    if inspect.isclass(annotation) and typing.get_origin(annotation) is None:
        return [annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Callable:
        return _annotated_classes(args[-1]) if args else []
    if origin is type:
        return [a for arg in args for a in _annotated_classes(arg)]
    if origin in (typing.Union, types.UnionType):
        return [c for arg in args for c in _annotated_classes(arg)]
    return []
