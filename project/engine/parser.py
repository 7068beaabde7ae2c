"""The command line's parser: Lightning's, with errors a user can read: one `error:` line and a hint to
`--help`, not the whole usage (about 90 lines for `fit`); a bad config file named with the line at fault
(jsonargparse says `"<unicode string>", line 2`)."""

import ast
import difflib
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

import torch
import yaml
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from project.engine.config_yaml import config_problem, read_config_text, use_bounded_yaml
from project.engine.errors import DEBUG_ENV, USER_ERROR_EXIT, ConfigError, debug_enabled
from project.engine.help import COMMANDS
from project.engine.internals import option_strings, unrequire_arguments

use_bounded_yaml()  # every YAML jsonargparse reads: bounded aliases and size, no duplicate keys


class ProjectArgumentParser(LightningArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # argparse would take `--trainer.max_epoch 3` for `--trainer.max_epochs 3`: a typo must not train
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_args(self, args: Any = None, *rest: Any, **kwargs: Any) -> Namespace:
        global _given
        _given = list(sys.argv[1:] if args is None else args)
        return super().parse_args(args, *rest, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or debug_enabled():  # a caller that catches errors, or debugging
            super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {one_line(_with_given_key(message))}{self._close_matches(message)}\n")
        sys.stderr.write(f"Run `{prog} --help` for the accepted keys (set {DEBUG_ENV}=1 for the details).\n")
        self.exit(USER_ERROR_EXIT)

    def _close_matches(self, message: str) -> str:
        """For an unrecognized `--key`, the accepted keys it is close to."""
        unknown = re.findall(r"(--[\w.-]+)", message) if "unrecognized arguments" in message else []
        options = [o for o in option_strings(self) if o.startswith("--")]
        close = [m for name in unknown for m in difflib.get_close_matches(name, options, n=1, cutoff=0.8)]
        return f" (did you mean {' or '.join(dict.fromkeys(close))}?)" if close else ""

    def parse_path(self, path: str | os.PathLike, *args: Any, **kwargs: Any) -> Namespace:
        # Checked first: jsonargparse parses the file's text, and its errors have lost the file's name
        problem = config_file_problem(Path(path))
        if problem is not None:
            self.error(problem)
        return super().parse_path(path, *args, **kwargs)


_KEY = re.compile(r'Parser key "([^"]+)"')
_NESTED = re.compile(r"NestedArg\(key='([^']*)', val=(.*)\)\s*$", re.MULTILINE)
_EXPECTED = re.compile(r"Expected an? (<class '[\w.]+'>|typing\.Literal\[.*\]|<class [^>]+>|\S+)")
_CALLABLE = re.compile(r"^Type .* expects a function or a callable class: ")
_PROBLEM = re.compile(r"Problem with given class_path '([^']*)':")
_REASONS = (
    "No module named",
    "has no attribute",
    "is not accepted",
    "not a subclass",
    "does not correspond",
    "not a class",
    "Unable to load config",
)


_given: list[str] = []  # the arguments of the latest parse, to name the one a YAML error came from


def _with_given_key(message: str) -> str:
    """A YAML value's error names only the top key it was parsed under (`model`); name the option that gave it
    (`--model.optimizer.init_args`) when one option under that key holds YAML text."""
    found = re.match(r'Parser key "([^"]+)":\s*a YAML value', message)
    if not found:
        return message
    options = [a.split("=", 1)[0] for a in _given if a.startswith(f"--{found[1]}.") and "=" in a and "{" in a]
    return message.replace(f'Parser key "{found[1]}"', f'Parser key "{options[0][2:]}"', 1) if options else message


def one_line(message: str) -> str:
    """jsonargparse's account of a value that fits none of a key's types (a dozen lines naming every Union
    member and `NestedArg(...)`) as one line: the key, the value given, and what is accepted."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    keys = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _KEY.search(line))]
    if len(lines) <= 1 or not keys:
        return " ".join(line.strip() for line in lines)
    key = keys[0][1]
    # the outermost key's (the last in the message): a subclass's own keys nest theirs inside it
    nested = ([None, *_NESTED.finditer(message)])[-1]
    if nested:
        key, value = f"{key}.{nested.group(1)}".replace(".init_args.", "."), _as_typed(nested.group(2))
    else:
        given = re.findall(r"Given value: (.*?)(?:\. Got value: .*)?$", message, re.MULTILINE)
        got = re.findall(r"Got value: (.*)$", message, re.MULTILINE)
        value = given[-1] if given else got[-1] if got else None
    # what the innermost key accepts: the lines indented under its `Parser key` line
    last, _ = keys[-1]
    depth = _indent(lines[last])
    block = [line for line in lines[last + 1 :]]
    block = block[: next((i for i, line in enumerate(block) if _indent(line) <= depth), len(block))] or lines[1:]
    accepted = list(dict.fromkeys(_type_name(m.group(1)) for line in block for m in _EXPECTED.finditer(line)))
    accepted = [a for a in accepted if a and (a != "null" or (len(keys) == 1 and nested is None))]
    reasons = [_CALLABLE.sub("", line.strip(" -")) for line in lines if any(r in line for r in _REASONS)]
    problem = next((m.group(1) for line in lines if (m := _PROBLEM.search(line))), None)
    said = f"{key}={value}" if value is not None else key
    if reasons and (not accepted or nested is None):
        option = re.search(r"Option '([^']*)' is not accepted", reasons[0])
        if option:
            return f"{said}: {problem or key} has no argument {option.group(1)} (see --help for its arguments)"
        # the class whose argument it is, unless the key says it (a subclass's own key: model.net=...)
        where = f" ({problem})" if problem and problem not in reasons[0] + said and nested is None else ""
        return f"{said}: {reasons[0]}{where}"
    if accepted:
        return f"{said} is not accepted: expected {' or '.join(accepted)}"
    return f"{said}: " + " ".join(line.strip(" -") for line in lines[1:] if "Given value" not in line)


def _as_typed(text: str) -> str:
    """A value jsonargparse shows as its repr, as the command line had it: 'fast' -> fast."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, str) else text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" -"))


def _type_name(text: str) -> str | None:
    if text in ("path", "dot") or text.startswith("path"):
        return None
    if text.startswith("<class '"):
        name = text[len("<class '") : -2].rsplit(".", 1)[-1]
        return {"NoneType": "null", "int": "an integer", "float": "a number", "bool": "true or false"}.get(
            name, f"a {name}"
        )
    if text.startswith("typing.Literal["):
        return "one of " + text[len("typing.Literal[") : -1].replace("'", "")
    return None


def check_trainer_config(trainer: Any) -> None:
    """Trainer settings Lightning accepts and then fails on mid-run (a division by zero), or ignores."""
    at_least_one = ("accumulate_grad_batches", "check_val_every_n_epoch", "num_nodes")
    for key in at_least_one:
        value = trainer.get(key)
        if isinstance(value, int) and value < 1:
            raise ConfigError(f"trainer.{key}={value}: it must be at least 1")
    for low, high in (("min_epochs", "max_epochs"), ("min_steps", "max_steps")):
        least, most = trainer.get(low), trainer.get(high)
        if isinstance(least, int) and isinstance(most, int) and most >= 0 and least > most:
            raise ConfigError(f"trainer.{low}={least} is more than trainer.{high}={most}: lower one or raise the other")


def config_file_problem(path: Path) -> str | None:
    """What makes `path` unusable as a config file (naming the file and line), or None if it reads as one."""
    try:
        text = read_config_text(path)
    except ConfigError as err:
        return str(err)
    except (OSError, UnicodeDecodeError) as err:
        return f"cannot read the config file {path}: {err}"
    bounded = config_problem(text, str(path))  # before parsing it whole: a bomb, or a key given twice
    if bounded is not None:
        return bounded
    try:
        content = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        context = err.context
        if context and err.context_mark is not None and err.context_mark is not mark:
            context = f"{context} started on line {err.context_mark.line + 1},"
        problem = " ".join(str(p) for p in (context, err.problem) if p)
        lines = text.splitlines()
        tabbed = mark is not None and mark.line < len(lines) and "\t" in lines[mark.line]
        tabs = " (YAML indents with spaces, never tabs)" if tabbed else ""
        return f"{where} is not valid YAML: {problem}{tabs}"
    except yaml.YAMLError as err:
        return f"{path} is not valid YAML: {err}"
    if content is None:
        return f"the config file {path} is empty: it should hold keys such as `trainer:`, `model:` or `data:`"
    if not isinstance(content, dict):
        return (
            f"the config file {path} holds a {type(content).__name__} at the top level: it should hold "
            "keys such as `trainer:`, `model:` or `data:`, each followed by a colon"
        )
    return None


def fall_back_to_cpu_precision(trainer: Any) -> None:
    """Set the parsed `trainer` config's precision to `cpu_precision`'s, saying so, when that differs."""
    # The configs ask for bf16 autocast, which is what a GPU wants; on a CPU without bf16 units
    # it made the default CIFAR-10 config 18x slower (5 min vs 17 s for 8 steps, 2-core x86).
    # `accelerator: auto` means "the best this machine has", so it also picks the precision;
    # an explicit `--trainer.accelerator cpu` keeps whatever precision was asked for.
    fallback = cpu_precision(trainer)
    if fallback is not None:
        rank_zero_info(
            f"No GPU: training in {fallback} instead of trainer.precision={trainer.precision}, which is many "
            "times slower on most CPUs. Pass --trainer.accelerator cpu to keep the precision you asked for."
        )
        trainer.precision = fallback


class Parser(ProjectArgumentParser):  # the command line's; ProjectArgumentParser serves other commands too
    """LightningCLI's parser, accepting a net config that leaves out arguments the data will give. `brief_help`:
    `--help` prints the usage and the description (project/engine/help.py), not every key."""

    def __init__(self, *args: Any, brief_help: bool = False, **kwargs: Any) -> None:
        self.brief_help = brief_help
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        if "--config" in args and "help" in kwargs:  # LightningCLI's says "Path to a configuration file"
            kwargs["metavar"] = "RECIPE"
            kwargs["help"] = (
                "a recipe: a shipped recipe's name or a YAML file (the list is above); repeatable, a later one "
                "wins, as --preset NAME does."
            )
        return super().add_argument(*args, **kwargs)

    def format_help(self, *args: Any, **kwargs: Any) -> str:
        if not self.brief_help:
            return super().format_help(*args, **kwargs)
        formatter = self._get_formatter()
        formatter.add_usage(self.usage, self._actions, self._mutually_exclusive_groups)
        formatter.add_text(self.description)
        return formatter.format_help()

    def add_class_arguments(self, theclass: Any, nested_key: str | None = None, *args: Any, **kwargs: Any) -> list[str]:
        # A class_path's own parser (nested_key None) for a network or a model: every argument may be left for
        # the data's sizes; one that nothing fills is reported when it is built (project/engine/sizes.py).
        if nested_key is None and inspect.isclass(theclass) and issubclass(theclass, nn.Module):
            kwargs = unrequire_arguments(kwargs, set(inspect.signature(theclass).parameters))
        return super().add_class_arguments(theclass, nested_key, *args, **kwargs)

    def add_subcommands(self, *args: Any, **kwargs: Any) -> Any:
        # LightningCLI lists each command with the first line of the Trainer method's docstring, cut
        # mid-sentence for `test` and `predict`: ours say what each does here, in full
        subcommands = super().add_subcommands(*args, **kwargs)
        add = subcommands.add_subcommand

        def add_with_our_help(name: str, parser: Any, **add_kwargs: Any) -> Any:
            add_kwargs["help"] = COMMANDS.get(name, add_kwargs.get("help"))
            return add(name, parser, **add_kwargs)

        subcommands.add_subcommand = add_with_our_help
        return subcommands

    def dump(self, cfg: Any, *args: Any, **kwargs: Any) -> str:
        # `--print_config` prints before the CLI's hooks run: show the precision that will run, not
        # the one the recipe asked of a GPU (CLI.before_instantiate_classes)
        trainer = cfg.get("trainer") if hasattr(cfg, "get") else None
        if trainer is not None and cpu_precision(trainer) is not None:
            cfg = cfg.clone()
            cfg.trainer.precision = cpu_precision(trainer)
        if "skip_none" in kwargs:  # LightningCLI 2.6 still passes jsonargparse's deprecated name (warned on every fit)
            kwargs["skip_unset"] = kwargs.pop("skip_none")
        return super().dump(cfg, *args, **kwargs)


def cpu_precision(trainer: Any) -> str | None:
    """The precision that runs instead of a half precision asked for with `accelerator: auto` on a machine
    without a GPU (see CLI.before_instantiate_classes), or None when the one asked for runs."""
    half = str(trainer.get("precision")).startswith(("bf16", "16"))
    if half and trainer.get("accelerator") == "auto" and not torch.cuda.is_available():
        return "32-true"
    return None
