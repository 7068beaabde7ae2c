"""What `Classifier` tells a user whose network, checkpoint or schedule does not fit the data or the run:
each check turns a torch or Lightning failure deep in a fit into one line naming the setting to change."""

import inspect
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler

from project.engine.errors import CheckpointError, ConfigError
from project.engine.sizes import SizeMismatchError

Inputs = Tensor | tuple[Tensor, ...]


def shapes(x: Inputs) -> str:
    """The inputs' shapes with the batch size left out, e.g. "(B, 3, 32, 32)" or "(B, T), (B,)"."""
    tensors = x if isinstance(x, tuple | list) else (x,)
    return ", ".join(
        "(" + ", ".join(["B", *map(str, t.shape[1:])]) + ("," if t.dim() == 1 else "") + ")"
        if isinstance(t, Tensor) and t.dim() > 0
        else type(t).__name__
        for t in tensors
    )


def misfit_error(
    err: Exception, net: nn.Module, built_with: dict | None, x: Inputs, ckpt_path: str | None, trained_on: str | None
) -> Exception | None:
    """The error for a net that failed on its first batch because it was made for other data, or None
    when the failure is a bug (to be raised as it is)."""
    if isinstance(err, torch.OutOfMemoryError):
        return None
    if ckpt_path is None:
        if not _is_shape_error(err):
            return None
        return SizeMismatchError(
            f"model.net ({type(net).__name__}"
            + (f", built with {_size_args(built_with)}" if built_with else "")
            + f") does not fit the data's inputs of shape {shapes(x)}: {err}. Give the net the data's sizes "
            "(name its constructor arguments like the data module's `sizes`, project/engine/sizes.py) or fix "
            "model.net.init_args."
        )
    trained = f" (it was trained on inputs of shape {trained_on})" if trained_on else ""
    return CheckpointError(
        f"The checkpoint's network does not fit this data: {ckpt_path} holds a "
        f"{type(net).__name__}{trained}, which fails on this data's inputs of shape "
        f"{shapes(x)}: {err}. Evaluate a checkpoint with the data it was trained on (without "
        "--config, the run's own config.yaml is used)."
    )


def _is_shape_error(err: Exception) -> bool:
    """An error torch raises for a tensor of the wrong shape (a net made for other inputs), not a bug."""
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        s in text for s in ("shapes cannot be multiplied", "size mismatch", "Expected", "channels", "must match")
    )


def _size_args(init_args: dict[str, Any]) -> str:
    """The net's arguments that set a size, e.g. "in_features=16"."""
    shown = {k: v for k, v in init_args.items() if isinstance(v, int) and not isinstance(v, bool)}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "its defaults"


def check_state_fits(own: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Refuse a checkpoint whose tensors do not fit the model the config built."""
    wrong = [f"{k}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in theirs.items()
             if k in own and hasattr(v, "shape") and v.shape != own[k].shape]  # fmt: skip
    missing = [k for k in own if k not in theirs]
    if wrong or missing:
        raise CheckpointError(
            "The checkpoint's network does not fit the model built from the config: "
            + "; ".join(wrong[:3] + [f"{k}: missing from the checkpoint" for k in missing[:3]])
            + ". Use the config of the run that wrote the checkpoint (without --config, the run folder's "
            "config.yaml is used), without overrides of model.net."
        )


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
