"""Interrupts stop a fit between two steps, so the checkpoint they leave is one step's whole state."""

import signal
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from project.engine import signals


class StopBetweenSteps(L.Callback):
    """Makes every interrupt of a fit save one step's state, or nothing.

    - SIGINT (Ctrl-C) and SIGTERM stop after the step in progress (`project.engine.signals`); before the first
      training step and after the last, at once.
    - SLURM's requeue signal (SIGUSR1) is held until the step has ended, then Lightning's SLURM plugin saves
      `hpc_ckpt_N.ckpt` and requeues: mid-step, it saved one step's weights with the next one's loader position.
    - A fit stopped before its first step saves no checkpoint (nothing was trained), so it is not reported as an
      interrupted run; nor does a second signal, which stops mid-step.
    """

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._requeue_handler: Any = None
        self._requeue_pending: int | None = None
        self._first_step: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._first_step = None
        # Before Lightning registers its own SIGTERM handler, which calls the one it finds (this one) too
        if stage == "fit" and not self._previous and signals.main_thread():
            self._previous = signals.install()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_step = trainer.global_step
        signals.training_steps(trainer)
        requeue = signal.getsignal(signal.SIGUSR1)
        if callable(requeue) and signals.main_thread():  # Lightning's SLURM plugin registered it just before
            self._requeue_handler = requeue
            signal.signal(signal.SIGUSR1, self._hold_requeue)

    def _hold_requeue(self, signum: int, frame: Any) -> None:
        self._requeue_pending = signum

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self._requeue_pending is not None and self._requeue_handler is not None:
            signum, self._requeue_pending = self._requeue_pending, None
            self._requeue_handler(signum, None)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end_of_steps()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._end_of_steps()
        untrained = self._first_step is None or trainer.global_step == self._first_step
        if untrained or isinstance(exception, signals.Stopped):
            # Checkpoint callbacks run after this one (Lightning puts them last)
            for callback in trainer.checkpoint_callbacks:
                if getattr(callback, "save_on_exception", False):
                    callback.save_on_exception = False
                    if not untrained:
                        rank_zero_info(
                            f"Stopped in the middle of a step: {callback.last_model_path or 'nothing'} "
                            "is the last checkpoint saved"
                        )

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._end_of_steps()
        if self._previous:
            signals.restore(self._previous)
            self._previous = {}

    def _end_of_steps(self) -> None:
        signals.training_steps(None)
        if self._requeue_handler is not None and signals.main_thread():
            signal.signal(signal.SIGUSR1, self._requeue_handler)
            self._requeue_handler = None
