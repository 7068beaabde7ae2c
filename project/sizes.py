"""A data module hands sizes to the net: numbers only the data knows (class count, input features, sample
rate) fill the network's constructor arguments of the same names.

A data module states them as `sizes` (read after its `setup`; else its `num_classes`). The net is given
as a `NetSpec` (class path plus the arguments the user gave) and built once the data is set up: every
constructor argument named like a size and not given is filled; a given one that contradicts the data
is refused (a default such as torchvision's `num_classes=1000` is not given). The filled arguments go
into the checkpoint's hyperparameters, so a checkpoint rebuilds the same net without its data.
"""

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentParser, Namespace
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from project.config_yaml import load_config_file, load_config_text
from project.errors import ConfigError


class SizeMismatchError(ConfigError):
    """A network argument that contradicts the data, or that nothing gives."""


def data_sizes(datamodule: Any) -> dict[str, Any]:
    """What `datamodule` knows about the shapes of its data (read after its `setup`)."""
    sizes = getattr(datamodule, "sizes", None)
    if sizes is not None:
        return dict(sizes)
    num_classes = getattr(datamodule, "num_classes", None)
    if num_classes is None:
        _tell_missing(datamodule, "sizes", "the net and metrics get no sizes from it and need them in the config")
    return {} if num_classes is None else {"num_classes": num_classes}


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def net_defaults(class_path: str) -> dict[str, Any]:
    """The constructor's defaults as jsonargparse resolves them (a builder function's `**kwargs`
    followed to the class it builds, as for torchvision's `resnet18`)."""
    target = _import(class_path)
    parser = ArgumentParser(exit_on_error=False)
    if inspect.isclass(target):
        parser.add_class_arguments(target, "net", fail_untyped=False)
    else:
        parser.add_function_arguments(target, "net", fail_untyped=False)
    return dict(parser.get_defaults().as_dict().get("net", {}))


class NetSpec:
    """A network not built yet: its class path (or builder function) and only the arguments the user
    gave (config, command line or checkpoint), so a class switched on the command line never inherits
    values meant for another. `build(sizes)` fills the size arguments not given, refuses a given one that
    contradicts the data and builds the net; `config()` is then the complete `{class_path, init_args}`."""

    def __init__(self, class_path: str, init_args: Mapping[str, Any] | None = None):
        self.class_path = class_path
        self.init_args = _plain(dict(init_args or {}))
        self.given = set(self.init_args)

    @classmethod
    def from_config(cls, config: Any, given: set[str] | None = None) -> "NetSpec":
        """From the `{class_path, init_args}` of a parsed config (a Namespace or a dict). `given`: the
        init_args keys the user gave; None keeps those that differ from the constructor's defaults (for a
        config whose sources are unknown)."""
        if isinstance(config, Namespace):
            config = config.as_dict()
        init_args = _plain(dict(config.get("init_args") or {}))
        if given is None:
            defaults = _plain(net_defaults(config["class_path"]))
            given = {k for k, v in init_args.items() if k not in defaults or defaults[k] != v}
        return cls(config["class_path"], {k: v for k, v in init_args.items() if k in given})

    def accepts(self, name: str) -> bool:
        return name in self.init_args or name in _parameters(self.class_path)

    def build(self, sizes: Mapping[str, Any], source: str = "the data") -> nn.Module:
        for name, value in sizes.items():
            if not self.accepts(name):
                continue
            if name in self.given and self.init_args[name] != value:
                raise SizeMismatchError(
                    f"model.net.init_args.{name}={self.init_args[name]} contradicts {source}, which has "
                    f"{name}={value}. {name} comes from the data: remove it from the config or command line, "
                    "or evaluate the checkpoint on the data it was trained on."
                )
            self.init_args[name] = value
        missing = sorted(k for k in _required(self.class_path) if self.init_args.get(k) is None)
        if missing:
            raise SizeMismatchError(
                f"model.net ({self.class_path}) needs {', '.join(missing)}, which neither the config nor {source} "
                f"gives (it gives {', '.join(sorted(sizes)) or 'no sizes'}). Set model.net.init_args.{missing[0]}."
            )
        # A builder taking **kwargs that jsonargparse could not follow (torchvision's mobilenet_v3_small,
        # timm's create_model) is offered the class count too; it is dropped again if the builder refuses it.
        offered = {} if "num_classes" in self.init_args or not _takes_kwargs(self.class_path) else dict(sizes)
        offered = {k: v for k, v in offered.items() if k == "num_classes"}
        try:
            return self._instantiate({**self.init_args, **offered})
        except TypeError:
            if not offered:
                raise
        return self._instantiate(self.init_args)

    def _instantiate(self, init_args: dict[str, Any]) -> nn.Module:
        # jsonargparse checks and converts the arguments it knows (nested class_paths become objects);
        # those it cannot see (a builder's untyped **kwargs) go to the constructor as they are
        target = _import(self.class_path)
        known = _parameters(self.class_path)
        parser = ArgumentParser(exit_on_error=False)
        if inspect.isclass(target):  # the method's arguments, not the class: instantiating must not build it
            parser.add_method_arguments(target, "__init__", "net", fail_untyped=False)
        else:
            parser.add_function_arguments(target, "net", fail_untyped=False)
        kwargs = {k: v for k, v in init_args.items() if k in known}
        cfg = parser.parse_object({"net": kwargs}, defaults=False)
        built = parser.instantiate_classes(cfg).get("net") or {}
        built = built.as_dict() if isinstance(built, Namespace) else dict(built)
        built = {k: v for k, v in built.items() if k in kwargs}
        net = target(**built, **{k: v for k, v in init_args.items() if k not in known})
        if not isinstance(net, nn.Module):
            raise ConfigError(f"model.net ({self.class_path}) built a {type(net).__name__}, not a torch.nn.Module.")
        if init_args is not self.init_args:
            self.init_args = dict(init_args)
        return net

    def config(self) -> dict[str, Any]:
        return {"class_path": self.class_path, "init_args": dict(self.init_args)}


