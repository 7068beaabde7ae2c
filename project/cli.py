"""The command line: `python -m project.cli {fit,validate,test,predict} [--config configs/X.yaml] [--key value]`.

With no --config, configs/cifar10.yaml is loaded first, so `python -m project.cli fit` trains the
default CIFAR-10 CNN; every key can still be overridden on the command line.
"""

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info

from project import metrics
from project.callbacks import (
    CheckpointFiles,
    FiniteLossGuard,
    FitTimeEstimate,
    PredictionCSV,
    ResumeLoaderPosition,
    RunSummary,
    StepSeededRandomness,
    plain_progress_when_not_a_terminal,
)
from project.checkpoints import AtomicCheckpointIO, check_checkpoint_path
from project.classifier import Classifier
from project.errors import ConfigError, run_command
from project.parser import ProjectArgumentParser
from project.runs import SaveRunConfig, claim_run_folders, with_run_config

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "cifar10.yaml"
SUBCOMMANDS = ("fit", "validate", "test", "predict")


class CLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The data decides how many classes there are; the network and metrics follow, so no YAML
        # repeats a number that must silently match.
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.net.init_args.num_classes", apply_on="instantiate")
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
            check_checkpoint_path(ckpt_path, trusted=not config["weights_only"])
        # The link from data.num_classes overwrites a net's num_classes without a word. Nets take it
        # without a default, so a value here was given by the user: remember it to report a
        # contradiction (see after_instantiate_classes).
        net = (config.get("model") or {}).get("net") or {}
        self._given_net_classes = (net.get("init_args") or {}).get("num_classes")

    def before_instantiate_classes(self) -> None:
        # The configs ask for bf16 autocast, which is what a GPU wants; on a CPU without bf16 units
        # it made the default CIFAR-10 config 18x slower (5 min vs 17 s for 8 steps, 2-core x86).
        # `accelerator: auto` means "the best this machine has", so it also picks the precision;
        # an explicit `--trainer.accelerator cpu` keeps whatever precision was asked for.
        trainer = (self.config[self.subcommand] if self.subcommand else self.config).trainer
        half = str(trainer.precision).startswith(("bf16", "16"))
        if half and trainer.accelerator == "auto" and not torch.cuda.is_available():
            rank_zero_info(
                f"No GPU: training in 32-true instead of trainer.precision={trainer.precision}, which is many "
                "times slower on most CPUs. Pass --trainer.accelerator cpu to keep the precision you asked for."
            )
            trainer.precision = "32-true"

    def after_instantiate_classes(self) -> None:
        given, found = getattr(self, "_given_net_classes", None), getattr(self.datamodule, "num_classes", None)
        if given is not None and found is not None and given != found:
            raise ConfigError(
                f"model.net.init_args.num_classes={given} contradicts the data, which has {found} classes "
                f"({type(self.datamodule).__name__}). The number of classes always comes from the data: "
                "remove model.net.init_args.num_classes from the config or command line."
            )

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # keep a user's own plugin
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        plain_progress_when_not_a_terminal(trainer)
        claim_run_folders(trainer)
        return trainer


def main(args: list[str] | None = None, run: bool = True, callbacks: Sequence[L.Callback] = ()) -> CLI:
    """Build the CLI (and run its subcommand unless `run=False`). `callbacks` join the CLI's own for this
    call only and stay out of the saved config.yaml: live objects such as the sweep's Optuna trial."""
    if args is None:  # from the shell; DDP re-launches other ranks with sys.argv, so edit it there
        sys.argv[1:] = with_run_config(sys.argv[1:])
    else:
        args = with_run_config(args)
    return CLI(
        Classifier,
        L.LightningDataModule,
        subclass_mode_data=True,
        trainer_defaults={
            "callbacks": [
                LearningRateMonitor(logging_interval="step"),
                RunSummary(),
                FitTimeEstimate(),
                FiniteLossGuard(),
                ResumeLoaderPosition(),
                StepSeededRandomness(),
                CheckpointFiles(),
                *callbacks,
            ]
        },
        parser_kwargs={cmd: {"default_config_files": [str(DEFAULT_CONFIG)]} for cmd in SUBCOMMANDS},
        parser_class=ProjectArgumentParser,
        save_config_callback=SaveRunConfig,
        args=args,
        run=run,
    )


def entry() -> None:
    """The shell's entry point: a user's mistake ends in one `error:` line and exit status 2, a SIGTERM
    in 143 (project/errors.py)."""
    run_command(main)


if __name__ == "__main__":
    entry()
