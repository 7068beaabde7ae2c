"""Every random draw of a training step, resumable: the global RNGs are reseeded before each step.

Dropout, SpecAugment's masks and the like draw from the global generators (torch's, numpy's, Python's),
whose state no checkpoint holds. Reseeded from (run seed, rank, batch count), as
`project.engine.data.ordering.augmentation_generator` does for augmentation, a run resumed from any checkpoint
draws what the uninterrupted run drew, and each DDP rank draws differently. The seed travels in checkpoints.
"""

import random
from typing import Any

import lightning as L
import numpy as np
import torch

from project.engine.internals import total_batch_index

# Keeps these streams apart from augmentation_generator's, which hashes (seed, rank, batch count)
# alone: the same CPU generator seeded alike would tie dropout masks to crops and flips
_SALT = 0x5EED


class StepSeededRandomness(L.Callback):
    """Reseeds torch (CPU and CUDA), numpy and Python's `random` before every training batch: tens of
    microseconds of host work, no device sync. The run seed is the torch seed in force when training starts.
    A DataModule's `on_after_batch_transfer` runs before the reseed and draws from `augmentation_generator`."""

    def __init__(self) -> None:
        self.seed: int | None = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.seed is None:  # a fresh run (a resumed one has it from its checkpoint)
            self.seed = torch.initial_seed()
        step_seed = hash((self.seed, trainer.global_rank, total_batch_index(trainer), _SALT)) & (2**63 - 1)
        seed_torch_generators(step_seed)
        np.random.seed(step_seed % 2**32)
        random.seed(step_seed)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seed = state_dict["seed"]


def seed_torch_generators(seed: int) -> None:
    """`torch.manual_seed(seed)` for the CPU and every accelerator already in use, without its cost.
    `torch.manual_seed` also queues a seed, with a Python stack trace, for each backend not yet initialised
    (2 to 8 ms a call, a whole GPU step of a small net); such a backend holds no generator state to reseed."""
    torch.default_generator.manual_seed(seed)
    for backend in (torch.cuda, torch.xpu, torch.mtia):
        if backend.is_initialized():
            backend.manual_seed_all(seed)
    if torch.backends.mps.is_available():
        torch.mps.manual_seed(seed)
