"""The loaders every DataModule serves: a host `ResumableLoader` for training, a plain ordered one for
evaluation, or a `DeviceLoader` over a copy of the set on the accelerator. Training loaders of both kinds
follow `ShardedOrder` and save the same `state_dict()`, which Lightning keeps in checkpoints."""

import os
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from project.engine.data import targets
from project.engine.data.ordering import ShardedOrder
from project.engine.data.source import Samples
from project.engine.data.targets import BatchTargets
from project.engine.errors import DataError
from project.engine.internals import expose_epoch_sampler
from project.engine.signals import ignore_in_worker

Inputs = Tensor | tuple[Tensor, ...]


class InMemoryTensors(Dataset):
    """Inputs (N, ...) with their targets (project/engine/data/targets.py), fetched a whole batch of indices at a
    time."""

    def __init__(self, samples: Samples):
        self.inputs = samples.inputs
        self.labels = samples.labels
        self.names = samples.names

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.inputs[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, BatchTargets]:
        # DataLoader calls this with a whole batch (undocumented; see project.engine.internals.keep_batch): one gather
        # instead of B getitems and a stack
        index = torch.as_tensor(indices)
        return self.inputs[index], targets.take(self.labels, index)

    def device_tensors(self, device: torch.device) -> tuple[Inputs, BatchTargets]:
        # Moved once and kept there: later loaders (and later fits) of this DataModule reuse the copy
        self.inputs = self.inputs.to(device)
        if targets.is_sequences(self.labels):  # padded to the set's longest, gathered by the loader like a tensor
            return self.inputs, targets.on_device(self.labels, device)
        self.labels = self.labels.to(device)
        return self.inputs, self.labels


class ResumableLoader(DataLoader):
    """A training DataLoader over a shuffled, sharded `ShardedOrder` whose position is saved in checkpoints.

    Args:
        dataset, batch_size, **kwargs: as for DataLoader (no `shuffle`: the order shuffles).
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
            sampler = ShardedOrder(
                len(dataset), shuffle=True, drop_last=True, seed=seed, num_replicas=num_replicas, rank=rank
            )
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **kwargs)

    def __iter__(self):
        order = self.sampler if isinstance(self.sampler, ShardedOrder) else None
        if order is not None:
            order.start_epoch(self.batch_size)
        for batch in super().__iter__():
            # Counted here, as the batch is handed over (workers fetch ahead of it): a checkpoint
            # written while the loop holds batch k must record k batches as seen
            if order is not None:
                order.batches_done += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict() if isinstance(self.sampler, ShardedOrder) else {}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if isinstance(self.sampler, ShardedOrder) and state:
            self.sampler.load_state_dict(state)

    def mark_trained(self) -> None:  # project.engine.callbacks.StopBetweenSteps: the position a checkpoint holds
        if isinstance(self.sampler, ShardedOrder):
            self.sampler.mark_trained()

    def rewind_to_trained(self) -> bool:
        return isinstance(self.sampler, ShardedOrder) and self.sampler.rewind_to_trained()


class DeviceLoader:
    """Yields `(inputs, labels)` batches gathered from tensors that already live on the device: a small set
    (CIFAR-10 is 150 MB as uint8) fits on a GPU many times over, and the loader is then never the
    bottleneck. `DataLoader` + `DistributedSampler` semantics, so Lightning drives it unchanged.

    Args:
        inputs: the whole set, (N, ...) of any dtype, or a tuple of such tensors (audio's waveforms (N, T)
            and lengths (N,)), each gathered alike. uint8 images stay uint8 until each batch's transform.
        labels: (N, ...) targets, or sequences padded to the longest with their lengths ((N, L), (N,)), each
            gathered alike.
        batch_size: samples per batch on this rank.
        shuffle, drop_last, seed, num_replicas, rank: see `ShardedOrder`. `drop_last` also drops this
            rank's last, partial batch, keeping every step (and BatchNorm's statistics) full-sized.
        device: where the tensors are moved once, if they are not there already.
    """

    def __init__(
        self,
        inputs: Inputs,
        labels: BatchTargets,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        device: torch.device | str | None = None,
    ):
        parts = inputs if isinstance(inputs, tuple) else (inputs,)
        n = targets.count(labels)
        if any(len(part) != n for part in parts):
            raise DataError(f"inputs hold {len(parts[0])} samples but labels hold {n}; they must match.")
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}.")
        device = torch.device(device) if device is not None else targets.device_of(labels)
        moved = tuple(part.to(device) for part in parts)
        self.inputs = moved if isinstance(inputs, tuple) else moved[0]
        self.labels = tuple(part.to(device) for part in labels) if isinstance(labels, tuple) else labels.to(device)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler: ShardedOrder
        expose_epoch_sampler(self, ShardedOrder(n, shuffle, drop_last, seed, num_replicas, rank))

    @property
    def device(self) -> torch.device:
        return targets.device_of(self.labels)

    def __len__(self) -> int:
        samples = len(self.sampler)
        return samples // self.batch_size if self.drop_last else -(-samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Inputs, BatchTargets]]:
        # A generator: nothing runs until the first batch is asked for, which Lightning does after
        # `set_epoch`, so the order is always the current epoch's
        start = self.sampler.start_epoch(self.batch_size)
        order = self.sampler.indices(self.device)
        for i in range(start, len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            self.sampler.batches_done = i + 1
            inputs = (
                tuple(part[index] for part in self.inputs) if isinstance(self.inputs, tuple) else self.inputs[index]
            )
            yield inputs, targets.gather(self.labels, index)

    def state_dict(self) -> dict[str, int]:
        """Where this epoch stands; Lightning stores it in every checkpoint."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)

    def mark_trained(self) -> None:  # project.engine.callbacks.StopBetweenSteps: the position a checkpoint holds
        self.sampler.mark_trained()

    def rewind_to_trained(self) -> bool:
        return self.sampler.rewind_to_trained()


