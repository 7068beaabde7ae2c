"""Progress a person can read wherever the output goes, and an early word on how long the fit will take.

Lightning's default bar (rich) redraws one terminal line in place. Sent to a file (CI, SLURM, `nohup`),
it prints nothing for minutes and then `0.00it/s`. `LineProgress` prints plain lines instead, and
`plain_progress_when_not_a_terminal` puts it in place of the default bar when stdout is not a terminal.
"""

import math
import sys
import time
from datetime import timedelta
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.utilities import rank_zero_info

from project.errors import ConfigError


def format_duration(seconds: float) -> str:
    """`1:02:03` for an hour and a bit; `?` when it cannot be known yet."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    return str(timedelta(seconds=round(seconds)))


class LineProgress(ProgressBar):
    """One plain line every `every_n_seconds` while training (epoch, step, loss, it/s, ETA), one per
    validation with its metrics, and one at the end of each evaluation command.

    The loss is read back from the device only when a line is printed, never per step.

    Args:
        every_n_seconds: time between two training lines.
    """

    def __init__(self, every_n_seconds: float = 30.0):
        super().__init__()
        if every_n_seconds <= 0:
            raise ConfigError(f"every_n_seconds must be positive, got {every_n_seconds}.")
        self.every_n_seconds = every_n_seconds
        self._enabled = True
        self._start = 0.0
        self._last_print = 0.0
        self._start_step = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._last_print = time.monotonic()
        self._start_step = trainer.global_step  # a resumed run's rate counts from where it resumed

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        if not self._enabled or now - self._last_print < self.every_n_seconds:
            return
        self._last_print = now
        self.print(self._train_line(trainer, now, batch_idx))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled and not trainer.sanity_checking:
            self.print(f"epoch {trainer.current_epoch} validation: {self._metrics(trainer, prefix='val')}")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled:
            self.print(f"test: {self._metrics(trainer, prefix='test')}")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled:
            # summed here: `total_predict_batches_current_dataloader` needs the index that only a bar
            # tracking each batch sets, and asserts without it
            self.print(f"predict: {sum(trainer.num_predict_batches)} batches")

    def _train_line(self, trainer: L.Trainer, now: float, batch_idx: int) -> str:
        steps = trainer.global_step - self._start_step
        rate = steps / max(now - self._start, 1e-9)
        total = trainer.estimated_stepping_batches
        left = (total - trainer.global_step) / rate if rate > 0 and math.isfinite(total) else math.inf
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs not in (None, -1) else ""
        batches = self.total_train_batches
        of_batches = f"/{batches}" if isinstance(batches, int) or math.isfinite(batches) else ""
        return (
            f"epoch {trainer.current_epoch}{epochs} batch {batch_idx + 1}{of_batches} step {trainer.global_step}"
            f" | {self._metrics(trainer, prefix='train')} | {rate:.2f} it/s | ETA {format_duration(left)}"
        )

    @staticmethod
    def _metrics(trainer: L.Trainer, prefix: str) -> str:
        # Every logged metric, not only the prog_bar ones: a line has room. Reading them is the one
        # host sync, once a line.
        shown = {k: v for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}
        if prefix == "train":
            # the step value of a metric logged both per step and per epoch
            shown = {k.removesuffix("_step"): v for k, v in shown.items() if not k.endswith("_epoch")}
        return ", ".join(f"{k} {float(v):.4g}" for k, v in sorted(shown.items()))


def plain_progress_when_not_a_terminal(trainer: L.Trainer) -> None:
    """Swap Lightning's rich bar for `LineProgress` when stdout is not a terminal.

    A bar the user chose otherwise (TQDM, or their own) is left alone.
    """
    bar = trainer.progress_bar_callback
    if type(bar) is RichProgressBar and not sys.stdout.isatty():
        trainer.callbacks[trainer.callbacks.index(bar)] = LineProgress()


class FitTimeEstimate(L.Callback):
    """After the first `after_steps` training steps, print how long the whole fit will take here.

    The first step is left out of the measure (it pays for allocation, autotuning and compilation).
    The clock is read twice in a fit, after a device synchronisation each time, so the measure is
    true on a GPU too and costs nothing per step.

    Args:
        after_steps: steps measured before the estimate is printed.
        warn_above_minutes: when the estimate is longer and no GPU is in use, say how to shorten it.
    """

    def __init__(self, after_steps: int = 5, warn_above_minutes: float = 15.0):
        if after_steps < 1:
            raise ConfigError(f"after_steps must be at least 1, got {after_steps}.")
        self.after_steps = after_steps
        self.warn_above_minutes = warn_above_minutes
        self.estimate_s: float | None = None
        self._first_step: int | None = None
        self._clock = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.estimate_s, self._first_step = None, None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.estimate_s is not None:
            return
        if self._first_step is None:
            self._first_step, self._clock = trainer.global_step, self._now(pl_module)
            return
        measured = trainer.global_step - self._first_step
        if measured < self.after_steps:
            return
        per_step = (self._now(pl_module) - self._clock) / measured
        remaining = trainer.estimated_stepping_batches - trainer.global_step
        self.estimate_s = per_step * remaining if math.isfinite(remaining) else math.inf
        self._report(trainer, per_step, remaining)

    def _report(self, trainer: L.Trainer, per_step: float, remaining: float) -> None:
        if not math.isfinite(self.estimate_s):
            rank_zero_info(f"Training runs at {per_step:.3f} s a step; the run has no fixed length to estimate.")
            return
        rank_zero_info(
            f"Expected training time left on this machine: {format_duration(self.estimate_s)} "
            f"({remaining:.0f} steps at {per_step:.3f} s a step; validation comes on top)."
        )
        on_cpu = trainer.strategy.root_device.type == "cpu"
        if on_cpu and self.estimate_s > 60 * self.warn_above_minutes:
            rank_zero_info(
                "This recipe is sized for a GPU. To see it work on this CPU in minutes, stop it (Ctrl-C) and run "
                "fewer epochs or a smaller net, e.g. --trainer.max_epochs 2 --trainer.limit_train_batches 50."
            )

    @staticmethod
    def _now(pl_module: L.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # twice a fit: the step kernels run asynchronously
        return time.monotonic()
