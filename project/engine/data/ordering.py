"""The one order in which a training run sees its data, and where it stands in it.

An epoch's order is a pure function of (seed, epoch), so a checkpoint needs only `{"epoch": e,
"batches_done": k}` for a resumed run to see exactly the batches of the uninterrupted one; augmentation is
a pure function of (seed, rank, batch count) for the same reason.
"""

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from project.engine.errors import DataError
from project.engine.internals import total_batch_index


class ShardedOrder(DistributedSampler):
    """Which samples one rank sees in each epoch, and how many batches of it were handed out.

    Every rank draws the same seeded permutation (seed + epoch), so they agree without communicating; rank r
    takes every `num_replicas`-th index from r. A `DistributedSampler` because Lightning keeps a sampler of that
    type under DDP instead of replacing it.

    Args:
        size: samples in the data set.
        shuffle: a fresh permutation every epoch; otherwise the natural order.
        drop_last: cut the tail so every rank gets as many samples (training, where ranks step together).
            Without it every sample is seen exactly once, so evaluation metrics are exact
            (`DistributedSampler` pads with repeats).
        seed: the permutation of epoch e is drawn from `seed + e`.
        num_replicas: ranks sharing the data (the trainer's world size).
        rank: this process's rank.
    """

    def __init__(self, size: int, shuffle: bool, drop_last: bool, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise DataError(f"rank {rank} is outside 0..{num_replicas - 1} for a world of {num_replicas} processes.")
        # Initialised in full; `range(size)` stands in for the data set, whose length is all it reads
        super().__init__(range(size), num_replicas, rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.size = size
        self.batches_done = 0  # batches of the current epoch handed out, counted by the loader
        self.first_sample = 0  # where `__iter__` starts: past the batches a resumed run already trained on
        self._resume: dict[str, int] | None = None
        self._trained: tuple[int, int] | None = None  # (epoch, batches_done) at the end of the last step

    def __len__(self) -> int:
        if self.drop_last:
            return self.size // self.num_replicas
        return len(range(self.rank, self.size, self.num_replicas))

    def indices(self, device: torch.device | str = "cpu") -> Tensor:
        """This rank's sample indices for the current epoch, (len(self),) int64 on `device`."""
        if self.shuffle:
            generator = torch.Generator(device=device).manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator, device=device)
        else:
            order = torch.arange(self.size, device=device)
        if self.drop_last:
            order = order[: self.size - self.size % self.num_replicas]
        return order[self.rank :: self.num_replicas]

    def __iter__(self):
        return iter(self.indices()[self.first_sample :].tolist())

    def start_epoch(self, batch_size: int) -> int:
        """The batch a pass over the current epoch starts at: the saved position once after
        `load_state_dict` for that epoch, else 0. Sets `batches_done` and `first_sample` to match."""
        start = 0
        if self._resume is not None and self._resume["epoch"] == self.epoch:
            start = self._resume["batches_done"]
        self._resume = None  # only the resumed epoch starts part-way
        self.batches_done = start
        self.first_sample = start * batch_size
        return start

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def mark_trained(self) -> None:
        """Remember the position now, when every batch handed out is trained (the end of a step)."""
        self._trained = (self.epoch, self.batches_done)

    def rewind_to_trained(self) -> bool:
        """Go back to the last mark: a batch handed out since (a step cut short by an error) was not trained, so a
        checkpoint saved now must not count it. Whether the position moved."""
        if self._trained is None or self._trained == (self.epoch, self.batches_done):
            return False
        self.epoch, self.batches_done = self._trained
        return True

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Make the next pass over epoch `state["epoch"]` skip the batches already trained on."""
        self.set_epoch(state["epoch"])
        self._resume = {"epoch": state["epoch"], "batches_done": state["batches_done"]}


def augmentation_seed(seed: int, rank: int, batch_count: int) -> int:
    """The seed of one training step's augmentation: crops, flips and shifts are a function of where
    the step is in the run, so they need no saved RNG state, and each DDP rank augments differently."""
    return hash((seed, rank, batch_count)) & (2**63 - 1)


def augmentation_generator(trainer: L.Trainer, seed: int, device: torch.device) -> torch.Generator:
    """A generator for this training step's augmentation (see `augmentation_seed`); survives a resume."""
    step_seed = augmentation_seed(seed, trainer.global_rank, total_batch_index(trainer) + 1)
    return torch.Generator(device=device).manual_seed(step_seed)
