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
        # Always-on checkpointing of the best epoch and the last one; `--checkpoint.*` overrides.
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": metrics.MONITOR,
                "checkpoint.mode": metrics.MONITOR_MODE,
                "checkpoint.save_last": True,
                # No metric in the name: "val/acc" would make a sub-folder
                "checkpoint.filename": "best-epoch{epoch:03d}-step{step}",
                "checkpoint.auto_insert_metric_name": False,
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
