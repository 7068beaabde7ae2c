"""A data module hands sizes to the net: numbers only the data knows (its `sizes` after `setup`, else its
`num_classes`) fill the net's constructor arguments of the same names unless given; a given one that contradicts
the data is refused (a default, as torchvision's `num_classes=1000`, is not given). The checkpoint keeps them."""

import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jsonargparse import ArgumentParser, Namespace
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from project.engine.config_yaml import load_config_value
from project.engine.errors import ConfigError


class SizeMismatchError(ConfigError):
    """A network argument that contradicts the data, or that nothing gives."""


class SizesNotReady(Exception):
    """A data module that tells its sizes only once set up (a `sizes` property that reads what `setup` loads)."""


def data_sizes(datamodule: Any) -> dict[str, Any]:
    """What `datamodule` knows about the shapes of its data: its `sizes`, else its `num_classes`. Raises
    SizesNotReady when it declares them but can tell them only once set up."""
    if (sizes := _read(datamodule, "sizes")) is not None:
        sizes = dict(sizes)
    elif (num_classes := _read(datamodule, "num_classes")) is not None:
        sizes = {"num_classes": num_classes}
    else:
        _tell_missing(datamodule, "sizes", "the net and metrics get no sizes from it and need them in the config")
        return {}
    if "num_classes" in sizes:  # a logit per class, unless the data module says otherwise
        sizes.setdefault("num_outputs", sizes["num_classes"])
    return sizes


def _read(datamodule: Any, name: str) -> Any:
    if not hasattr(type(datamodule), name):  # an attribute of the instance, or none
        return getattr(datamodule, name, None)
    try:
        return getattr(datamodule, name)
    except AttributeError as err:  # raised inside a property: what it reads is not there yet
        raise SizesNotReady(f"{type(datamodule).__name__}.{name} is known only once it is set up") from err


def import_object(class_path: str) -> Any:
    """What a dotted path names: `torch.optim.SGD` -> the class."""
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def fill_size_arguments(model: Any, sizes: Mapping[str, Any], source: str, exclude: set[str]) -> dict[str, Any]:
    """Fill the parsed `model` config's own arguments named like one of the data's sizes (a classifier's
    `num_classes`) and left unset, in place; a given one that contradicts the data is refused. Returns those filled."""
    parameters = inspect.signature(import_object(model.class_path)).parameters
    filled = {}
    for name, value in sizes.items():
        if name not in parameters or name in exclude:
            continue
        given = model.init_args.get(name)
        if given is None:
            model.init_args[name] = filled[name] = value
        elif given != value:
            raise SizeMismatchError(
                f"model.{name}={given} contradicts {source}, which has {name}={value}: a checkpoint "
                "made for other data, or a value the data gives. Remove it from the config, or evaluate a checkpoint "
                "on the data it was trained on."
            )
    return filled


def check_required(model: Any, source: str) -> None:
    """Refuse a parsed `model` config that leaves a required argument of its class unset (the parser lets every one
    be left for the data to fill), naming it."""
    missing = [k for k in _required(model.class_path) if model.init_args.get(k) is None]
    if missing:
        raise SizeMismatchError(
            f"model ({model.class_path}) needs {', '.join(missing)}, which neither the config nor {source} gives. "
            f"Set model.init_args.{missing[0]}."
        )


def _net_parser(target: Any, build: bool = False) -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False)
    if not inspect.isclass(target):
        parser.add_function_arguments(target, "net", fail_untyped=False)
    elif build:  # the method's arguments, not the class: instantiating must not build it
        parser.add_method_arguments(target, "__init__", "net", fail_untyped=False)
    else:
        parser.add_class_arguments(target, "net", fail_untyped=False)
    return parser


def net_defaults(class_path: str) -> dict[str, Any]:
    """The constructor's defaults as jsonargparse resolves them (a builder's `**kwargs` followed to the class
    it builds, as for torchvision's `resnet18`)."""
    return dict(_net_parser(import_object(class_path)).get_defaults().as_dict().get("net", {}))


