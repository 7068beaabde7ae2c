"""Early stopping that watches what the checkpoints watch: "best" is the recipe's, in one place (engine/best.py)."""

from typing import Literal

import lightning as L
import torch
from lightning.pytorch import callbacks

from project.engine.best import monitored_checkpoint
from project.engine.errors import ConfigError


class EarlyStopping(callbacks.EarlyStopping):
    """Lightning's `EarlyStopping`, whose `monitor` and `mode` default to the checkpoint's (`checkpoint.monitor`,
    `checkpoint.mode` in the recipe), so that a recipe names its metric once.

    Args:
        monitor, mode: another metric to watch, and whether lower ("min") or higher ("max") is better.
        patience: validations without an improvement of more than `min_delta` before training stops.
        min_delta, verbose, strict, check_finite, stopping_threshold, divergence_threshold,
        check_on_train_epoch_end: as in Lightning's `EarlyStopping`.
    """

    def __init__(
        self,
        monitor: str | None = None,
        mode: Literal["min", "max"] | None = None,
        patience: int = 3,
        min_delta: float = 0.0,
        verbose: bool = False,
        strict: bool = True,
        check_finite: bool = True,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        check_on_train_epoch_end: bool | None = None,
    ):
        super().__init__(
            monitor=monitor or "",
            mode=mode or "min",
            patience=patience,
            min_delta=min_delta,
            verbose=verbose,
            strict=strict,
            check_finite=check_finite,
            stopping_threshold=stopping_threshold,
            divergence_threshold=divergence_threshold,
            check_on_train_epoch_end=check_on_train_epoch_end,
        )
        self._given = (monitor, mode)
        self._min_delta = abs(min_delta)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        monitor, mode = self._given
        if monitor is None or mode is None:
            checkpoint = monitored_checkpoint(trainer)
            if checkpoint is None:
                raise ConfigError(
                    "EarlyStopping has no metric to watch: give it `monitor` and `mode`, or set checkpoint.monitor "
                    "(the run's checkpoints watch none)"
                )
            self.monitor = monitor or checkpoint.monitor
            self.mode = mode or checkpoint.mode
            # what Lightning's __init__ derives from the mode, derived again for the one now known
            self.min_delta = self._min_delta if self.monitor_op == torch.gt else -self._min_delta
            self.best_score = torch.tensor(torch.inf if self.monitor_op == torch.lt else -torch.inf)
        super().setup(trainer, pl_module, stage)
