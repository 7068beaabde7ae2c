"""Optimizers and schedules for any task, chosen in YAML (`OptimizerCallable`, `LRSchedulerCallable`): a schedule
shaped by the run's length (OneCycleLR) gets that length and is stepped every batch; any other, every epoch.
A task's `configure_optimizers` is one call to `configure`."""

import inspect
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch.optim.lr_scheduler import LRScheduler

from project.engine.errors import ConfigError

LR = "train/lr"  # the scheduled learning rate (LearningRateMonitor), beside the loss rather than above it


def configure(
    module: L.LightningModule, optimizer: OptimizerCallable | None, scheduler: LRSchedulerCallable | None
) -> Any:
    """What `configure_optimizers` returns for `module`'s parameters: `optimizer` (None: AdamW at its defaults)
    and the optional `scheduler`, laid over the run when it takes a `total_steps` left unset."""
    try:
        built = (optimizer or torch.optim.AdamW)(module.parameters())
    except ValueError as err:  # torch checks the hyperparameters: `Invalid momentum value: -1.0`
        raise ConfigError(f"model.optimizer refused its arguments: {err}") from err
    if scheduler is None:
        return built
    if needs_total_steps(scheduler):  # stepped every batch over the run's length
        schedule, interval = scheduler_over_the_run(scheduler, built, module.trainer), "step"
    else:
        schedule, interval = scheduler(built), "epoch"
    return {"optimizer": built, "lr_scheduler": {"scheduler": schedule, "interval": interval, "name": LR}}


def needs_total_steps(scheduler: LRSchedulerCallable) -> bool:
    """True for a schedule shaped by the run's length (OneCycleLR) whose length was left unset."""
    given = getattr(scheduler, "keywords", {})  # the arguments jsonargparse (or functools.partial) bound
    if "total_steps" in given:
        return given["total_steps"] is None
    param = inspect.signature(scheduler).parameters.get("total_steps")
    return param is not None and param.default is None


def scheduler_over_the_run(
    scheduler: LRSchedulerCallable, optimizer: torch.optim.Optimizer, trainer: L.Trainer
) -> LRScheduler:
    """The scheduler given the run's length in steps, with an error saying what to change if the run is
    too short for it (OneCycleLR fails with ZeroDivisionError or its own ValueError)."""
    total = trainer.estimated_stepping_batches
    if total < 1:
        batch_size = getattr(trainer.datamodule, "hparams", {}).get("batch_size")
        raise ConfigError(
            "model.scheduler needs the run's length, but this fit has no training steps "
            f"(trainer.limit_train_batches={trainer.limit_train_batches}, max_epochs={trainer.max_epochs}, "
            f"max_steps={trainer.max_steps}, data.batch_size={batch_size}). A batch size larger than the "
            "training set gives no full batch: lower it, or raise the number of epochs, steps or batches."
        )
    try:
        return scheduler(optimizer, total_steps=int(total))
    except (ZeroDivisionError, ValueError) as err:
        raise ConfigError(
            f"model.scheduler cannot be laid over this run's {int(total)} training steps ({type(err).__name__}: "
            f"{err}). Train for more steps (trainer.max_epochs, max_steps, limit_train_batches), or "
            "change the schedule's init_args (e.g. a pct_start that gives the warm-up at least 2 steps)."
        ) from err


def check_resumed_schedule(trainer: L.Trainer) -> None:
    """A resumed one-cycle schedule keeps the length it was built with; a longer run would fail when it
    runs past that length, perhaps hours in. Refuse before the first step instead."""
    total = trainer.estimated_stepping_batches
    for config in trainer.lr_scheduler_configs:
        length = getattr(config.scheduler, "total_steps", None)
        if config.interval == "step" and isinstance(length, int) and length < total:
            raise ConfigError(
                f"This run has {int(total)} training steps, but the {type(config.scheduler).__name__} "
                f"schedule resumed from {trainer.ckpt_path} spans {length}: a one-cycle schedule "
                "cannot be stretched. Resume with the trainer.max_epochs/max_steps of the original "
                "run, or start a new fit (without --ckpt_path) for a longer schedule."
            )
