"""Progress a person can read wherever the output goes, and an early word on how long the fit will take.

Lightning's rich bar, sent to a file (CI, SLURM, `nohup`), prints nothing for minutes, then `0.00it/s`: off a
terminal plain lines (`LineProgress`), in one a rich bar that keeps to its own lines (`TerminalProgress`).
"""

import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelSummary, ProgressBar, RichModelSummary, RichProgressBar
from lightning.pytorch.trainer.states import TrainerFn

from project.engine.callbacks.model_summary import BriefModelSummary
from project.engine.errors import ConfigError
from project.engine.internals import stop_rich_bar


def format_duration(seconds: float) -> str:
    """`1:02:03` for an hour and a bit; `?` when it cannot be known yet."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    return str(timedelta(seconds=round(seconds)))


class LineProgress(ProgressBar):
    """One plain line every `every_n_seconds` while training (the loss read back from the device only then), one
    per validation of a fit with its metrics. Epochs from 0, as the checkpoints'."""

    def __init__(self, every_n_seconds: float = 30.0):
        super().__init__()
        if every_n_seconds <= 0:
            raise ConfigError(f"every_n_seconds must be positive, got {every_n_seconds}.")
        self.every_n_seconds = every_n_seconds
        self._enabled = True
        self._start = self._last_print = 0.0
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
        # a fit's validations; an evaluation's metrics are printed once, by the run summary
        if self._enabled and not trainer.sanity_checking and trainer.state.fn == TrainerFn.FITTING:
            self.print(f"epoch {trainer.current_epoch} validation: {self._metrics(trainer, prefix='val')}")

    def _train_line(self, trainer: L.Trainer, now: float, batch_idx: int) -> str:
        steps = trainer.global_step - self._start_step
        rate = steps / max(now - self._start, 1e-9)
        total = trainer.estimated_stepping_batches
        left = (total - trainer.global_step) / rate if rate > 0 and math.isfinite(total) else math.inf
        # numbered as the bar and the checkpoint names: from 0, out of the last epoch's number
        epochs = f"/{trainer.max_epochs - 1}" if trainer.max_epochs not in (None, -1) else ""
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


class TerminalProgress(RichProgressBar):
    """Lightning's rich bar, showing the run's version as an integer and ending its live display when training
    ends, so the run summary is the last thing on the screen."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        log_above_the_bar()

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        if "v_num" in items:
            # Lightning shows a number as a float (`4.000`) and a named version's last 4 characters
            # (`on_0` for a resumed `version_0`): the run's own name for it instead
            version = trainer.loggers[0].version if trainer.loggers else items["v_num"]
            items["v_num"] = str(version).removeprefix("version_")
        return items

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # Lightning logs "`Trainer.fit` stopped: ..." right after the last epoch, past the live bar's
        # line: end the bar first so that message starts a line of its own
        last_epoch = trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs
        last_step = trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps
        if last_epoch or last_step or trainer.should_stop:
            stop_rich_bar(self)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stop_rich_bar(self)


class _CurrentStderr:
    """Whatever `sys.stderr` is when written to: during a rich bar, its proxy that prints above the bar."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def log_above_the_bar() -> None:
    """Make Lightning's log handler (which also prints the project's notices, such as Ctrl-C's) write to the
    current `sys.stderr`: rich's live bar swaps in a proxy that prints above the bar, but the handler kept the
    stream it found at import, so a notice was written onto the bar's line and wrapped with it. Idempotent."""
    for handler in logging.getLogger("lightning.pytorch").handlers:
        stream = getattr(handler, "stream", None)
        if type(handler) is logging.StreamHandler and stream in (sys.__stderr__, sys.stderr):
            handler.setStream(_CurrentStderr())


def readable_progress(trainer: L.Trainer) -> None:
    """Swap Lightning's default rich bar for `TerminalProgress` in a terminal and `LineProgress` off one, and its
    default model table for `BriefModelSummary`'s one line."""
    bar = trainer.progress_bar_callback
    if type(bar) is RichProgressBar:
        trainer.callbacks[trainer.callbacks.index(bar)] = TerminalProgress() if sys.stdout.isatty() else LineProgress()
    for i, callback in enumerate(trainer.callbacks):
        if type(callback) in (ModelSummary, RichModelSummary):  # Lightning's default; a configured one stays
            trainer.callbacks[i] = BriefModelSummary()


class FitTimeEstimate(L.Callback):
    """After the first `after_steps` training steps, print how long the whole fit will take here.

    The first step (allocation, autotuning, compilation) is left out; the clock is read twice a fit, each after
    a device synchronisation.

    Args:
        after_steps: steps measured before the estimate is printed.
        warn_above_minutes: when the estimate is longer and no GPU is in use, say how to shorten it.
        short_preset: the preset that sizes a recipe for a CPU, named in the hint; None where there is none.
        presets: the presets this run stacks (the CLI passes them): a run on `short_preset` is not told to use it.
    """

    def __init__(
        self,
        after_steps: int = 5,
        warn_above_minutes: float = 15.0,
        short_preset: str | None = "quick",
        presets: Sequence[str] = (),
    ):
        if after_steps < 1:
            raise ConfigError(f"after_steps must be at least 1, got {after_steps}.")
        self.after_steps = after_steps
        self.warn_above_minutes = warn_above_minutes
        self.short_preset = short_preset
        self.presets = list(presets)
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
        if trainer.is_global_zero:
            on_cpu = trainer.strategy.root_device.type == "cpu"
            for line in self.report(on_cpu, per_step, remaining, resumed=trainer.ckpt_path is not None):
                print_beside_bar(trainer, line)

    def report(self, on_cpu: bool, per_step: float, remaining: float, resumed: bool = False) -> list[str]:
        if not math.isfinite(self.estimate_s):
            return [f"Training runs at {per_step:.3f} s a step; the run has no fixed length to estimate."]
        lines = [
            f"Expected training time left on this machine: {format_duration(self.estimate_s)} "
            f"({remaining:.0f} steps at {per_step:.3f} s a step; validation comes on top)."
        ]
        if not on_cpu or self.estimate_s <= 60 * self.warn_above_minutes:
            return lines
        busy = machine_load()
        if busy is not None:
            lines.append(
                f"This machine is busy (load {busy[0]:.1f} on {busy[1]} cores): other programs are taking the CPU, "
                "so this run is slower than it would be on an idle machine."
            )
        if resumed or (self.short_preset is not None and self.short_preset in self.presets):
            # already the CPU-sized run, or a resume, which keeps its run's recipe: no shorter one to point to
            return lines
        short = (
            f"--preset {self.short_preset} (the recipe sized for a CPU)"
            if self.short_preset
            else "--trainer.max_epochs 2 --trainer.limit_train_batches 50"
        )
        lines.append(
            f"This recipe is sized for a GPU. For a run of minutes on this CPU, stop it (Ctrl-C) and add {short}."
        )
        return lines

    @staticmethod
    def _now(pl_module: L.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # twice a fit: the step kernels run asynchronously
        return time.monotonic()


def machine_load(busy_above: float = 1.5) -> tuple[float, int] | None:
    """(load average, cores) when other work crowds the CPU, else None: a fit itself keeps about one run-queue
    entry per core busy, so only a load well above the cores says so."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None
    cores = os.cpu_count() or 1
    return (load, cores) if load > busy_above * cores else None


def print_beside_bar(trainer: L.Trainer, line: str) -> None:
    """A line of its own above a progress bar drawn in place, a plain line otherwise."""
    bar = trainer.progress_bar_callback
    if bar is not None and bar.is_enabled:
        bar.print(line)
    else:
        print(line)
