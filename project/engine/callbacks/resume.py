"""Exact mid-epoch resume: the training loader continues from the batch the checkpoint was saved at; and a
new run started from another run's weights."""

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from project.engine.checkpoints import check_checkpoint_path
from project.engine.errors import CheckpointError
from project.engine.internals import restore_train_loader_state


class ResumeLoaderPosition(L.Callback):
    """Hands the saved position back to a resumable training loader (e.g. `ResumableLoader`): Lightning drops it
    when the loader was built before the checkpoint was read (`project.engine.internals.restore_train_loader_state`).
    No batch is drawn before `on_train_start`, so restoring there is in time."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        restore_train_loader_state(trainer)


class StartFromWeights(L.Callback):
    """Starts a new run from the weights of another run's checkpoint (its `state_dict` only: optimizer, schedule,
    step and data position start afresh), to continue under settings a resume refuses (another batch size,
    split, seed or schedule). A resume (`--ckpt_path`) ignores it.

    Args:
        checkpoint: the checkpoint file whose weights the network starts from; loaded as data only.
    """

    def __init__(self, checkpoint: str):
        self.checkpoint = checkpoint

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path is not None:
            return
        check_checkpoint_path(self.checkpoint)
        state = torch.load(self.checkpoint, map_location=pl_module.device, weights_only=True).get("state_dict")
        if not state:
            raise CheckpointError(f"{self.checkpoint} holds no weights (state_dict) to start from.")
        try:
            pl_module.load_state_dict(state)
        except RuntimeError as err:  # the network built here is not the checkpoint's
            first = str(err).strip().splitlines()[1:2] or [str(err)]
            raise CheckpointError(
                f"{self.checkpoint}'s weights do not fit the network of this run: {first[0].strip()} "
                "Build the same networks (model.net, ...) as the checkpoint's run."
            ) from err
        rank_zero_info(f"Starting from the weights of {self.checkpoint}")
