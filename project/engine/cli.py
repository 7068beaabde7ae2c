"""The command line: `python -m project.cli {fit,validate,test,predict} [--config RECIPE] [--preset NAME]
[--key value]`. Configs and presets stack as project/engine/recipes.py says; every key can still be overridden."""

import shutil
import sys
from collections.abc import Sequence
from textwrap import fill
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO

from project.engine import internals, runs
from project.engine.callbacks import (
    CheckpointFiles,
    FiniteLossGuard,
    FitTimeEstimate,
    PredictionCSV,
    ResumeLoaderPosition,
    RunSummary,
    StepSeededRandomness,
    StopBetweenSteps,
    readable_progress,
)
from project.engine.checkpoints import AtomicCheckpointIO, check_checkpoint_path
from project.engine.errors import ConfigError, UserError, run_command
from project.engine.help import KeepLines, asks_for_help, fit_help
from project.engine.parser import Parser, check_trainer_config, fall_back_to_cpu_precision
from project.engine.recipes import available_presets, prepare_args, presets_in, recipe_run_name, shipped_recipes
from project.engine.resume import continue_run, last_of_named_run
from project.engine.run_config import SaveRunConfig
from project.engine.sizes import NetSpec, data_sizes, net_args_given
from project.tasks.classification import metrics
from project.tasks.classification.module import Classifier

SUBCOMMANDS = ("fit", "validate", "test", "predict")
USAGE = (
    "--config RECIPE picks the task: a YAML file, or a shipped recipe's name "
    f"({', '.join(shipped_recipes())}). --preset NAME (repeatable) stacks a preset over the recipe: "
    f"{', '.join(available_presets(None))} (configs/presets/; a recipe's own presets/ folder beside it "
    "comes first). Any --key value still wins."
)

# LightningCLI's synopsis lists every option (60 lines): the list after it does that once
FIT_USAGE = "python -m project.cli fit [--config RECIPE] [--preset NAME ...] [--KEY VALUE ...]"


# Ours, not LightningCLI's reading of `--ckpt_path` hyperparameters (the model's alone, over the command line):
# run_config.py rebuilds model and data beneath it, trusted, and resume.py refuses changed keys
@internals.without_checkpoint_hparams
class CLI(LightningCLI):
    def __init__(
        self,
        *args: Any,
        default_config_files: Sequence[str] = (),
        recipe_run_name: str | None = None,
        parse_only: bool = False,
        subcommands: Sequence[str] = SUBCOMMANDS,
        **kwargs: Any,
    ):
        self._subcommands = tuple(subcommands)
        self._default_config_files = list(
            default_config_files
        )  # read again by `net_args_given` (project/engine/sizes.py)
        self._args: list[str] = []
        self.recipe_run_name = recipe_run_name  # kept when a preset swaps the logger (project/engine/recipes.py)
        self.parse_only = parse_only  # parse and check the config, build and run nothing (multirun.py)
        super().__init__(*args, **kwargs)

    def subcommands(self) -> dict[str, set[str]]:
        """LightningCLI's subcommands, those of `subcommands` only: each builds a parser of every Trainer, model,
        data and callback argument, so a command line that names its subcommand builds one, not four (about 0.3 s
        of a 2-core CPU's start-up)."""
        every = LightningCLI.subcommands()
        return {name: every[name] for name in self._subcommands}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Always-on checkpointing: the best epoch by the monitored metric, and the latest state.
        # Two callbacks because Lightning's `save_last` only refreshes last.ckpt when the best one
        # changes, which would make a resume lose every epoch since the last improvement.
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": metrics.MONITOR,
                "checkpoint.mode": metrics.MONITOR_MODE,
                # No metric in the name: "val/acc" would make a sub-folder
                "checkpoint.filename": "best-epoch{epoch:03d}-step{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "last_checkpoint.filename": "last",  # overwritten every epoch (or `every_n_train_steps`)
                "last_checkpoint.monitor": None,
                "last_checkpoint.save_top_k": 1,
                "last_checkpoint.enable_version_counter": False,
                # Ctrl-C, SIGTERM or a crash still leaves the latest step resumable
                "last_checkpoint.save_on_exception": True,
            }
        )
        # `predict` writes a CSV (`--predictions.output`); a no-op for the other subcommands
        parser.add_lightning_class_args(PredictionCSV, "predictions")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        self._args = list(sys.argv[1:] if args is None else args if isinstance(args, list | tuple) else [])
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        config = self.config[subcommand]
        # A checkpoint is a pickle: unless the user opts out for a file they trust, load only tensors
        # and plain values (Lightning leaves it to torch's default, which an environment variable can flip).
        if config.get("weights_only") is None:
            config["weights_only"] = True
        ckpt_path = config.get("ckpt_path")
        if ckpt_path:  # a clear error before Lightning's own torch.load
            check_checkpoint_path(ckpt_path, trusted=not config["weights_only"], resume=subcommand == "fit")
        if subcommand == "fit" and ckpt_path == "last":
            config["ckpt_path"] = last_of_named_run(config, self.recipe_run_name)
        if subcommand == "fit" and config.get("ckpt_path"):
            continue_run(config)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.trainer
        check_trainer_config(trainer)
        runs.resolve_data_paths(config.get("data"))  # a run's config.yaml and checkpoints work from any folder
        runs.place_run(config, self.recipe_run_name)
        fall_back_to_cpu_precision(trainer)
        if self.parse_only:
            self.subcommand = None  # LightningCLI runs the subcommand it parsed unless this is None

    def instantiate_classes(self) -> None:
        if self.parse_only:
            return
        # The net is built by the Classifier once the data is set up and its sizes are known
        # (project/engine/sizes.py), so hand it over unbuilt.
        config = self.config[self.subcommand] if self.subcommand else self.config
        parsed = config.model.net
        recorded = internals.freeze_cli_hparams(self)
        config.model.net = None  # jsonargparse would build it now
        try:
            super().instantiate_classes()
        finally:
            config.model.net = parsed
        if isinstance(self.model, Classifier) and parsed is not None:
            class_path, given = net_args_given(self._default_config_files, self._args)
            # A source this cannot read (another class than the one parsed): the keys off their defaults
            known = class_path is not None and class_path.rsplit(".", 1)[-1] == parsed.class_path.rsplit(".", 1)[-1]
            spec = NetSpec.from_config(parsed, given if known else None)
            self.model.defer_net(spec)
            # The run's config.yaml states the net as it is built: what was given (and the sizes, once known)
            parsed.init_args = Namespace(spec.init_args)
        # A checkpoint rebuilds its data module from these: every argument the config gave goes in, also
        # those the data module leaves out of its own hyperparameters (the source, an object in Python)
        stored = getattr(self.datamodule, "hparams", None)
        for key, value in ((recorded.get("data") or {}).get("init_args") or {}).items():
            if stored is not None and key not in stored:
                stored[key] = value
        try:  # most data modules know their sizes before setup: build now, so `run=False` gives a whole model
            sizes = data_sizes(self.datamodule)
        except Exception:
            return  # known at setup; the Classifier builds the net then
        if sizes and isinstance(self.model, Classifier):
            self.model.build(sizes, f"the data ({type(self.datamodule).__name__})")

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except ValueError as err:  # Lightning checks its arguments here: `strategy='nope'`, `num_nodes=0`
            if isinstance(err, UserError):
                raise
            raise ConfigError(f"the trainer refused its config: {err}") from err
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # keep a user's own plugin
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        readable_progress(trainer)
        runs.claim_run_folders(trainer)
        if self.subcommand == "fit":
            config = self.config[self.subcommand]
            runs.hold_run_folder(
                trainer, resuming=bool(config.get("ckpt_path")) or internals.hpc_resume_path(trainer) is not None
            )
        if not trainer.loggers:  # nothing to write learning rates to; Lightning would refuse the monitor
            trainer.callbacks[:] = [cb for cb in trainer.callbacks if not isinstance(cb, LearningRateMonitor)]
        runs.profile_in_run_folder(trainer)
        return trainer


