"""Data read from its files while training (`data.in_memory: false`), and what holding it in memory costs.

A source that lists a split's files (`Source.listing`) is served either way: decoded once at `setup`, or
each file decoded in the DataLoader's workers when its batch is fetched, so memory stays flat. The listing
is a `Samples` of files, so hold-out, folds, names, order and exact resume are the in-memory path's own,
and a streamed batch is the same uint8 images (or padded clips) as an in-memory one.
"""

import logging
import os
from collections.abc import Callable, Sequence
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
    """

    def __init__(
        self,
        samples: Samples,
        decode: Callable[[Any], Tensor],
        batch: Callable[[list[Tensor]], Any] = torch.stack,
        mirrored: Tensor | None = None,
    ):
        self.files = list(samples.inputs)
        self.labels = samples.labels
        self.names = samples.names
        self.decode = decode
        self.batch = batch
        self.mirrored = mirrored

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
            decoded = [self.item(i) for i in indices]
        except DataError as err:
            if get_worker_info() is None:
                raise
            # Raised here it would reach the user inside the worker's traceback; handed over as the
            # batch, the DataModule raises it in the main process as the one line it is
            return err
        return self.batch(decoded), targets.take(self.labels, indices)


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


def check_fits(estimate: int, what: str) -> None:
    """Refuse, in one line naming the streaming switch, to decode `estimate` bytes the machine lacks."""
    free = available_memory()
    log.debug("%s: about %d bytes in memory, %s bytes available", what, estimate, free)
    if free is not None and estimate > free:
        raise DataError(
            f"{what} would take about {estimate / 1e9:.1f} GB in memory, more than the {free / 1e9:.1f} GB this "
            f"machine has free; {STREAM_HINT}."
        )
