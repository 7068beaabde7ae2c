"""A shuffling training loader that a checkpoint can stop and restart in the middle of an epoch.

Lightning saves the `state_dict()` of any training DataLoader that has one into every checkpoint
and hands it back to `load_state_dict()` on resume, before the first batch is drawn. The order of
an epoch here is a pure function of (seed, epoch), so the state is just the epoch and how many
batches of it were handed out: a resumed run skips those and sees exactly the batches the
uninterrupted run would have seen.
"""

from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler


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
