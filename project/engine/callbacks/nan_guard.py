"""Stop a run at the first NaN/inf training loss, before any checkpoint stores the ruined weights."""

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from project.engine.errors import UserError
from project.engine.internals import total_batch_index

DIVERGED = 1e6  # weights this large have run away (trained weights are rarely beyond 1e2)


class NonFiniteLossError(UserError, RuntimeError):
    """Training diverged; the message names the batch and the usual fixes (a user error: no traceback)."""


class FiniteLossGuard(L.Callback):
    """Stops training with a clear error once the training loss has been NaN or inf.

    `detect_anomaly=True` slows every backward several-fold; `EarlyStopping(check_finite=True)` sees only a
    monitored metric. Here each step adds one device op (no host sync), whose flag is kept with the step's batch
    index; the flags are read back together every `check_every_n_steps` batches and before any checkpoint: none
    holds NaN-trained weights.

    Args:
        check_every_n_steps: batches between read-backs; by default the trainer's `log_every_n_steps`,
            when logging syncs anyway.
    """

    def __init__(self, check_every_n_steps: int | None = None):
        self.check_every_n_steps = check_every_n_steps
        self._finite: list[torch.Tensor] | None = None  # a 0-d bool a batch since the last read-back
        self._where: list[tuple[int, int]] = []  # (batch index, epoch) of each flag

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finite, self._where = [], []

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or self._finite is None:
            return
        batch_count = total_batch_index(trainer)
        finite = torch.isfinite(loss)  # a bool: not recorded by autograd, so no detach
        self._finite.append(finite if finite.ndim == 0 else finite.all())
        self._where.append((batch_count, trainer.current_epoch))
        every = self.check_every_n_steps or trainer.log_every_n_steps
        if (batch_count + 1) % every == 0:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._check(trainer)
        # Weights can run away for many steps while the loss stays finite (1e30 is finite): remember how
        # large the saved ones were, for the message that names the checkpoint to start again from.
        # One host sync per checkpoint, which writes to disk anyway.
        scales = [p.detach().abs().max() for p in pl_module.parameters() if p.numel()]
        self._saved_scale = (trainer.global_step, float(torch.stack(scales).max())) if scales else None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, NonFiniteLossError):
            # Checkpoint callbacks run after this one; their save-on-exception would store the
            # ruined weights as last.ckpt over the last good state.
            for callback in trainer.checkpoint_callbacks:
                callback.save_on_exception = False

    def _check(self, trainer: L.Trainer) -> None:
        if self._finite is None:
            return
        flags = torch.stack(self._finite).tolist() if self._finite else []  # the one host sync
        first = next((i for i, finite in enumerate(flags) if not finite), None)
        batch, epoch = self._where[first] if first is not None else (-1, -1)
        self._finite, self._where = [], []
        bad = first is not None
        if trainer.world_size > 1 and not trainer.interrupted:
            # All ranks stop together: one rank raising alone would leave the others waiting in a
            # collective. (Not while handling an interrupt, which may have reached one rank only.)
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        self._finite = None  # report once, even when a checkpoint save follows the error
        where = f"training batch {batch} (counted from 0 over the whole run; epoch {epoch})"
        raise NonFiniteLossError(
            f"The training loss became NaN or inf at {where if batch >= 0 else 'another rank'}, and training "
            f"was stopped at batch {total_batch_index(trainer)}. "
            "No checkpoint was written after the bad batch. Usual causes: a learning rate too high (lower "
            "--model.optimizer.init_args.lr or the scheduler's max_lr), fp16 overflow (use bf16-mixed or "
            f"32-true precision), or NaN/inf in the inputs. {self._where_to_start(trainer)}"
        )

    def _where_to_start(self, trainer: L.Trainer) -> str:
        """Which checkpoint to start again from, with the fix: the best by the monitored metric, which
        precedes the divergence, rather than the latest, whose weights may already have run away."""
        from project.engine.runs import run_folder  # here: project.engine.runs is not needed by the guard otherwise

        callbacks = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
        best = next((c.best_model_path for c in callbacks if c.monitor and c.best_model_path), "")
        # the latest state: a monitor-less callback's file (last.ckpt), else a `save_last` link
        last = next((c.best_model_path for c in callbacks if not c.monitor and c.best_model_path), "")
        last = last or next((c.last_model_path for c in callbacks if c.last_model_path), "")
        scale = getattr(self, "_saved_scale", None)
        latest = ""
        if last and scale is not None:
            step, size = scale
            state = "already diverging" if not size < DIVERGED else "finite"
            latest = f"The latest checkpoint, {last} (step {step}), has weights up to {size:.1e} ({state}). "
        start = best or (last if scale is None or scale[1] < DIVERGED else "")
        if not start:
            return latest + "No checkpoint before the divergence is left: start a new run with the fix."
        config = run_folder(trainer) / "config.yaml"
        return (
            f"{latest}Start a new run from {start} with the fix (a resume keeps the settings that diverged): "
            f"python -m project.cli fit --config {config} <the fix> "
            f"--trainer.callbacks+=project.engine.callbacks.StartFromWeights --trainer.callbacks.checkpoint={start}"
        )