def main(
    args: list[str] | None = None, run: bool = True, callbacks: Sequence[L.Callback] = (), parse_only: bool = False
) -> CLI:
    """Build the CLI (and run its subcommand unless `run=False`; `parse_only`: stop once `cli.config` is parsed and
    checked). `callbacks` join the CLI's own for this call only, out of config.yaml: e.g. the sweep's Optuna trial."""
    # What Lightning spends on its own bookkeeping each step (project/engine/internals.py says why each is safe)
    internals.cheap_repeated_logging()  # `self.log` costs Lightning about 1 ms a call otherwise
    internals.skip_empty_callback_hooks()  # about 90 calls of empty hooks a training step otherwise
    internals.cached_hook_signatures()  # `inspect.signature` at every step and every `self.log` otherwise
    internals.quiet_library_notices()
    if args is None:  # from the shell; DDP re-launches other ranks with sys.argv, so edit it there
        sys.argv[1:], defaults = prepare_args(sys.argv[1:])
    else:
        args, defaults = prepare_args(args)
    given = sys.argv[1:] if args is None else args
    name = recipe_run_name(given, defaults)
    width = min(100, shutil.get_terminal_size().columns - 2)
    usage = fill(USAGE, width)  # KeepLines leaves the lines as given
    fit_description = f"{usage}\n\n{fit_help(given, defaults, width)}" if asks_for_help(given) else usage
    subcommand_kwargs = {cmd: {"default_config_files": defaults, "description": usage} for cmd in SUBCOMMANDS}
    subcommand_kwargs["fit"].update(description=fit_description, usage=FIT_USAGE)
    # The one named first, as every command line does; else all, for the overall help and a mistyped one's error
    built = [given[0]] if given and given[0] in SUBCOMMANDS else list(SUBCOMMANDS)
    return CLI(
        Classifier,
        L.LightningDataModule,
        subclass_mode_data=True,
        trainer_defaults={
            "callbacks": [
                LearningRateMonitor(logging_interval="step"),
                RunSummary(),
                FitTimeEstimate(presets=presets_in(given)),
                FiniteLossGuard(),
                ResumeLoaderPosition(),
                StepSeededRandomness(),
                StopBetweenSteps(),
                CheckpointFiles(),
                *callbacks,
            ]
        },
        # prog: --help names the command a user types, not `cli.py` or `__main__.py`
        parser_kwargs={
            "prog": "python -m project.cli",
            "description": usage,
            # the subcommands' parsers take the main one's formatter (jsonargparse)
            "formatter_class": KeepLines,
            **{cmd: subcommand_kwargs[cmd] for cmd in built},
        },
        parser_class=Parser,
        save_config_callback=SaveRunConfig,
        default_config_files=defaults,
        args=args,
        run=run,
        recipe_run_name=name,
        parse_only=parse_only,
        subcommands=built,
    )


def entry() -> None:
    """The shell's entry point: a user's mistake ends in one `error:` line and exit status 2, a SIGTERM
    in 143 (project/engine/errors.py)."""
    run_command(main)


if __name__ == "__main__":
    entry()
