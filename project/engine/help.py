"""What `--help` says: each command in full; for `fit` the recipe's main keys with their values and the presets
(left out when the file cannot be read: the parse reports it), then how to reach the rest. LightningCLI's
exhaustive list of every key (over a thousand lines) comes only with `--help all`."""

import argparse
import itertools
from pathlib import Path
from textwrap import fill
from typing import Any

from jsonargparse import DefaultHelpFormatter

from project.engine.config_yaml import load_config_value
from project.engine.recipes import HELP, PRESETS, available_presets, config_options, is_preset

COMMANDS = {
    "fit": "train a recipe (--config RECIPE, else settings.DEFAULT_RECIPE; --preset quick for a CPU-sized run)",
    "validate": "evaluate a checkpoint on the validation split (--ckpt_path FILE)",
    "test": "evaluate a checkpoint on the test split and log the test pictures (--ckpt_path FILE)",
    "predict": "write predictions.csv for a checkpoint (--ckpt_path FILE; --data.predict_dir for new files)",
}
# (the key as typed on the command line, where it lies in a config file)
MAIN_KEYS = (
    ("--data", ("data", "class_path")),
    ("--data.source", ("data", "init_args", "source", "class_path")),
    # where the data is read from: the one key a user with the data already on disk needs
    ("--data.source.init_args.root", ("data", "init_args", "source", "init_args", "root")),
    ("--data.dataset", ("data", "init_args", "dataset", "class_path")),
    ("--data.batch_size", ("data", "init_args", "batch_size")),
    ("--model", ("model", "class_path")),
    ("--model.net", ("model", "net", "class_path")),
    ("--model.optimizer", ("model", "optimizer", "class_path")),
    ("--model.optimizer.lr", ("model", "optimizer", "init_args", "lr")),
    ("--trainer.max_epochs", ("trainer", "max_epochs")),
)


ALL = "all"  # `--help all`: every key


def usage(command: str) -> str:
    """The usage line (LightningCLI's synopsis lists every option: about 80 lines)."""
    ckpt = "--ckpt_path FILE " if command != "fit" else ""
    return f"python -m project.cli {command} {ckpt}[--config RECIPE] [--preset NAME ...] [--KEY VALUE ...]"


def asks_for_help(args: list[str]) -> bool:
    return any(a in HELP for a in args)


def asks_for_every_key(args: list[str]) -> bool:
    """`--help all`: LightningCLI's list of every key after the synopsis."""
    return any(a in HELP and b == ALL for a, b in itertools.pairwise(args))


def rest_of_help(command: str = "fit") -> str:
    """How to reach what a brief `--help` leaves out."""
    checkpoint = "" if command == "fit" else "The checkpoint brings its run's config: --config only to change it. "
    every = f"python -m project.cli {command} --help {ALL}"
    rest = f"Every key, with its type and default (over a thousand lines): {every}"
    return f"{checkpoint}{rest}; the whole config as it would run: --print_config."


def fit_help(args: list[str], defaults: list[str], width: int = 100) -> str:
    """The opening of `fit --help`: the recipe's main keys, its presets, and where the rest is."""
    configs = [value for _, value in config_options(args)]
    merged: dict[str, Any] = {}
    for config in [*defaults, *configs]:
        loaded = load_config_value(config)
        merged = _merge(merged, loaded if isinstance(loaded, dict) else {})
    recipes = [c for c in [*defaults, *configs] if not is_preset(c)]
    recipe = next((c for c in reversed(recipes) if Path(c).stem != "base"), None)
    stacked = [Path(c).parent.name if Path(c).parent.name != PRESETS else Path(c).stem for c in configs if is_preset(c)]
    lines = []
    shown = [(key, value) for key, path in MAIN_KEYS if (value := _get(merged, path)) is not None]
    if shown:
        where = f" ({recipe})" if recipe and "\n" not in recipe else ""
        presets = f" with --preset {' --preset '.join(stacked)}" if stacked else ""
        lines.append(f"Main keys of this recipe{where}{presets}, as they will run:")
        column = max(len(key) for key, _ in shown)
        lines += [f"  {key:<{column}}  {value}" for key, value in shown]
    file = recipe if recipe and "\n" not in recipe and Path(recipe).is_file() else None
    lines.append(fill(f"Presets (--preset NAME, repeatable): {', '.join(available_presets(file))}.", width))
    own = [
        (f"--{key}.help", value)
        for key, path in CLASS_KEYS
        if isinstance(value := _get(merged, (*path, "class_path")), str)
    ]
    classes = ", ".join(f"{key} {value}" for key, value in own) or "--model.net.help CLASS, --data.help CLASS"
    rest = f"A class's own keys: {classes} (any class path). {rest_of_help()}"
    return "\n".join([*lines, fill(rest, width)])


# The classes whose own keys `--KEY.help CLASS` lists (a key and where its class_path lies in a config file)
CLASS_KEYS = (
    ("data", ("data",)),
    ("data.source", ("data", "init_args", "source")),
    ("model", ("model",)),
    ("model.net", ("model", "net")),
    ("model.optimizer", ("model", "optimizer")),
)


def _merge(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(under)
    if isinstance(merged.get("init_args"), dict) and "class_path" not in over and "init_args" not in over:
        over = {"init_args": over}  # a class's arguments given without its class_path (a preset's `model: net:`)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both else value
    return merged


def _get(config: Any, path: tuple[str, ...]) -> Any:
    """The value at `path`, looking through `init_args` where a class's argument lies under it."""
    for key in path:
        if not isinstance(config, dict):
            return None
        if key not in config and isinstance(config.get("init_args"), dict):
            config = config["init_args"]
        config = config.get(key)
    return config


class KeepLines(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the description's lines kept as written (one key a line)."""
