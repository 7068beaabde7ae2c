"""A data module hands sizes to the net: numbers only the data knows (class count, input features,
sample rate, vocabulary size) fill the network's constructor arguments of the same names.

- A data module states what it knows as `sizes`, a dict read after its `setup` (so a size may come
  from reading the data). Without one, its `num_classes` attribute is used.
- The network is given as a recipe, not an instance: `NetSpec` (class path or builder function plus
  the arguments the user gave). `Classifier.setup` builds it once the data is set up, filling each
  constructor argument named like a size that the user did not give. A default (torchvision's
  `num_classes=1000`) is not a value given; a given value that contradicts the data is refused.
- The filled arguments are stored in the checkpoint's hyperparameters, so a checkpoint rebuilds the
  same network without its data.

A net of your own takes part by naming its arguments like the sizes: `num_classes`, `in_features`,
`sample_rate`... A data module of your own adds a size by returning it from `sizes`.
"""

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from jsonargparse import ArgumentParser, Namespace
from torch import nn

from project.errors import ConfigError


class SizeMismatchError(ConfigError):
    """A network argument that contradicts the data, or that nothing gives."""


def data_sizes(datamodule: Any) -> dict[str, Any]:
    """What `datamodule` knows about the shapes of its data (read after its `setup`)."""
    sizes = getattr(datamodule, "sizes", None)
    if sizes is not None:
        return dict(sizes)
    num_classes = getattr(datamodule, "num_classes", None)
    return {} if num_classes is None else {"num_classes": num_classes}


def _net_parser() -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--net", type=nn.Module)
    return parser


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _defaults(class_path: str) -> dict[str, Any]:
    """The constructor's defaults as jsonargparse resolves them (a builder function's `**kwargs`
    followed to the class it builds, as for torchvision's `resnet18`)."""
    target = _import(class_path)
    parser = ArgumentParser(exit_on_error=False)
    if inspect.isclass(target):
        parser.add_class_arguments(target, "net", fail_untyped=False)
    else:
        parser.add_function_arguments(target, "net", fail_untyped=False)
    return {k: v for k, v in parser.get_defaults().as_dict().get("net", {}).items()}


class NetSpec:
    """A network not built yet: its class path (or builder function) and the arguments the user gave.

    `build(sizes)` fills every constructor argument named like a size that the user left unset or at
    its default, and builds the net; `config()` is then the complete `{class_path, init_args}`.
    """

    def __init__(self, class_path: str, init_args: Mapping[str, Any] | None = None):
        self.class_path = class_path
        defaults = _plain(_defaults(class_path))
        self.init_args = {**defaults, **_plain(dict(init_args or {}))}
        self.given = {k for k, v in self.init_args.items() if k not in defaults or defaults[k] != v}

    @classmethod
    def from_config(cls, config: Any) -> "NetSpec":
        """From the `{class_path, init_args}` of a parsed config (a Namespace or a dict)."""
        if isinstance(config, Namespace):
            config = config.as_dict()
        return cls(config["class_path"], config.get("init_args"))

    def accepts(self, name: str) -> bool:
        return name in self.init_args

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
        # A builder taking **kwargs that jsonargparse could not follow (torchvision's mobilenet_v3_small) is
        # offered the class count too; it is dropped again if the builder refuses it.
        offered = {} if "num_classes" in self.init_args or not _takes_kwargs(self.class_path) else dict(sizes)
        offered = {k: v for k, v in offered.items() if k == "num_classes"}
        try:
            return self._instantiate({**self.init_args, **offered})
        except TypeError:
            if not offered:
                raise
        return self._instantiate(self.init_args)

    def _instantiate(self, init_args: dict[str, Any]) -> nn.Module:
        parser = _net_parser()
        cfg = parser.parse_object({"net": {"class_path": self.class_path, "init_args": init_args}})
        net = parser.instantiate_classes(cfg).net
        if init_args is not self.init_args:
            self.init_args = dict(init_args)
        return net

    def config(self) -> dict[str, Any]:
        return {"class_path": self.class_path, "init_args": dict(self.init_args)}


def _required(class_path: str) -> list[str]:
    try:
        params = inspect.signature(_import(class_path)).parameters.values()
    except (TypeError, ValueError):
        return []
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
    try:
        params = inspect.signature(_import(class_path)).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD for p in params)


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
