"""What the commands that run one recipe many times share (`project.sweep`, `project.crossval`): the recipe as
the CLI resolves it, where its runs go, and one device per run. Each run calls the CLI's `main` in this
process, so a multi-device strategy (which would start copies of the whole command) is refused."""

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from project.engine import signals
from project.engine.cli import main
from project.engine.errors import ConfigError, UserError


class StudyError(ConfigError):
    """A recipe or option that a multi-run command cannot use; the message says how to fix it."""


class InterruptWatch(L.Callback):
    """Tells a Ctrl-C from other failures of a run: Lightning turns one during a fit into SystemExit(1), as it
    does a rejected config; between two steps it stops through Lightning's SIGTERMException (signals.py)."""

    interrupted = False

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        stopped = isinstance(exception, KeyboardInterrupt | SIGTERMException | signals.Stopped)
        self.interrupted = self.interrupted or stopped


def resolved_config(base_args: list[str], recipe: str) -> dict:
    """The recipe with the overrides as its command (`base_args[0]`) would run it, parsed and checked by the
    CLI: checks them before any run, and shows which keys exist and where the logs go."""
    try:
        cli = main(base_args, parse_only=True)
    except SystemExit as exit:
        if exit.code not in (0, None):
            raise StudyError(f"The CLI rejected {recipe} with the given overrides (its message is above).") from None
        raise  # --help among the overrides: printed
    except UserError as err:
        raise StudyError(f"{recipe} with the given overrides: {err}") from None
    return cli.config[base_args[0]].as_dict()


def save_dir(config: dict, recipe: str, command: str) -> str:
    """Where the runs go: the logger's save_dir. `command` (e.g. "the sweep") names the runs' folders."""
    logger = config.get("trainer", {}).get("logger")
    init_args = logger.get("init_args") if isinstance(logger, dict) else None
    if not isinstance(init_args, dict) or "version" not in init_args:
        raise StudyError(
            f"{recipe}: {command} names each run's folder through trainer.logger's name and version; "
            "give the recipe a logger that has them, e.g. lightning.pytorch.loggers.TensorBoardLogger."
        )
    return init_args.get("save_dir") or "logs"


def one_device(config: dict, how_to_scale: str) -> list[str]:
    """The overrides that keep each run on one device in this process (none when it already is);
    `how_to_scale` tells the user how this command uses several GPUs instead."""
    trainer = config.get("trainer", {})
    devices, nodes = trainer.get("devices"), trainer.get("num_nodes") or 1
    if devices == "auto":
        return ["--trainer.devices=1"]
    one = devices in (1, "1") or (isinstance(devices, list) and len(devices) == 1)
    if not one or nodes != 1:
        raise StudyError(
            f"trainer.devices={devices!r}, num_nodes={nodes}: each run of this command runs on one device in "
            f"its own process. {how_to_scale}"
        )
    return []
