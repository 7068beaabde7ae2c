"""Stop a run at the first NaN/inf training loss, before any checkpoint stores the ruined weights."""

from typing import Any

import lightning as L
import torch

from project.errors import UserError
from project.internals import total_batch_index


class NonFiniteLossError(UserError, RuntimeError):
    """Training diverged; the message names the batch and the usual fixes (a user error: no traceback)."""


class FiniteLossGuard(L.Callback):
    """Stops training with a clear error once the training loss has been NaN or inf.

    Lightning's own options do not fit: `Trainer(detect_anomaly=True)` slows every backward pass
    several-fold, and `EarlyStopping(check_finite=True)` looks only at a monitored metric at
    validation time. Here each step adds a few tiny device ops (no host sync) that remember whether,
    and at which batch, the loss first went non-finite; the flag is read back only every
    `check_every_n_steps` batches and before any checkpoint is written, so no checkpoint ever holds
    weights trained on a NaN.

    Args:
        check_every_n_steps: batches between read-backs; by default the trainer's
            `log_every_n_steps`, when logging syncs anyway.
    """

    def __init__(self, check_every_n_steps: int | None = None):
        self.check_every_n_steps = check_every_n_steps
        self._first_bad: torch.Tensor | None = None  # (batch index, epoch) of the first bad loss; -1 if none

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_bad = torch.full((2,), -1, dtype=torch.int64, device=pl_module.device)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or self._first_bad is None:
            return
        batch_count = total_batch_index(trainer)
        first_time = ~torch.isfinite(loss.detach()).all() & (self._first_bad[0] < 0)
        # Python ints go into the kernel as arguments: no host-to-device copy, no sync
        self._first_bad = torch.stack(
            [
                torch.where(first_time, batch_count, self._first_bad[0]),
                torch.where(first_time, trainer.current_epoch, self._first_bad[1]),
            ]
        )
        every = self.check_every_n_steps or trainer.log_every_n_steps
        if (batch_count + 1) % every == 0:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._check(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, NonFiniteLossError):
            # Checkpoint callbacks run after this one; their save-on-exception would store the
            # ruined weights as last.ckpt over the last good state.
            for callback in trainer.checkpoint_callbacks:
                callback.save_on_exception = False

    def _check(self, trainer: L.Trainer) -> None:
        if self._first_bad is None:
            return
        batch, epoch = self._first_bad.tolist()  # the one host sync
        bad = batch >= 0
        if trainer.world_size > 1 and not trainer.interrupted:
            # All ranks stop together: one rank raising alone would leave the others waiting in a
            # collective. (Not while handling an interrupt, which may have reached one rank only.)
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        self._first_bad = None  # report once, even when a checkpoint save follows the error
        where = f"training batch {batch} (counted from 0 over the whole run; epoch {epoch})"
        raise NonFiniteLossError(
            f"The training loss became NaN or inf at {where if batch >= 0 else 'another rank'}, and training "
            f"was stopped at batch {total_batch_index(trainer)}. "
            "No checkpoint was written after the bad batch. Usual causes: a learning rate too high (lower "
            "--model.optimizer.init_args.lr or the scheduler's max_lr), fp16 overflow (use bf16-mixed or "
            "32-true precision), or NaN/inf in the inputs. Resume from the last checkpoint after the fix."
        )
