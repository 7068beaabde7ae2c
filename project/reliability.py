"""What keeps a long run from being lost: exact mid-epoch resume, a stop at the first NaN/inf loss,
checkpoint writes that never leave a broken file behind, and refusing checkpoints that carry code.

The CLI (project/cli.py) wires all of these in; they are plain Lightning pieces, usable with a bare
Trainer too.
"""

import os
import pickle
import re
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class NonFiniteLossError(RuntimeError):
    pass


class UnsafeCheckpointError(RuntimeError):
    pass


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
        batch_count = trainer.fit_loop.total_batch_idx
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
            f"was stopped at batch {trainer.fit_loop.total_batch_idx}. "
            "No checkpoint was written after the bad batch. Usual causes: a learning rate too high (lower "
            "--model.optimizer.init_args.lr or the scheduler's max_lr), fp16 overflow (use bf16-mixed or "
            "32-true precision), or NaN/inf in the inputs. Resume from the last checkpoint after the fix."
        )


class ResumeLoaderPosition(L.Callback):
    """Hands the saved position back to a resumable training loader (e.g. `ResumableLoader`).

    Lightning stores the loader's `state_dict()` in each checkpoint, but restores it only when it
    builds the loader after the checkpoint is read. When `configure_optimizers` asks for
    `trainer.estimated_stepping_batches` (OneCycleLR does), the loader is built earlier and the saved
    position is silently dropped: a run resumed mid-epoch would replay the epoch from its start.
    Training has not drawn a batch yet at `on_train_start`, so restoring there is still in time.
    (Lightning 2.6; the call is a no-op when Lightning has already restored the loader.)
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.fit_loop._load_combined_loader_states()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a local checkpoint to a temporary file beside it, syncs it, then renames it over the target.

    A rename within one folder is atomic, so a run killed mid-write leaves the previous `last.ckpt`
    intact (plus a `.last.ckpt.tmp-PID` to delete). Lightning's default writes through an fsspec
    transaction whose temporary file lies in the system temp folder: moving it onto a different
    file system (node-local /tmp, checkpoints on NFS/Lustre) is a copy, which a kill can cut short,
    and a small /tmp can fill up. URLs (s3://, gs://, ...) keep Lightning's behaviour.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # s3://, gs://, file://, ...
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)  # make the rename itself survive a power loss


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_checkpoint_is_safe(path: str | Path) -> None:
    """Raise `UnsafeCheckpointError` if loading the checkpoint at `path` could run code.

    A .ckpt is a pickle. Project checkpoints hold only tensors and plain values, which
    `torch.load(weights_only=True)` reads without executing anything; a file that names any other
    Python callable is refused here, before anything in it is unpickled.
    """
    try:
        unsafe = _unsafe_globals(path)
    except Exception as err:  # not a torch zip file at all: truncated, or an old pickle format
        raise UnsafeCheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({err}). It may be truncated or corrupt; use "
            "another checkpoint (each run folder keeps last.ckpt and the best epoch's)."
        ) from err
    if unsafe:
        raise UnsafeCheckpointError(
            f"Refusing to load {path}: besides tensors it holds pickled Python objects "
            f"({', '.join(sorted(unsafe))}) that run code when loaded. Checkpoints written by this project "
            "never do. Use a checkpoint from a source you trust; if you do trust this one, load it "
            "yourself with torch.load(path, weights_only=False) and save just its 'state_dict'."
        )


def _unsafe_globals(path: str | Path) -> list[str]:
    if hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):  # torch >= 2.5: a scan, no loading
        return torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        return re.findall(r"GLOBAL (\S+)", str(err)) or ["objects torch refuses to load as data"]
    return []