def check_loader_settings(batch_size: int, num_workers: int, on_device: bool, in_memory: bool) -> None:
    """Refuse loader settings that cannot work, naming the key, before any data is read."""
    if batch_size < 1:
        raise DataError(f"data.batch_size must be at least 1, got {batch_size}.")
    if num_workers < 0:
        raise DataError(f"data.num_workers must be 0 (load in the main process) or more, got {num_workers}.")
    if on_device and not in_memory:
        raise DataError(
            "data.on_device keeps the data set on the device, so it needs data.in_memory true; set one of them false."
        )


def usable_workers(num_workers: int, key: str = "data.num_workers") -> int:
    """`num_workers`, at most the CPUs this process may run on, saying so when it asked for more: every worker
    is a process with its own copy of the loader, so a thousand (a typo) took all memory before the first step."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    if num_workers <= cpus:
        return num_workers
    rank_zero_info(f"{key}={num_workers} is more than the {cpus} CPUs this process may use: using {cpus} workers.")
    return cpus


def per_device_batch_size(batch_size: int, trainer: L.Trainer | None) -> int:
    """Split a global batch size evenly over the devices, so a recipe means the same on 1 or 8 GPUs."""
    world = trainer.world_size if trainer is not None else 1
    if batch_size % world:
        raise DataError(
            f"data.batch_size={batch_size} does not divide evenly over {world} devices; "
            f"use a multiple of {world}, e.g. {batch_size // world * world or world}."
        )
    return batch_size // world


def host_loader(
    dataset: Dataset,
    trainer: L.Trainer | None,
    batch_size: int,
    *,
    train: bool,
    seed: int,
    num_workers: int,
    pin_memory: bool | None,
    collate_fn: Callable,
) -> DataLoader:
    """A `ResumableLoader` for training (shuffled, last partial batch dropped), a plain ordered
    DataLoader for evaluation."""
    options = dict(
        batch_size=batch_size,
        drop_last=train,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,
        collate_fn=collate_fn,
        worker_init_fn=ignore_in_worker if num_workers > 0 else None,
    )
    if train:
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return ResumableLoader(dataset, seed=seed, num_replicas=world, rank=rank, **options)
    return DataLoader(dataset, **options)


def device_loader(
    inputs: Inputs, labels: BatchTargets, trainer: L.Trainer | None, batch_size: int, *, train: bool, seed: int
) -> DeviceLoader:
    """A `DeviceLoader` on the trainer's device, shuffled and without a partial batch for training."""
    return DeviceLoader(
        inputs,
        labels,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train,
        seed=seed,
        num_replicas=trainer.world_size if trainer is not None else 1,
        rank=trainer.global_rank if trainer is not None else 0,
    )