class NetSpec:
    """A network not built yet: its class path (or builder) and only the arguments the user gave, so a class
    switched on the command line never inherits values meant for another. `config()` is complete once built."""

    def __init__(self, class_path: str, init_args: Mapping[str, Any] | None = None, key: str = "model.net"):
        self.class_path = class_path
        self.init_args = _plain(dict(init_args or {}))
        self.given = set(self.init_args)
        self.key = key  # where the config gives it, for messages

    @classmethod
    def from_config(cls, config: Any, given: set[str] | None = None, key: str = "model.net") -> "NetSpec":
        """From a parsed `{class_path, init_args}`. `given`: the keys the user gave; None (sources unknown)
        keeps those that differ from the constructor's defaults."""
        config = _plain(config)
        init_args = dict(config.get("init_args") or {})
        if given is None:
            defaults = _plain(net_defaults(config["class_path"]))
            given = {k for k, v in init_args.items() if k not in defaults or defaults[k] != v}
        return cls(config["class_path"], {k: v for k, v in init_args.items() if k in given}, key)

    def build(self, sizes: Mapping[str, Any], source: str = "the data") -> nn.Module:
        for name, value in sizes.items():
            if name not in self.init_args and name not in _parameters(self.class_path):
                continue
            if name in self.given and self.init_args[name] != value:
                raise SizeMismatchError(
                    f"{self.key}.init_args.{name}={self.init_args[name]} contradicts {source}, which has "
                    f"{name}={value}. {name} comes from the data: remove it from the config or command line, "
                    "or evaluate the checkpoint on the data it was trained on."
                )
            self.init_args[name] = value
        missing = sorted(k for k in _required(self.class_path) if self.init_args.get(k) is None)
        if missing:
            raise SizeMismatchError(
                f"{self.key} ({self.class_path}) needs {', '.join(missing)}, which neither the config nor {source} "
                f"gives (it gives {', '.join(sorted(sizes)) or 'no sizes'}). Set {self.key}.init_args.{missing[0]}."
            )
        # A builder taking **kwargs that jsonargparse could not follow (torchvision's mobilenet_v3_small,
        # timm's create_model) is offered the class count too; it is dropped again if the builder refuses it.
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in _signature(self.class_path))
        offered = {k: v for k, v in sizes.items() if k == "num_classes" and k not in self.init_args and takes_kwargs}
        try:
            return self._instantiate({**self.init_args, **offered})
        except TypeError:
            if not offered:
                raise
        return self._instantiate(self.init_args)

    def _instantiate(self, init_args: dict[str, Any]) -> nn.Module:
        # jsonargparse converts the arguments it knows (nested class_paths become objects); those it cannot
        # see (a builder's untyped **kwargs) go to the constructor as they are
        target = import_object(self.class_path)
        known = _parameters(self.class_path)
        parser = _net_parser(target, build=True)
        kwargs = {k: v for k, v in init_args.items() if k in known}
        cfg = parser.parse_object({"net": kwargs}, defaults=False)
        built = parser.instantiate_classes(cfg).get("net") or {}
        built = built.as_dict() if isinstance(built, Namespace) else dict(built)
        built = {k: v for k, v in built.items() if k in kwargs}
        net = target(**built, **{k: v for k, v in init_args.items() if k not in known})
        if not isinstance(net, nn.Module):
            raise ConfigError(f"{self.key} ({self.class_path}) built a {type(net).__name__}, not a torch.nn.Module.")
        self.init_args = dict(init_args)
        return net

    def config(self) -> dict[str, Any]:
        return {"class_path": self.class_path, "init_args": dict(self.init_args)}


def _parameters(class_path: str) -> set[str]:
    return set(net_defaults(class_path)) | set(_required(class_path))


def _signature(class_path: str) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(import_object(class_path)).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature
        return []


