"""Exact mid-epoch resume: the training loader continues from the batch the checkpoint was saved at."""

import lightning as L

from project.internals import restore_train_loader_state


class ResumeLoaderPosition(L.Callback):
    """Hands the saved position back to a resumable training loader (e.g. `ResumableLoader`).

    Lightning stores the loader's `state_dict()` in each checkpoint, but restores it only when it
    builds the loader after the checkpoint is read. When `configure_optimizers` asks for
    `trainer.estimated_stepping_batches` (OneCycleLR does), the loader is built earlier and the saved
    position is silently dropped: a run resumed mid-epoch would replay the epoch from its start.
    Training has not drawn a batch yet at `on_train_start`, so restoring there is still in time.
    (Lightning 2.6; see `project.internals.restore_train_loader_state`.)
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        restore_train_loader_state(trainer)
