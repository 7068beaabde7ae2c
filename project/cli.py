"""The command line: `python -m project.cli {fit,validate,test,predict} [--config configs/X.yaml] [--key value]`.

With no --config, configs/cifar10.yaml is loaded first, so `python -m project.cli fit` trains the
default CIFAR-10 CNN; every key can still be overridden on the command line.
"""

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from project import metrics
from project.classifier import Classifier

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
            }
        )

def main(args: list[str] | None = None, run: bool = True) -> CLI:
    return CLI(
        Classifier,
        L.LightningDataModule,
        subclass_mode_data=True,
        trainer_defaults={"callbacks": [LearningRateMonitor(logging_interval="step")]},
        parser_kwargs={cmd: {"default_config_files": [str(DEFAULT_CONFIG)]} for cmd in SUBCOMMANDS},
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
