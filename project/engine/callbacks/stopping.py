"""Interrupts stop a fit between two steps, on every rank after the same one, so the checkpoint they leave is one
step's whole state; a fit stopped by an error says what its checkpoint holds."""

import shlex
import signal
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from project.engine import internals, signals
from project.engine.callbacks.agreement import StopAgreement


class StopBetweenSteps(L.Callback):
    """Makes every interrupt of a fit save one step's state, or say what it saved.

    - SIGINT (Ctrl-C) and SIGTERM, to one process or to all, stop every rank after the same step
      (`StopAgreement`): the signal is recorded (`project.engine.signals`), the ranks agree at the end of each
      optimizer step, and all raise Lightning's SIGTERMException there; a step followed by validation stops
      once that validation is done. Before the first training step and after the last, at once.
    - SLURM's requeue signal (SIGUSR1) is agreed on alike; then Lightning's SLURM plugin saves
      `hpc_ckpt_N.ckpt` and requeues on every rank at that step, and the fit stops there.
    - The checkpoint is saved here (for every checkpoint callback with `save_on_exception`), and one line
      says which file holds the stopped step and how to resume it, also when it was saved at that step before.
    - An error in the middle of a step (one process): the batch in progress was handed out but not trained,
      so the training loader is moved back one batch (`rewind`) before the save, and the checkpoint is exact.
      Where that cannot be done, the line says what the checkpoint holds and what resuming from it means.
      Under DDP nothing is saved after an error: the other ranks may be in the middle of a step, and a save
      is a collective.
    - A fit stopped before its first step saves nothing (nothing was trained), nor does a second Ctrl-C,
      which stops mid-step.
    """

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._requeue_handler: Any = None
        self._first_step: int | None = None
        self._agreement: StopAgreement | None = None
        self._in_step = False  # between on_train_batch_start and on_train_batch_end
        self._step_at_start = 0  # global_step when the batch in progress started
        self._marked_step: int | None = None  # the step the training loaders' marks belong to
        self._stopping = False  # every rank agreed to stop after this step
        self._after_validation = False  # ... once the validation running now is done

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._first_step = None
        if stage != "fit":
            return
        # Before Lightning registers its own SIGTERM handler, which calls the one it finds (this one) too
        if not self._previous and signals.main_thread():
            self._previous = signals.install()
        internals.own_stop_signals(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_step = trainer.global_step
        self._in_step = self._stopping = self._after_validation = False
        self._marked_step = None
        self._agreement = StopAgreement(trainer)
        signals.training_steps(True, trainer if trainer.world_size == 1 else None)
        requeue = signal.getsignal(signal.SIGUSR1)
        if callable(requeue) and signals.main_thread():  # Lightning's SLURM plugin registered it just before
            self._requeue_handler = requeue
            signal.signal(signal.SIGUSR1, signals.hold_requeue)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, i: int) -> None:
        self._in_step = True
        self._step_at_start = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int):
        self._in_step = False
        if trainer.global_step == self._step_at_start:
            return  # accumulating gradients, which no checkpoint holds: stop only after the optimizer step
        self._marked_step = trainer.global_step if _mark(trainer) else None
        if self._agreement is not None and not self._stopping:
            self._act(trainer, self._agreement.after_step(*signals.pending()))

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The evaluation loop would stop after its first batch: the epoch's validation (and the checkpoint
        # that follows it) would be cut short, and a resume would validate a part of it again
        if not trainer.sanity_checking and internals.stop_requested(trainer):
            internals.cancel_stop_request(trainer)
            self._after_validation = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._agreement is None:
            return
        if self._after_validation:
            self._after_validation = False
            internals.request_stop_after_this_step(trainer)
        elif not self._stopping and not internals.stop_requested(trainer):
            self._act(trainer, self._agreement.now(*signals.pending()))

    def _act(self, trainer: L.Trainer, decision: tuple[int, bool]) -> None:
        signum, requeue = decision
        if not signum and not requeue:
            return
        self._stopping = True
        signals.agreed(signum or signal.SIGUSR1)
        if requeue and self._requeue_handler is not None:
            self._requeue_handler(signal.SIGUSR1, None)  # saves hpc_ckpt_N.ckpt (on every rank) and requeues
        internals.request_stop_after_this_step(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._agreement is not None:
            self._agreement.close()
            self._agreement = None
        self._end_of_steps()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._end_of_steps()
        if self._agreement is not None:
            self._agreement.abandon()  # another rank may be gone: wait for nothing
            self._agreement = None
        savers = [c for c in trainer.checkpoint_callbacks if getattr(c, "save_on_exception", False)]
        if not savers:
            return
        try:
            self._save_or_say(trainer, savers, exception)
        finally:
            for callback in savers:  # saved here, or not at all: Lightning's own save runs after this hook
                callback.save_on_exception = False

    def _save_or_say(self, trainer: L.Trainer, savers: list[Any], exception: BaseException) -> None:
        untrained = self._first_step is None or trainer.global_step == self._first_step
        if untrained:
            return
        if isinstance(exception, signals.Stopped):
            latest = self._latest(savers) or "nothing"
            rank_zero_info(f"Stopped in the middle of a step: {latest} is the last checkpoint saved")
            return
        why = self._why(exception)
        if trainer.world_size > 1 and not self._stopping:
            rank_zero_info(
                f"Interrupted ({why}) with {trainer.world_size} processes: nothing was saved (another may be in the "
                f"middle of a step, and a save needs them all); {self._latest(savers) or 'nothing'} is the last "
                "checkpoint saved"
            )
            return
        step = trainer.global_step + 1
        rewound = _rewind(trainer) if self._marked_step == trainer.global_step else None
        if rewound is not None:
            # the loaders are back where the last step left them: a batch handed out since is trained on resume
            internals.forget_batch_in_progress(trainer)
            again = f"{why}, in the middle of step {step}, which a resume runs again"
            self._save(trainer, savers, again if rewound or self._in_step else why, exact=True)
        elif not self._in_step:  # between two steps, and loaders that cannot tell: the last step's state
            self._save(trainer, savers, why, exact=True)
        else:
            self._save(trainer, savers, f"{why}, in the middle of step {step}", exact=False)

    @staticmethod
    def _why(exception: BaseException) -> str:
        if isinstance(exception, SIGTERMException):
            return f"stopped by {signals.signal_name(signals.stop_signal())}"
        message = str(exception).strip().splitlines()
        return f"{type(exception).__name__}: {message[0]}" if message else type(exception).__name__

    @staticmethod
    def _latest(savers: list[Any]) -> str:
        return next((p for c in savers if (p := c.best_model_path or c.last_model_path)), "")

    def _save(self, trainer: L.Trainer, savers: list[Any], why: str, exact: bool) -> None:
        paths = [internals.save_on_exception_now(callback, trainer) for callback in savers]
        path = next((p for p in paths if p), None)
        if path is None:
            return
        if exact:  # the resume a command to copy, on a line of its own
            resume = shlex.join(["python", "-m", "project.cli", "fit", "--ckpt_path", path])
            rank_zero_info(f"Interrupted ({why}); saved {path}. Resume it with:\n  {resume}")
            return
        rank_zero_info(
            f"Interrupted ({why}); saved {path}, which holds the weights of step {trainer.global_step} with the "
            "data position after the batch in progress: resuming from it (--ckpt_path) goes on without training "
            "that batch, so the run will not be the one an uninterrupted fit makes"
        )

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._end_of_steps()
        if self._previous:
            signals.restore(self._previous)
            self._previous = {}

    def _end_of_steps(self) -> None:
        signals.training_steps(False)
        if self._requeue_handler is not None and signals.main_thread():
            signal.signal(signal.SIGUSR1, self._requeue_handler)
            self._requeue_handler = None


def _train_loaders(trainer: L.Trainer) -> list[Any]:
    loaders = trainer.train_dataloader
    loaders = list(loaders.values()) if isinstance(loaders, dict) else loaders
    return list(loaders) if isinstance(loaders, list | tuple) else [loaders] if loaders is not None else []


def _mark(trainer: L.Trainer) -> bool:
    """Make every training loader remember where it stands (`mark_trained`: all it handed out is trained); False
    when one cannot (it has no `mark_trained`). A few microseconds a step."""
    loaders = _train_loaders(trainer)
    if not loaders or not all(callable(getattr(loader, "mark_trained", None)) for loader in loaders):
        return False
    for loader in loaders:
        loader.mark_trained()
    return True


def _rewind(trainer: L.Trainer) -> bool | None:
    """Move every training loader back to its mark (`rewind_to_trained`), so that a checkpoint holds the position
    of the batches trained, not of those handed out since; whether one moved, or None when one cannot."""
    loaders = _train_loaders(trainer)
    if not loaders or not all(callable(getattr(loader, "rewind_to_trained", None)) for loader in loaders):
        return None
    return any([bool(loader.rewind_to_trained()) for loader in loaders])