def _parameters(class_path: str) -> set[str]:
    """The constructor arguments jsonargparse sees (a builder's **kwargs followed where it can be)."""
    return set(net_defaults(class_path)) | set(_required(class_path))


def _signature(class_path: str) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(_import(class_path)).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature
        return []


def _required(class_path: str) -> list[str]:
    params = _signature(class_path)
    return [p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _plain(value: Any) -> Any:
    """`value` as YAML would hold it: a class or function by its import path, so that a checkpoint's
    hyperparameters stay plain data (torchvision's `block: BasicBlock` would otherwise be pickled)."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if inspect.isclass(value) or inspect.isfunction(value):
        return f"{value.__module__}.{value.__qualname__}"
    return value


def _takes_kwargs(class_path: str) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in _signature(class_path))


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


_NET = "--model.net"
_NET_KEYS = ("class_path", "init_args", "dict_kwargs", "__path__")


def net_args_given(config_files: Sequence[str], args: Sequence[str]) -> tuple[str | None, set[str]]:
    """(the net's class path, the init_args keys given for it) from the config files and the command
    line, in the order jsonargparse reads them. A source that names another class starts the keys over:
    jsonargparse carries the earlier class's arguments over to a new one where their names fit, and
    those were never given for it. (None, set()) when no source names the net."""
    state: dict[str, Any] = {"class_path": None, "keys": set()}

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
        path = Path(value)
        try:
            content = load_config_file(path) if path.is_file() else load_config_text(value, "--config")
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ConfigError):
            return None
        for key in section:
            content = content.get(key) if isinstance(content, Mapping) else None
        return content

    for path in config_files:
        apply(from_file_or_text(str(path), ("model", "net")))
    args = list(args)
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if not name.startswith("-"):
            continue
        if not eq:
            value = args[i + 1] if i + 1 < len(args) else ""
        if name in ("--config", "-c"):
            apply(from_file_or_text(value, ("model", "net")))
        elif name == "--model":
            apply(from_file_or_text(value, ("net",)))
        elif name == _NET:
            apply(from_file_or_text(value, ()))
        elif name == f"{_NET}.class_path":
            apply({"class_path": value})
        elif name == f"{_NET}.init_args":
            apply({"init_args": from_file_or_text(value, ())})
        elif name.startswith(_NET + "."):
            key = name.removeprefix(_NET + ".").removeprefix("init_args.").split(".")[0]
            if key not in _NET_KEYS and key != "help":
                state["keys"].add(key)
    return state["class_path"], state["keys"]


# What the project reads of any LightningDataModule, here only; one it lacks is named once per run:
#   classes -> class names in predictions, confusion matrix and per-class table
#   sizes (or num_classes) -> the net's size arguments and the metrics
#   predict_names -> the predictions CSV's `sample` column
# (the project's data modules have all three, and `fold`/`num_folds` for `python -m project.crossval`)

_told: set[tuple[type, str]] = set()


def _tell_missing(datamodule: Any, name: str, lost: str) -> None:
    key = (type(datamodule), name)
    if datamodule is None or key in _told:
        return
    _told.add(key)
    rank_zero_info(
        f"{type(datamodule).__name__} has no `{name}`: {lost}. Add it to the data module to change that "
        "(the data module protocol: project/sizes.py)."
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
