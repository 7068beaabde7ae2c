"""The command line: `python -m project.cli {fit,validate,test,predict} [--config RECIPE] [--preset NAME]
[--key value]`. Configs and presets stack as project/engine/recipes.py says; every key can still be overridden."""

import shutil
import sys
from collections.abc import Sequence
from textwrap import fill
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.callbacks import BasePredictionWriter, LearningRateMonitor, ModelCheckpoint
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
    ScheduleFitsTheRun,
    SizesFromData,
    StepSeededRandomness,
    StopBetweenSteps,
    readable_progress,
)
from project.engine.checkpoints import AtomicCheckpointIO, check_checkpoint_path
from project.engine.errors import ConfigError, UserError, run_command
from project.engine.help import KeepLines, asks_for_every_key, asks_for_help, fit_help, rest_of_help
from project.engine.help import usage as help_usage
from project.engine.parser import Parser, check_trainer_config, fall_back_to_cpu_precision
from project.engine.recipes import available_presets, prepare_args, presets_in, recipe_run_name, shipped_recipes
from project.engine.resume import continue_run, last_of_named_run
from project.engine.run_config import SaveRunConfig
from project.engine.sizes import (
    DeferredNet,
    NetSpec,
    SizesNotReady,
    check_required,
    data_sizes,
    fill_size_arguments,
    import_object,
    net_args_given,
    net_arguments,
)

SUBCOMMANDS = ("fit", "validate", "test", "predict")
USAGE = (
    "--config RECIPE picks the task: a YAML file, or a shipped recipe's name "
    f"({', '.join(shipped_recipes())}). --preset NAME (repeatable) stacks a preset over the recipe: "
    f"{', '.join(available_presets(None))} (configs/presets/; a recipe's own presets/ folder beside it "
    "comes first). Any --key value still wins."
)


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
        **kwargs: Any,
    ):
        self._default_config_files = list(
            default_config_files
        )  # read again by `net_args_given` (project/engine/sizes.py)
        self._args: list[str] = []
        self.recipe_run_name = recipe_run_name  # kept when a preset swaps the logger (project/engine/recipes.py)
        self.parse_only = parse_only  # parse and check the config, build and run nothing (multirun.py)
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Always-on checkpointing: the best epoch by the monitored metric, and the latest state.
        # Two callbacks because Lightning's `save_last` only refreshes last.ckpt when the best one
        # changes, which would make a resume lose every epoch since the last improvement.
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                # "Best" for every part of the run (engine/best.py); a recipe states its task's own
                "checkpoint.monitor": "val/loss",
                "checkpoint.mode": "min",
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
        # `predict` writes the model's predictions (`--predictions.output`); a no-op for the other subcommands. Any
        # Lightning prediction writer of a fork's own replaces it: `--predictions my_package.MyWriter`
        parser.add_lightning_class_args(BasePredictionWriter, "predictions", subclass_mode=True)
        parser.set_defaults({"predictions": {"class_path": f"{PredictionCSV.__module__}.{PredictionCSV.__name__}"}})

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
        if "verbose" in config and not any(a.split("=", 1)[0] == "--verbose" for a in self._args):
            config["verbose"] = False  # the run summary prints the metrics once, without Lightning's table
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
        runs.place_run(config, self.recipe_run_name, self.subcommand or "fit")
        fall_back_to_cpu_precision(trainer)
        if self.parse_only:
            self.subcommand = None  # LightningCLI runs the subcommand it parsed unless this is None

    def instantiate_classes(self) -> None:
        if self.parse_only:
            return
        config = self.config[self.subcommand] if self.subcommand else self.config
        recorded = internals.freeze_cli_hparams(self)
        # The model is built last, once the data module is: its nets and size arguments take the data's sizes
        model, config.model = config.model, None
        try:
            self.config_init = self.parser.instantiate_classes(self.config)
        finally:
            config.model = model
        self.datamodule = self._get(self.config_init, "data")
        # A checkpoint rebuilds its data module from these: every argument the config gave goes in, also
        # those the data module leaves out of its own hyperparameters (the source, an object in Python)
        stored = getattr(self.datamodule, "hparams", None)
        for key, value in ((recorded.get("data") or {}).get("init_args") or {}).items():
            if stored is not None and key not in stored:
                stored[key] = value
        self.model = self._instantiate_model(model)
        (self.config_init[self.subcommand] if self.subcommand else self.config_init).model = self.model
        self._add_configure_optimizers_method_to_model(self.subcommand)
        self.trainer = self.instantiate_trainer()

    def _instantiate_model(self, model: Namespace) -> L.LightningModule:
        """The model with its nets built and its size arguments filled from the data (engine/sizes.py)."""
        source = f"the data ({type(self.datamodule).__name__})"
        try:
            sizes = data_sizes(self.datamodule)
        except SizesNotReady:  # built once the data module is set up (callbacks.SizesFromData)
            sizes = None
        sized = model.clone()
        specs = {}
        for name in net_arguments(import_object(model.class_path)):
            parsed = sized.init_args.get(name)
            if not isinstance(parsed, Namespace) or not parsed.get("class_path"):
                continue  # not given, or given as an object: used as it is
            class_path, given = net_args_given(self._default_config_files, self._args, name)
            # A source this cannot read (another class than the one parsed): the keys off their defaults
            known = class_path is not None and class_path.rsplit(".", 1)[-1] == parsed.class_path.rsplit(".", 1)[-1]
            spec = NetSpec.from_config(parsed, given if known else None, f"model.{name}")
            # The run's config.yaml states the net as given (the data's sizes are the checkpoint's to hold), not
            # with every default jsonargparse filled in: a default such as num_classes=10 would read as chosen
            model.init_args[name].init_args = Namespace(spec.init_args)
            if sizes is None:
                sized.init_args[name] = DeferredNet(spec, name)
                continue
            sized.init_args[name] = spec.build(sizes, source)
            specs[name] = spec
        filled = fill_size_arguments(sized, sizes or {}, source, exclude=set(specs))
        check_required(sized, source)
        root = Namespace(model=sized)
        instance = self._parser(self.subcommand).instantiate_classes(root).model
        # The checkpoint rebuilds the model without the data: its hyperparameters hold what was built
        hparams = getattr(instance, "hparams", {})
        for name, spec in specs.items():
            if name in hparams:
                hparams[name] = spec.config()
        for name, value in filled.items():
            if name in hparams:
                hparams[name] = value
        return instance

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except ValueError as err:  # Lightning checks its arguments here: `strategy='nope'`, `num_nodes=0`
            if isinstance(err, UserError):
                raise
            raise ConfigError(f"the trainer refused its config: {err}") from err
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # keep a user's own plugin
            trainer.strategy.checkpoint_io = AtomicCheckpointIO(self.model)
        readable_progress(trainer)
        runs.claim_run_folders(trainer)
        if self.subcommand == "fit":
            config = self.config[self.subcommand]
            runs.hold_run_folder(
                trainer, resuming=bool(config.get("ckpt_path")) or internals.hpc_resume_path(trainer) is not None
            )
        if not trainer.loggers:  # nothing to write learning rates to; Lightning would refuse the monitor
            trainer.callbacks[:] = [cb for cb in trainer.callbacks if not isinstance(cb, LearningRateMonitor)]
        runs.profile_in_run_folder(trainer, self.subcommand or "fit")
        return trainer


