"""Exact mid-epoch resume: the training loader continues from the batch the checkpoint was saved at; and a
new run started from another run's weights."""

from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info

from project.engine.checkpoints import check_checkpoint_path
from project.engine.errors import CheckpointError
from project.engine.internals import restore_train_loader_state

PROCESSES = "processes"  # the checkpoint's record of the processes that trained it


class ResumeLoaderPosition(L.Callback):
    """Hands the saved position back to a resumable training loader (e.g. `ResumableLoader`): Lightning drops it
    when the loader was built before the checkpoint was read (`project.engine.internals.restore_train_loader_state`).
    No batch is drawn before `on_train_start`, so restoring there is in time.

    A checkpoint records how many processes trained it; a resume on another number is refused, for every kind of
    data: each rank's share of a batch, its augmentation stream and BatchNorm's statistics depend on that number,
    so the run would not continue as it was made (the position of a LitData loader is not even defined there)."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[PROCESSES] = {
            "world_size": trainer.world_size,
            "num_nodes": trainer.num_nodes,
            "devices": trainer.num_devices,
        }

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return  # an evaluation computes the same on any number of processes
        made = checkpoint.get(PROCESSES) or _litdata_world(checkpoint)
        if not made or made["world_size"] == trainer.world_size:
            return
        ckpt = trainer.ckpt_path or "the checkpoint"
        devices, nodes = made.get("devices", made["world_size"]), made.get("num_nodes", 1)
        shape = f"{nodes} node(s) x {devices} devices"
        now = f"{trainer.num_nodes} node(s) x {trainer.num_devices} devices"
        as_made = f"--trainer.devices {devices} --trainer.num_nodes {nodes}"
        raise CheckpointError(
            f"{ckpt} was made on {made['world_size']} processes ({shape}) and this resume runs {trainer.world_size} "
            f"({now}): each process's share of a batch, its augmentation and BatchNorm's statistics depend on their "
            f"number, so it would not continue that run. Resume with {as_made}, or start a new run from its weights: "
            f"python -m project.cli fit --config <the run's config.yaml> --trainer.devices {trainer.num_devices} "
            f"--trainer.callbacks+=project.engine.callbacks.StartFromWeights --trainer.callbacks.checkpoint={ckpt}"
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        restore_train_loader_state(trainer)


def _litdata_world(checkpoint: dict[str, Any]) -> dict[str, int] | None:
    """The world size a LitData loader's saved state records (checkpoints from before `PROCESSES`)."""
    loaders = ((checkpoint.get("loops") or {}).get("fit_loop") or {}).get("state_dict", {}).get("combined_loader")
    for state in loaders or []:
        world = ((state or {}).get("dataset") or {}).get("world_size") if isinstance(state, dict) else None
        if isinstance(world, int):
            return {"world_size": world}
    return None


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
