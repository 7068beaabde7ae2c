"""What every in-memory DataModule shares: batch-fetching datasets, loaders, per-device batch size
and the per-step augmentation generator.

The training loader can be stopped and restarted in the middle of an epoch. Lightning saves the
`state_dict()` of any training DataLoader that has one into every checkpoint and hands it back to
`load_state_dict()` on resume, before the first batch is drawn. The order of an epoch here is a pure
function of (seed, epoch), so the state is just the epoch and how many batches of it were handed
out: a resumed run skips those and sees exactly the batches the uninterrupted run would have seen.
"""

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from project.errors import DataError
from project.internals import total_batch_index


class ResumableSampler(DistributedSampler):
    """Shuffles each epoch with `seed + epoch` and takes this rank's share, skipping `start` indices once.

    A DistributedSampler subclass, so Lightning calls `set_epoch` on it every epoch and does not wrap
    it in a sampler of its own under DDP; with one device it is a plain seeded shuffle.
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.start = 0

    def __iter__(self):
        indices = list(super().__iter__())
        start, self.start = self.start, 0  # only the resumed epoch starts part-way
        return iter(indices[start:])

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0  # a checkpoint from the end of an epoch resumes at the start of the next
        super().set_epoch(epoch)


class ResumableLoader(DataLoader):
    """A training DataLoader over a `ResumableSampler` whose position is saved in checkpoints.

    Args:
        dataset, batch_size, **kwargs: as for DataLoader (no `shuffle`: the sampler shuffles).
        seed: the shuffle order of epoch e is drawn from `seed + e`.
        num_replicas, rank: the world size and this process's global rank.
        sampler: only for Lightning, which re-creates loaders with a sampler of its own for
            `overfit_batches`; such a loader restarts its epoch on resume.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        sampler: Sampler | None = None,
        **kwargs: Any,
    ):
        if sampler is None:
            sampler = ResumableSampler(dataset, num_replicas, rank, seed)
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
        self.batches_served = 0

    def __iter__(self):
        skipped = self.sampler.start // self.batch_size if isinstance(self.sampler, ResumableSampler) else 0
        self.batches_served = skipped
        for batch in super().__iter__():
            # Counted before the batch is handed over: a checkpoint written while the loop holds
            # batch k must record k batches as seen.
            self.batches_served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": getattr(self.sampler, "epoch", 0), "batches_served": self.batches_served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if isinstance(self.sampler, ResumableSampler):
            self.sampler.set_epoch(state["epoch"])
            self.sampler.start = state["batches_served"] * self.batch_size


def per_device_batch_size(batch_size: int, trainer: L.Trainer | None) -> int:
    """Split a global batch size evenly over the devices, so a recipe means the same on 1 or 8 GPUs."""
    world = trainer.world_size if trainer is not None else 1
    if batch_size % world:
        raise DataError(
            f"data.batch_size={batch_size} does not divide evenly over {world} devices; "
            f"use a multiple of {world}, e.g. {batch_size // world * world or world}."
        )
    return batch_size // world


def augmentation_generator(trainer: L.Trainer, seed: int, device: torch.device) -> torch.Generator:
    """A generator for this training step's augmentation, drawn afresh from (seed, rank, batch count).

    Needs no saved RNG state: a resumed run sees the crops, flips and shifts the uninterrupted run
    would have seen, and each DDP rank augments differently."""
    batch_count = total_batch_index(trainer) + 1
    step_seed = hash((seed, trainer.global_rank, batch_count)) & (2**63 - 1)
    return torch.Generator(device=device).manual_seed(step_seed)


def make_loader(
    dataset: Dataset,
    trainer: L.Trainer | None,
    batch_size: int,
    *,
    shuffle: bool = False,
    drop_last: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool | None = None,
    collate_fn: Callable | None = None,
) -> DataLoader:
    """The DataModules' loaders: a `ResumableLoader` for training (its position goes into checkpoints,
    so a run resumed mid-epoch sees the same batches), a plain ordered DataLoader for evaluation."""
    options = dict(
        batch_size=batch_size,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,
        collate_fn=collate_fn,
    )
    if shuffle:
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return ResumableLoader(dataset, seed=seed, num_replicas=world, rank=rank, **options)
    return DataLoader(dataset, **options)


class InMemoryImages(Dataset):
    """uint8 images (N, C, H, W) with int64 labels (N,), fetched a whole batch of indices at a time."""

    def __init__(self, images: Tensor, labels: Tensor):
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        # DataLoader calls this with a whole batch (project.internals.BATCH_FETCH_METHOD): one gather
        # instead of B getitems and a stack
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]
