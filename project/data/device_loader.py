"""Batches of an in-memory data set that lives on the accelerator: no worker, no copy, no host work per step.

A small image set (CIFAR-10 is 150 MB as uint8) fits on a GPU many times over. Holding it there turns a
batch into one gather on the device, so the loader can never be the bottleneck, however fast the net.
The iterator follows `DataLoader` + `DistributedSampler` semantics, so Lightning drives it unchanged:
`set_epoch` on `.sampler` reshuffles every epoch, each rank sees its own disjoint part, and
`state_dict`/`load_state_dict` let a run resumed mid-epoch continue with the very next batch.
"""

from collections.abc import Iterator

import torch
from torch import Tensor

from project.errors import DataError
from project.internals import expose_epoch_sampler


class ShardedOrder:
    """Which samples one rank sees in each epoch, as `DistributedSampler` would choose them.

    The same seeded permutation is drawn on every rank (seed + epoch), so the ranks agree on it without
    communicating; rank r takes every `num_replicas`-th index starting at r.

    Args:
        size: samples in the data set.
        shuffle: a fresh permutation every epoch; otherwise the natural order.
        drop_last: cut the tail so every rank gets the same number of samples (training, where ranks must
            step together). Without it the ranks differ by at most one sample and every sample is seen
            exactly once, so evaluation metrics are exact (unlike `DistributedSampler`, which pads with
            repeats).
        seed: the permutation of epoch e is drawn from `seed + e`.
        num_replicas: ranks sharing the data (the trainer's world size).
        rank: this process's rank.
    """

    def __init__(self, size: int, shuffle: bool, drop_last: bool, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise DataError(f"rank {rank} is outside 0..{num_replicas - 1} for a world of {num_replicas} processes.")
        self.size = size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning's fit loop before each epoch, as for a `DistributedSampler`."""
        self.epoch = epoch

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


class DeviceLoader:
    """Yields `(inputs, labels)` batches gathered from tensors that already live on the device.

    Args:
        inputs: the whole set, (N, ...) of any dtype (uint8 images (N, C, H, W) stay uint8: augmentation
            and conversion to float happen per batch, after the gather).
        labels: (N,) targets.
        batch_size: samples per batch on this rank.
        shuffle, drop_last, seed, num_replicas, rank: see `ShardedOrder`. `drop_last` also drops this
            rank's last, partial batch, keeping every step (and BatchNorm's statistics) full-sized.
        device: where the tensors are moved once, if they are not there already.
    """

    def __init__(
        self,
        inputs: Tensor,
        labels: Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        device: torch.device | str | None = None,
    ):
        if len(inputs) != len(labels):
            raise DataError(f"inputs hold {len(inputs)} samples but labels hold {len(labels)}; they must match.")
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}.")
        device = torch.device(device) if device is not None else inputs.device
        self.inputs = inputs.to(device)
        self.labels = labels.to(device)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler: ShardedOrder
        expose_epoch_sampler(self, ShardedOrder(len(labels), shuffle, drop_last, seed, num_replicas, rank))
        self._batches_done = 0  # batches yielded in the current epoch, for `state_dict`
        self._resume: dict[str, int] | None = None

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def __len__(self) -> int:
        samples = len(self.sampler)
        return samples // self.batch_size if self.drop_last else -(-samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        # A generator: nothing runs until the first batch is asked for, which Lightning does after
        # `set_epoch`, so the order is always the current epoch's.
        start = 0
        if self._resume is not None and self._resume["epoch"] == self.sampler.epoch:
            start = self._resume["batches_done"]
        self._resume = None
        order = self.sampler.indices(self.device)
        self._batches_done = start
        for i in range(start, len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            self._batches_done = i + 1
            yield self.inputs[index], self.labels[index]

    def state_dict(self) -> dict[str, int]:
        """Where this epoch stands; Lightning stores it in every checkpoint."""
        return {"epoch": self.sampler.epoch, "batches_done": self._batches_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Make the next iteration over epoch `state["epoch"]` skip the batches already trained on."""
        self.sampler.set_epoch(state["epoch"])
        self._resume = dict(state)
