"""Checkpoint folders without leftovers, and a finished fit's last step always saved."""

import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info

from project.engine.checkpoints import remove_leftover_temporary_files
from project.engine.internals import leave_checkpoint_callback_states, save_latest_checkpoint_now


class CheckpointFiles(L.Callback):
    """Tidies checkpoint folders at the start of a fit and saves the final step at its end.

    - Rank 0 deletes the `.NAME.tmp-PID` files writes cut short by a kill left (`AtomicCheckpointIO`) in the
      folders this fit writes, and those of finished processes beside the checkpoint it resumes from.
    - A monitor-less checkpoint saving every `every_n_train_steps` misses the final step when the interval
      does not divide the run: it is saved at the end, so a finished fit's last.ckpt is the finished model.
    - An evaluation leaves the fit's checkpoint bookkeeping in its checkpoint alone: it names the fit's folder.
    """

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            leave_checkpoint_callback_states(trainer, checkpoint)
            return
        # A resume in the run's own folder, named another way (relative, absolute, from another folder): the
        # same folder, so the callbacks keep their bookkeeping and Lightning does not warn of a change. A copy
        # of a run's folder resumed in the copy (a run of its own): its bookkeeping names the copy's files, so
        # that it replaces and deletes those, never the original's.
        resumed_from = Path(str(trainer.ckpt_path)).parent if trainer.ckpt_path else None
        states = checkpoint.get("callbacks") or {}
        for callback in trainer.checkpoint_callbacks:
            state = states.get(callback.state_key)
            saved, now = (state or {}).get("dirpath"), getattr(callback, "dirpath", None)
            if not saved or not now or saved == now:
                continue
            if _same_folder(saved, now):
                state["dirpath"] = now
            elif resumed_from is not None and _same_folder(str(resumed_from), now):
                _move_bookkeeping(state, saved, now)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        own = {Path(c.dirpath) for c in trainer.checkpoint_callbacks if getattr(c, "dirpath", None)}
        deleted = [p for folder in own for p in remove_leftover_temporary_files(folder, only_dead_writers=False)]
        if trainer.ckpt_path and "://" not in str(trainer.ckpt_path):
            resumed_from = Path(trainer.ckpt_path).parent
            if resumed_from not in own:
                deleted += remove_leftover_temporary_files(resumed_from)
        if deleted:
            rank_zero_info(f"Deleted {len(deleted)} unfinished checkpoint writes: {', '.join(map(str, deleted))}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.monitor is None:
                save_latest_checkpoint_now(callback, trainer)


def _move_bookkeeping(state: dict[str, Any], saved: str, now: str) -> None:
    """A ModelCheckpoint's saved state with every path in its folder `saved` moved to the folder `now`."""

    def moved(path: Any) -> Any:
        if isinstance(path, str) and path and Path(path).parent == Path(saved):
            return str(Path(now) / Path(path).name)
        return path

    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in state:
            state[key] = moved(state[key])
    if isinstance(state.get("best_k_models"), dict):
        state["best_k_models"] = {moved(k): v for k, v in state["best_k_models"].items()}
    state["dirpath"] = now


def _same_folder(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