def _required(class_path: str) -> list[str]:
    params = _signature(class_path)
    return [p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _plain(value: Any) -> Any:
    """`value` as YAML holds it, a class by its import path: else the checkpoint would pickle `block: BasicBlock`."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if inspect.isclass(value) or inspect.isfunction(value):
        return f"{value.__module__}.{value.__qualname__}"
    return value


class DeferredNet(nn.Module):
    """Stands in a model for a net whose data module tells its sizes only once set up: the engine builds it then
    (`callbacks.SizesFromData`, before the model's own `setup`) and puts the net in its place."""

    def __init__(self, spec: NetSpec, name: str):
        super().__init__()
        self.spec, self.name = spec, name

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{self.spec.key} is built when the data is set up (a fit, validate, test or predict)")


def build_net(
    net: nn.Module | Callable[..., nn.Module] | NetSpec, sizes: Mapping[str, Any], source: str = "the data"
) -> nn.Module:
    """`net` itself when it is built; otherwise built with the sizes its constructor takes."""
    if isinstance(net, nn.Module):
        return net
    if isinstance(net, NetSpec):
        return net.build(sizes, source)
    params = inspect.signature(net).parameters
    return net(**{k: v for k, v in sizes.items() if k in params})


_NET_KEYS = ("class_path", "init_args", "dict_kwargs", "__path__")


def net_arguments(model_class: type) -> list[str]:
    """The model's constructor arguments that take a network (annotated `nn.Module`, or an Optional of one): the
    engine builds what the config gives for them with the data's sizes."""
    try:
        hints = typing.get_type_hints(model_class.__init__)
    except Exception:  # an annotation that does not resolve: no net argument found
        return []
    found = []
    for name, hint in hints.items():
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        if any(inspect.isclass(o) and issubclass(o, nn.Module) for o in options):
            found.append(name)
    return found


def net_args_given(config_files: Sequence[str], args: Sequence[str], name: str = "net") -> tuple[str | None, set[str]]:
    """(the class path of `model.<name>` or None, the init_args keys given for it) from the config files and the
    command line, read in jsonargparse's order. A source naming another class starts the keys over: jsonargparse
    carries the earlier class's arguments over where their names fit, and those were never given for it."""
    state: dict[str, Any] = {"class_path": None, "keys": set()}
    option = f"--model.{name}"
    sections = {
        "--config": ("model", name),
        "-c": ("model", name),
        "--model": (name,),
        option: (),
        f"--model.init_args.{name}": (),
    }

    def apply(net: Any) -> None:
        if isinstance(net, str):
            net = {"class_path": net}
        if not isinstance(net, Mapping):
            return
        keys = set(net.get("init_args") or {}) | {k for k in net if k not in _NET_KEYS}
        class_path = net.get("class_path")
        if class_path and class_path != state["class_path"]:
            state["class_path"], state["keys"] = class_path, keys
        else:
            state["keys"] |= keys

    def from_file_or_text(value: str, section: tuple[str, ...]) -> Any:
        content = load_config_value(value)
        for key in section:
            if isinstance(content, Mapping) and key not in content and isinstance(content.get("init_args"), Mapping):
                content = content["init_args"]  # a model section written with class_path and init_args
            content = content.get(key) if isinstance(content, Mapping) else None
        return content

    for path in config_files:
        apply(from_file_or_text(str(path), ("model", name)))
    args = list(args)
    for i, arg in enumerate(args):
        key, eq, value = arg.partition("=")
        if not key.startswith("-"):
            continue
        value = value if eq else args[i + 1] if i + 1 < len(args) else ""
        key = key.replace(f"--model.init_args.{name}", option)
        if key in sections:
            apply(from_file_or_text(value, sections[key]))
        elif key == f"{option}.class_path":
            apply({"class_path": value})
        elif key == f"{option}.init_args":
            apply({"init_args": from_file_or_text(value, ())})
        elif key.startswith(option + "."):
            inner = key.removeprefix(option + ".").removeprefix("init_args.").split(".")[0]
            if inner not in _NET_KEYS and inner != "help":
                state["keys"].add(inner)
    return state["class_path"], state["keys"]


# The data module protocol: what the project reads of any LightningDataModule, here only, naming once per run
# what one lacks: `classes` (class names in reports), `sizes` or `num_classes` (net and metrics),
# `predict_names` (the predictions CSV's `sample` column); `fold`/`num_folds` for `python -m project.crossval`.
_told: set[tuple[type, str]] = set()


def _tell_missing(datamodule: Any, name: str, lost: str) -> None:
    if datamodule is None or (type(datamodule), name) in _told:
        return
    _told.add((type(datamodule), name))
    rank_zero_info(
        f"{type(datamodule).__name__} has no `{name}`: {lost}. Add it to the data module to change that "
        "(the data module protocol: project/engine/sizes.py)."
    )


def class_names(datamodule: Any, num_classes: int) -> list[str]:
    """The data's class names (its `classes`), else the class indices as text."""
    names = getattr(datamodule, "classes", None)
    if names is None:
        _tell_missing(datamodule, "classes", "classes are named by their index")
        return [str(i) for i in range(num_classes)]
    return [str(name) for name in names]


def predict_names(datamodule: Any) -> list[str] | None:
    """The name of each predicted sample (its `predict_names`), or None: the CSV numbers them."""
    names = getattr(datamodule, "predict_names", None)
    if names is None:
        _tell_missing(datamodule, "predict_names", "predictions.csv numbers its samples")
    return names
