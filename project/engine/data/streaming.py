"""Data read from its files while training (`data.in_memory: false`), and what holding it in memory costs.

A source that lists a split's files (`Source.listing`) is served either way: decoded once at `setup`, or
each file decoded in the DataLoader's workers when its batch is fetched, so memory stays flat. The listing
is a `Samples` of files, so hold-out, folds, names, order and exact resume are the in-memory path's own,
and a streamed batch is the same uint8 images (or padded clips) as an in-memory one.
"""

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, get_worker_info

from project.engine.data import targets
from project.engine.data.source import Samples
from project.engine.errors import DataError

log = logging.getLogger(__name__)

STREAM_HINT = "set data.in_memory false to stream it from its files instead (docs/data.md)"
# Bytes each decoded sample costs beside its data while a split is built by a source that gathers samples
# decoded one by one: a tensor object and its allocation, kept by the process once freed
SAMPLE_OVERHEAD = 512


def listing(items: Sequence[tuple[Path, int]], root: Path) -> Samples:
    """(file, label) pairs as `Samples` of undecoded files, each named by its path relative to `root`."""
    return Samples(
        inputs=[path for path, _ in items],
        labels=torch.tensor([label for _, label in items], dtype=torch.int64),
        names=[str(path.relative_to(root)) for path, _ in items],
    )


def list_files(source: Any, split: str, streaming: bool) -> Samples | None:
    """The split's files (`Source.listing`), or None from a source that does not list them (refused when
    `streaming`)."""
    try:
        return source.listing(split)
    except NotImplementedError:
        if streaming:
            raise DataError(
                f"data.in_memory is false but {type(source).__name__} cannot be streamed: it does not list "
                "its files (`listing`). Set data.in_memory true, or convert it to LitData chunks "
                "(`python -m project.optimize`, docs/data.md)."
            ) from None
        return None


class StreamedFiles(Dataset):
    """Files decoded one batch at a time, where the batch is fetched (a DataLoader worker).

    Args:
        samples: the files (`Samples.inputs`), targets (project/engine/data/targets.py) and names.
        decode: one file -> its tensor; module-level (or a `functools.partial` of one) so that worker
            processes started by spawn can receive it.
        batch: the decoded tensors of a batch -> the batch's inputs (`torch.stack` for images).
        mirrored: bool (N,), samples to mirror left-right once decoded (`flip: alternating`'s fixed half).
        skip_bad_files: an unreadable file is logged (once) and stands in its batch for the first readable
            sample of that batch, so batches keep their size and a resume its order; by default it stops the run.
    """

    def __init__(
        self,
        samples: Samples,
        decode: Callable[[Any], Tensor],
        batch: Callable[[list[Tensor]], Any] = torch.stack,
        mirrored: Tensor | None = None,
        skip_bad_files: bool = False,
    ):
        self.files = list(samples.inputs)
        self.labels = samples.labels
        self.names = samples.names
        self.decode = decode
        self.batch = batch
        self.mirrored = mirrored
        self.skip_bad_files = skip_bad_files
        self._told: set[int] = set()

    def __len__(self) -> int:
        return len(self.labels)

    def item(self, index: int) -> Tensor:
        tensor = self.decode(self.files[index])
        if self.mirrored is not None and self.mirrored[index]:
            tensor = tensor.flip(-1)
        return tensor

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> tuple[Any, Any]:
        # DataLoader calls this with a whole batch (undocumented; see internals.keep_batch), in a worker
        try:
            indices, decoded = self._decoded(indices)
        except DataError as err:
            if get_worker_info() is None:
                raise
            # Raised here it would reach the user inside the worker's traceback; handed over as the
            # batch, the DataModule raises it in the main process as the one line it is
            return err
        return self.batch(decoded), targets.take(self.labels, indices)

    def first_readable(self, n: int) -> list[Tensor]:
        """The first `n` samples, unreadable files left out with `skip_bad_files`."""
        found: list[Tensor] = []
        for start in range(0, len(self), n):
            if len(found) >= n:
                break
            indices, decoded = self._decoded(list(range(start, min(start + n, len(self)))))
            found += [t for k, t in enumerate(decoded) if indices[k] == start + k]
        return found[:n]

    def _decoded(self, indices: list[int]) -> tuple[list[int], list[Tensor]]:
        """The batch's indices (an unreadable file's replaced, with `skip_bad_files`) and decoded samples."""
        decoded: list[Tensor | None] = []
        for i in indices:
            try:
                decoded.append(self.item(i))
            except DataError as err:
                if not self.skip_bad_files:
                    raise
                if i not in self._told:
                    self._told.add(i)
                    log.warning("Skipping %s: %s", self.files[i], err)
                decoded.append(None)
        good = [k for k, tensor in enumerate(decoded) if tensor is not None]
        if not good:
            names = ", ".join(str(self.files[i]) for i in indices[:3])
            raise DataError(f"No file of a batch is readable ({names}, ...): the data is broken beyond skipping.")
        stand_in = good[0]
        indices = [i if decoded[k] is not None else indices[stand_in] for k, i in enumerate(indices)]
        return indices, [tensor if tensor is not None else decoded[stand_in] for tensor in decoded]


def available_memory() -> int | None:
    """Bytes the machine can still give this process without swapping, or None when it cannot tell."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # other Unixes: free pages (an underestimate: caches could be freed too)
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def resident_memory() -> int:
    """This process's resident set size now, in bytes (0 where the system does not tell)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass(frozen=True)
class MemoryEstimate:
    """What holding a data set in memory costs, by what allocates it, in bytes.

    - held: the decoded splits as the DataModule keeps them for the whole run;
    - building: the largest split a second time while it is built (each sample decoded on its own, then
      gathered into one tensor; the held-out validation split is a copy of the training split's share);
    - statistics: measuring the training split's mean and std, one chunk of images at a time;
    - baseline: this process's resident memory before decoding (the imports, the network), which the
      machine's free memory already leaves out.
    """

    held: int
    building: int
    statistics: int = 0
    baseline: int = 0

    @property
    def added(self) -> int:
        """What decoding adds to the process at its peak: what must be free."""
        return self.held + self.building + self.statistics

    @property
    def peak(self) -> int:
        """The process's resident memory at the peak of decoding."""
        return self.baseline + self.added

    def __str__(self) -> str:
        gb = 1e9
        parts = f"{self.held / gb:.2f} GB held, {self.building / gb:.2f} GB more while a split is built"
        if self.statistics:
            parts += f", {self.statistics / gb:.2f} GB measuring its statistics"
        return f"about {self.added / gb:.1f} GB ({parts})"


def check_fits(estimate: MemoryEstimate, what: str) -> None:
    """Refuse, in one line naming the streaming switch, to decode what the machine has no memory for."""
    free = available_memory()
    log.debug("%s: %s, peak %d bytes, %s bytes available", what, estimate, estimate.peak, free)
    if free is not None and estimate.added > free:
        raise DataError(
            f"{what} would take {estimate} in memory, more than the {free / 1e9:.1f} GB this machine has free; "
            f"{STREAM_HINT}."
        )