def main(
    args: list[str] | None = None, run: bool = True, callbacks: Sequence[L.Callback] = (), parse_only: bool = False
) -> CLI:
    """Build the CLI (and run its subcommand unless `run=False`; `parse_only`: stop once `cli.config` is parsed and
    checked). `callbacks` join the CLI's own for this call only, out of config.yaml: e.g. the sweep's Optuna trial."""
    internals.cheap_repeated_logging()  # `self.log` costs Lightning about 1 ms a call otherwise
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
    brief = asks_for_help(given) and not asks_for_every_key(given)  # `--help all` lists every key
    return CLI(
        L.LightningModule,  # any: a recipe names its task's module as model.class_path
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults={
            "callbacks": [
                SizesFromData(),  # first: the model's own setup and every other callback's read the sizes
                LearningRateMonitor(logging_interval="step"),
                RunSummary(),
                FitTimeEstimate(presets=presets_in(given)),
                FiniteLossGuard(),
                ResumeLoaderPosition(),
                StepSeededRandomness(),
                StopBetweenSteps(),
                CheckpointFiles(),
                ScheduleFitsTheRun(),
                *callbacks,
            ]
        },
        # prog: --help names the command a user types, not `cli.py` or `__main__.py`
        parser_kwargs={
            "prog": "python -m project.cli",
            "description": usage,
            # the subcommands' parsers take the main one's formatter (jsonargparse)
            "formatter_class": KeepLines,
            **{
                cmd: {
                    "default_config_files": defaults,
                    "description": f"{usage}\n\n{fill(rest_of_help(cmd), width)}" if brief else usage,
                    "usage": help_usage(cmd),
                    "brief_help": brief,
                }
                for cmd in SUBCOMMANDS
            },
            "fit": {
                "default_config_files": defaults,
                "description": fit_description,
                "usage": help_usage("fit"),
                "brief_help": brief,
            },
        },
        parser_class=Parser,
        save_config_callback=SaveRunConfig,
        default_config_files=defaults,
        args=args,
        run=run,
        recipe_run_name=name,
        parse_only=parse_only,
    )


def entry() -> None:
    """The shell's entry point: a user's mistake ends in one `error:` line and exit status 2, a SIGTERM
    in 143 (project/engine/errors.py)."""
    run_command(main)


if __name__ == "__main__":
    entry()
