"""What a data set is to the rest of the project: a source.

A source says its classes, how to get its files (`prepare`) and load a split (`load`), and may tell each
sample's group (`group`, e.g. its speaker). Everything else (validation hold-out, folds, batching, loaders,
device, augmentation, `predict_dir`, size checks) is the DataModule's it is plugged into. Adding a data set
is one source file and one YAML (docs/make-it-yours.md).
"""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from project.engine.data import targets

Split = Literal["train", "val", "test"]


class Samples(NamedTuple):
    """A split in memory.

    inputs: one tensor (N, ...) (images uint8 (N, C, H, W), features (N, F)), or a list of N tensors
        of different lengths (audio clips (T,)).
    labels: the targets, one per sample: class indices int64 (N,), values float (N,) or (N, K), several labels a
        sample as 0/1 floats (N, K); or a list of N tensors of different lengths (token sequences), which
        batches carry padded with their lengths (project/engine/data/targets.py).
    names: what to call each sample in a predictions CSV (its file); by default `<split>/<index>`.
    """

    inputs: Tensor | list[Tensor]
    labels: Tensor | list[Tensor]
    names: list[str] | None = None

    def select(self, index: Tensor) -> "Samples":
        """The samples at `index` (N',) int64, in that order."""
        inputs = self.inputs[index] if isinstance(self.inputs, Tensor) else [self.inputs[i] for i in index.tolist()]
        names = None if self.names is None else [self.names[i] for i in index.tolist()]
        return Samples(inputs, targets.select(self.labels, index), names)

    @staticmethod
    def concat(parts: list["Samples"]) -> "Samples":
        """The samples of every part, in order (all named, or none)."""
        if isinstance(parts[0].inputs, Tensor):
            inputs = torch.cat([p.inputs for p in parts])
        else:
            inputs = [x for p in parts for x in p.inputs]
        names = None if any(p.names is None for p in parts) else [n for p in parts for n in p.names]
        return Samples(inputs, targets.concat([p.labels for p in parts]), names)


class Source(ABC):
    """A data set. `classes` must be known once the source is built (the CLI sizes the model from it
    before any sample is read), so read it from folder names or a small index file, not the data. A data set
    whose targets are values (regression) has none: `()`; one with several labels a sample names them."""

    classes: tuple[str, ...]
    # The groups `group` can tell a sample's, e.g. ("speaker",): cross-validation by group (data.fold_groups)
    # keeps each whole in one fold, so no speaker is heard in training and again in testing
    group_keys: tuple[str, ...] = ()

    @property
    def input_sizes(self) -> dict[str, Any]:
        """The sizes of one input that a net may take as constructor arguments of the same names
        (project/engine/sizes.py), known once the source is built; e.g. a table's `in_features`."""
        return {}

    @property
    def num_outputs(self) -> int:
        """The size of a net's output layer for these targets: a logit per class or label, a value per target."""
        return len(self.classes)

    def prepare(self) -> None:  # noqa: B027 (optional hook)
        """Make the files available: download, verify, extract. Called on one process only; by
        default nothing (the files are the user's own)."""

    @property
    def location(self) -> str | Path | None:
        """Where the data is read from, once `prepare` has run: the DataModule says it in one line, so that a user
        knows which copy was read (a folder already on disk, or one just downloaded). None says nothing."""
        root = getattr(self, "root", None)
        return root if isinstance(root, str | Path) else None

    @abstractmethod
    def load(self, split: Split) -> Samples | None:
        """The split in memory, or None when the data set has no such split: a missing "val" is held
        out of "train" by the DataModule (seeded, `data.val_size`)."""

    def listing(self, split: Split) -> Samples | None:
        """The split's files, not read: `Samples` whose inputs are file paths (None: no such split), so that the
        DataModule can stream it (`data.in_memory: false`) and tell its size in memory first. Optional: a source
        without files of its own (one archive, one table) only loads."""
        raise NotImplementedError

    def group(self, key: str, name: str) -> str:
        """The `key` group (one of `group_keys`) of the sample called `name` (its name in `Samples`)."""
        raise NotImplementedError(f"{type(self).__name__} lists no group keys")


class ImageSource(Source):
    """Images as uint8 (N, 3, H, W). `image_size`: the side a `predict_dir` image is resized to; `mean` and `std`
    (per channel, fractions of 255): the set's published statistics, if any (else measured on the training split)."""

    image_size: int
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    skip_bad_files: bool = False

    @property
    def input_sizes(self) -> dict[str, Any]:
        # Under the names torchvision-style (`in_channels`) and timm (`in_chans`, `img_size`) nets use
        size = self.image_size
        return {"in_channels": 3, "in_chans": 3, "img_size": size, "image_size": size}


class AudioSource(Source):
    """Mono clips of any lengths, decoded at the sample rate the DataModule (and the model) uses."""

    @abstractmethod
    def load(self, split: Split, sample_rate: int) -> Samples | None:  # type: ignore[override]
        """The split as a list of mono clips (T,) at `sample_rate`, with labels and names."""


def no_labels(count: int) -> Tensor:
    """The labels of samples whose class is unknown (a `predict_dir`): -1."""
    return torch.full((count,), -1)
