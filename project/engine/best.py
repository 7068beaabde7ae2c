"""What "best" means for a run: the recipe's checkpoint monitor and mode (`checkpoint.monitor`, `checkpoint.mode`;
configs/base.yaml's neutral default is `val/loss`, min). The run summary, the best value in TensorBoard, early
stopping, the sweep's objective and direction, and the NaN guard's choice of checkpoint all read it here."""

from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


def monitored_checkpoint(trainer: L.Trainer) -> ModelCheckpoint | None:
    """The checkpoint callback that keeps the best run by a metric (the CLI's `checkpoint`), or None."""
    return next((cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor), None)


def of_config(config: Mapping[str, Any]) -> tuple[str, str]:
    """(monitor, mode) of a parsed config (a dict): its `checkpoint` section's."""
    checkpoint = config.get("checkpoint") or {}
    return str(checkpoint.get("monitor") or "val/loss"), str(checkpoint.get("mode") or "min")


def best_name(monitor: str) -> str:
    """The name a run's best monitored value is logged under, beside the metric: `val/acc` -> `val/best_acc`."""
    head, _, leaf = monitor.rpartition("/")
    return f"{head}/best_{leaf}" if head else f"best_{leaf}"


def better(mode: str) -> Callable[[float, float], float]:
    """The better of two values under `mode` ("max" or "min")."""
    return max if mode == "max" else min


def direction(mode: str) -> str:
    """Optuna's word for `mode`."""
    return "maximize" if mode == "max" else "minimize"
