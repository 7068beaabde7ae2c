"""The command line's parser built once per process in the tests, and a fresh copy handed to every call.

`project.cli.main` builds LightningCLI's parser, four subcommand parsers of every Trainer, model, data
and callback argument, on each call: about 0.5 s of CPU, most of a bad-input case (tests/catalogue.py) and
of any test that calls `main` in this process. A deep copy of a parser built with the same arguments costs
about 25 ms and parses alike, and a case's parsing cannot leave anything in the next case's copy. Recipes
differ only in their default config files, which are set on the copy: one parser serves them all.
The shell's `python -m project.cli` still builds its own, once, as it runs one command.
"""

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

_BUILT: dict[tuple, tuple] = {}


def _key(cli: Any, add_subcommands: bool, main_kwargs: dict, subparser_kwargs: dict) -> tuple:
    """Everything LightningCLI's `setup_parser` reads: the same key builds the same parser."""
    defaults = {k: v for k, v in cli.trainer_defaults.items() if k != "callbacks"}  # callbacks stay off the parser
    return (
        type(cli),
        cli.parser_class,
        cli._model_class,
        cli._datamodule_class,
        cli.trainer_class,
        cli.subclass_mode_model,
        cli.subclass_mode_data,
        repr(cli.seed_everything_default),
        cli.auto_configure_optimizers,
        add_subcommands,
        repr(_without_config_files(main_kwargs)),
        repr({name: _without_config_files(kwargs) for name, kwargs in subparser_kwargs.items()}),
        repr(defaults),
    )


def _without_config_files(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k != "default_config_files"}


@contextlib.contextmanager
def parsers_built_once() -> Iterator[None]:
    """Within it, the CLI takes a copy of a parser built before with the same arguments, else builds one."""
    from project.engine.cli import CLI  # imports torch and Lightning: not at conftest's import

    build = CLI.setup_parser
    if getattr(build, "reuses_parsers", False):  # already within one
        yield
        return

    def setup_parser(self: Any, add_subcommands: bool, main_kwargs: dict, subparser_kwargs: dict) -> None:
        key = _key(self, add_subcommands, main_kwargs, subparser_kwargs)
        if key not in _BUILT:
            build(self, add_subcommands, main_kwargs, subparser_kwargs)
            _BUILT[key] = {name: getattr(self, name) for name in _STATE if hasattr(self, name)}
        # One deepcopy call keeps the subcommand parsers the very objects the main parser holds
        for name, value in copy.deepcopy(_BUILT[key]).items():
            setattr(self, name, value)
        self.parser.default_config_files = main_kwargs.get("default_config_files")
        for name, parser in getattr(self, "_subcommand_parsers", {}).items():
            parser.default_config_files = subparser_kwargs.get(name, {}).get("default_config_files")

    setup_parser.reuses_parsers = True
    CLI.setup_parser = setup_parser
    try:
        yield
    finally:
        CLI.setup_parser = build


# What `setup_parser` leaves on the CLI (lightning/pytorch/cli.py): the parser, and with subcommands, each
# subcommand's parser and the Trainer method's arguments it added
_STATE = ("parser", "_subcommand_parsers", "_subcommand_method_arguments")
