"""The command line: `python -m project.cli {fit,validate,test,predict} [--config RECIPE] [--preset NAME]
[--key value]`.

Every command starts from configs/base.yaml (no task in it); `fit` with no --config adds the default
recipe (CIFAR-10), and a --config replaces it; presets (debug, overfit, quick, profile, csv, mlflow,
nologger) stack over the recipe (project/recipes.py). Every key can still be overridden on the command
line. The net is built once the data is set up, its sizes filled from the data
(project/sizes.py).
"""

import inspect
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from textwrap import fill
from typing import Any

import lightning as L
import torch
from jsonargparse import Namespace
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from project import metrics
from project.callbacks import (
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
from project.checkpoints import AtomicCheckpointIO, check_checkpoint_path
from project.classifier import Classifier
from project.errors import CheckpointError, ConfigError, UserError, run_command
from project.help import COMMANDS, KeepLines, asks_for_help, fit_help
from project.internals import (
    cheap_repeated_logging,
    cli_config_dump,
    freeze_cli_hparams,
    hpc_resume_path,
    quiet_library_notices,
    unrequire_arguments,
    without_checkpoint_hparams,
)
from project.parser import ProjectArgumentParser, check_trainer_config
from project.recipes import available_presets, prepare_args, presets_in, recipe_run_name, shipped_recipes
from project.runs import (
    SaveRunConfig,
    claim_run_folders,
    continue_run,
    hold_run_folder,
    newest_last_checkpoint,
    next_version_folder,
    resolve_data_paths,
    run_folder,
)
from project.sizes import NetSpec, data_sizes, net_args_given

SUBCOMMANDS = ("fit", "validate", "test", "predict")
USAGE = (
    "--config RECIPE picks the task: a YAML file, or a shipped recipe's name "
    f"({', '.join(shipped_recipes())}). --preset NAME (repeatable) stacks a preset over the recipe: "
    f"{', '.join(available_presets(None))} (configs/presets/; a recipe's own presets/ folder beside it "
    "comes first). Any --key value still wins."
)

# LightningCLI's synopsis lists every option (60 lines): the list after it does that once
FIT_USAGE = "python -m project.cli fit [--config RECIPE] [--preset NAME ...] [--KEY VALUE ...]"


class Parser(ProjectArgumentParser):
    """LightningCLI's parser, accepting a net config that leaves out arguments the data will give."""

    def add_class_arguments(self, theclass: Any, nested_key: str | None = None, *args: Any, **kwargs: Any) -> list[str]:
        # A class_path's own parser (nested_key None) for a network: every argument may be left for the
        # data's sizes; one that nothing fills is reported when the net is built (project/sizes.py).
        network = inspect.isclass(theclass) and issubclass(theclass, nn.Module)
        if nested_key is None and network and not issubclass(theclass, L.LightningModule):
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


# Ours, not LightningCLI's reading of `--ckpt_path` hyperparameters: that one parses the model's alone, over the
# command line; project/recipes.py rebuilds model and data beneath it, checks trust and refuses changed keys
@without_checkpoint_hparams
class CLI(LightningCLI):
    def __init__(
        self,
        *args: Any,
        default_config_files: Sequence[str] = (),
        recipe_run_name: str | None = None,
        parse_only: bool = False,
        **kwargs: Any,
    ):
        # Read again to tell which net arguments the user gave (project/sizes.py, `net_args_given`)
        self._default_config_files = list(default_config_files)
        self._args: list[str] = []
        self.recipe_run_name = recipe_run_name  # kept when a preset swaps the logger (project/recipes.py)
        self.parse_only = parse_only  # the config as its command would run, nothing built or run (project/multirun.py)
        super().__init__(*args, **kwargs)

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
            config["ckpt_path"] = self._last_of_named_run(config)
        if subcommand == "fit" and config.get("ckpt_path"):
            continue_run(config)

    def _last_of_named_run(self, config: Any) -> str:
        """`fit --ckpt_path last`: the newest last.ckpt of runs with this logger's name, resumed in its folder."""
        logger = config.trainer.logger
        init = logger.init_args if logger not in (None, False, True) else None
        save_dir = Path(init.save_dir) if init is not None and init.get("save_dir") else Path("logs")
        name = (init.get("name") if init is not None else None) or run_name(config, self.recipe_run_name)
        found = newest_last_checkpoint(save_dir / name)
        if found is None:
            raise CheckpointError(
                f"--ckpt_path last: no run named {name} under {save_dir} has a last.ckpt to resume. Start one "
                "with `fit` (without --ckpt_path), or name a checkpoint file."
            )
        if init is not None and "version" in init:
            init.version = found.parent.parent.name  # log into the resumed run's own folder
        rank_zero_info(f"Resuming {found}")
        return str(found)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.trainer
        check_trainer_config(trainer)
        logger = trainer.logger
        init = logger.get("init_args") if hasattr(logger, "get") else None
        resolve_data_paths(config.get("data"))  # a run's config.yaml and checkpoints work from any folder
        if init is not None and "name" in init and not init.name:
            init.name = run_name(config, self.recipe_run_name)  # a recipe that names no run: its data's name
        if init is not None and init.get("experiment_name") == "lightning_logs":  # MLflow's stock name
            init.experiment_name = run_name(config, self.recipe_run_name)
        if logger is False and not trainer.get("default_root_dir"):
            # No logger: checkpoints and the run's config still get a folder of their own
            trainer.default_root_dir = str(next_version_folder(Path("logs") / run_name(config, self.recipe_run_name)))
        uri = (init or {}).get("tracking_uri")
        if logger_class(logger).endswith(".MLFlowLogger") and (uri is None or str(uri).startswith("file:")):
            # A local MLflow store in save_dir keeps the run beside the others in logs/ (configs/presets/
            # mlflow.yaml); MLflow >= 3.7 refuses its file store unless asked for it this way
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            if uri is None and init.get("save_dir"):
                # MLflow keeps one store per URI for the process: a relative one would stay tied to the
                # folder of the first run (a sweep or a test that changes folder then finds no store)
                init.save_dir = str(Path(init.save_dir).resolve())
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
        if self.parse_only:
            self.subcommand = None  # LightningCLI runs the subcommand it parsed unless this is None

    def instantiate_classes(self) -> None:
        if self.parse_only:
            return
        # The net is built by the Classifier once the data is set up and its sizes are known
        # (project/sizes.py), so hand it over unbuilt.
        config = self.config[self.subcommand] if self.subcommand else self.config
        parsed = config.model.net
        freeze_cli_hparams(self)
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
        for key, value in ((cli_config_dump(self).get("data") or {}).get("init_args") or {}).items():
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
        claim_run_folders(trainer)
        if self.subcommand == "fit":
            config = self.config[self.subcommand]
            hold_run_folder(trainer, resuming=bool(config.get("ckpt_path")) or hpc_resume_path(trainer) is not None)
        if not trainer.loggers:  # nothing to write learning rates to; Lightning would refuse the monitor
            trainer.callbacks[:] = [cb for cb in trainer.callbacks if not isinstance(cb, LearningRateMonitor)]
        profile_in_run_folder(trainer)
        return trainer


def main(
    args: list[str] | None = None, run: bool = True, callbacks: Sequence[L.Callback] = (), parse_only: bool = False
) -> CLI:
    """Build the CLI (and run its subcommand unless `run=False`). `callbacks` join the CLI's own for this
    call only and stay out of the saved config.yaml: live objects such as the sweep's Optuna trial.
    `parse_only`: parse and check the config (`cli.config`) as the subcommand would run it, and stop there."""
    cheap_repeated_logging()  # `self.log` costs Lightning about 1 ms a call otherwise (project/internals.py)
    quiet_library_notices()
    if args is None:  # from the shell; DDP re-launches other ranks with sys.argv, so edit it there
        sys.argv[1:], defaults = prepare_args(sys.argv[1:])
    else:
        args, defaults = prepare_args(args)
    given = sys.argv[1:] if args is None else args
    name = recipe_run_name(given, defaults)
    width = min(100, shutil.get_terminal_size().columns - 2)
    usage = fill(USAGE, width)  # KeepLines leaves the lines as given
    fit_description = f"{usage}\n\n{fit_help(given, defaults, width)}" if asks_for_help(given) else usage
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
            **{cmd: {"default_config_files": defaults, "description": usage} for cmd in SUBCOMMANDS},
            "fit": {
                "default_config_files": defaults,
                "description": fit_description,
                "usage": FIT_USAGE,
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


def cpu_precision(trainer: Any) -> str | None:
    """The precision that runs instead of a half precision asked for with `accelerator: auto` on a machine
    without a GPU (see CLI.before_instantiate_classes), or None when the one asked for runs."""
    half = str(trainer.get("precision")).startswith(("bf16", "16"))
    if half and trainer.get("accelerator") == "auto" and not torch.cuda.is_available():
        return "32-true"
    return None


def logger_class(logger: Any) -> str:
    """The class path of a logger as configured (empty for none or `true`)."""
    return str(logger.get("class_path") or "") if hasattr(logger, "get") else ""


def profile_in_run_folder(trainer: L.Trainer) -> None:
    """A profiler given no `dirpath` writes into the run folder (configs/presets/profile.yaml).

    Lightning puts it in `trainer.log_dir`: the run folder for TensorBoard, CSV and no logger, but the
    store's root for others (MLflow's logs/mlruns). Rank 0 only: the others do not know the folder yet.
    """
    profiler = trainer.profiler
    if getattr(profiler, "dirpath", "given") is not None or not trainer.loggers or trainer.global_rank != 0:
        return
    if not isinstance(trainer.loggers[0], TensorBoardLogger | CSVLogger):
        profiler.dirpath = run_folder(trainer)


def run_name(config: Any, recipe: str | None = None) -> str:
    """The run's name when its logger names none: the recipe's (`recipe`), else from the data: its
    source's class (FSDD -> fsdd), else its data module's."""
    if recipe:
        return recipe
    data = config.get("data") or {}
    init = data.get("init_args") or {}
    source = (init.get("source") or init.get("dataset")) if hasattr(init, "get") else None
    class_path = (source or {}).get("class_path") if hasattr(source or {}, "get") else None
    class_path = class_path or data.get("class_path") or "run"
    name = class_path.rsplit(".", 1)[-1].removesuffix("DataModule") or "run"
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def entry() -> None:
    """The shell's entry point: a user's mistake ends in one `error:` line and exit status 2, a SIGTERM
    in 143 (project/errors.py)."""
    run_command(main)


if __name__ == "__main__":
    entry()
