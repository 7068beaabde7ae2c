"""One DataModule for every data set held in memory or streamed: a `Source` says what the data is; this does
what is the same for every data set. `ImageDataModule` and `AudioDataModule` add transforms and readers."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from project.engine.data import targets
from project.engine.data.chunks import check_served, served_splits
from project.engine.data.loaders import (
    DeviceLoader,
    InMemoryTensors,
    Inputs,
    check_loader_settings,
    device_loader,
    host_loader,
    per_device_batch_size,
    usable_workers,
)
from project.engine.data.ordering import augmentation_generator
from project.engine.data.source import Samples, Source, Split, no_labels
from project.engine.data.splits import check_split_settings, hold_out, named, nonempty, present, split_folds
from project.engine.data.streaming import (
    SAMPLE_OVERHEAD,
    MemoryEstimate,
    StreamedFiles,
    check_fits,
    list_files,
    resident_memory,
)
from project.engine.errors import DataError
from project.engine.internals import keep_batch


class InMemoryDataModule(L.LightningDataModule):
    """A source's splits decoded into memory once (or streamed), served by resumable loaders.

    Args:
        source: the data set, e.g. `class_path: project.engine.data.FeatureFile`.
        batch_size: global batch size, split evenly across devices (a recipe means the same on 1 or 8 GPUs).
        val_size: when the source has no validation split, how much of its training split is held out
            (seeded) to choose the best epoch: a count (int) or a share (float in (0, 1)). Never the test split.
        num_workers: loader processes; 0 (in memory, transformed on the device) copies nothing into workers.
        seed: fixes the held-out validation split, the shuffle order and the augmentation stream.
        on_device: keep the whole set on the training device and gather batches there: no host work per
            step, for nets that outrun a DataLoader; costs the set's size in device memory.
        predict_dir: a folder of files for `predict` (by default the test split), named by their paths in it.
        fold, num_folds: cross-validation. All the source's splits are dealt into `num_folds` folds,
            stratified by class and fixed by `seed`; fold `fold` is the test split, the rest is trained on.
            Saved in checkpoints, so `test --ckpt_path` tests the held-out fold; `python -m project.crossval`
            runs every fold.
        in_memory: decode every sample into memory at setup, or (false) stream each from its file in
            `num_workers` workers so memory stays flat (docs/data.md); needs a source with a `listing`.
        fold_groups: deal whole groups (a name in the source's `group_keys`, e.g. "speaker") into the folds
            instead of stratifying by class, so no group is both trained and tested on.
    """

    def __init__(
        self,
        source: Source,
        batch_size: int = 128,
        val_size: int | float = 0.1,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        seed: int = 0,
        on_device: bool = False,
        predict_dir: str | Path | None = None,
        fold: int | None = None,
        num_folds: int | None = None,
        fold_groups: str | None = None,
        in_memory: bool = True,
    ):
        super().__init__()
        check_loader_settings(batch_size, num_workers, on_device, in_memory)
        check_split_settings(val_size, fold, num_folds, fold_groups, source)
        check_served(source, in_memory, num_folds)
        self.save_hyperparameters(ignore=["source"])
        self.source = source
        self.batch_size = batch_size
        self.val_size = val_size
        self.num_workers = usable_workers(num_workers)
        self.pin_memory = pin_memory
        self.seed = seed
        self.on_device = on_device
        self.predict_dir = Path(predict_dir) if predict_dir is not None else None
        self.fold = fold
        self.num_folds = num_folds
        self.fold_groups = fold_groups
        self.in_memory = in_memory
        self._fold_splits: tuple[Samples, Samples] | None = None
        self.held_out_groups: list[str] | None = None  # the test fold's groups (speakers), once dealt

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.source.classes)

    @property
    def num_classes(self) -> int | None:
        """The class (or label) count; None for targets that are values."""
        return len(self.source.classes) or None

    @property
    def sizes(self) -> dict[str, Any]:
        """The class count, the output size and the source's `input_sizes`, for the net's and the model's
        arguments of those names (engine/sizes.py)."""
        classes = {"num_classes": self.num_classes} if self.num_classes else {}
        return {**classes, "num_outputs": self.source.num_outputs, **self.source.input_sizes}

    @property
    def predict_names(self) -> list[str]:  # the sample behind each row of a `predict` CSV
        return self.predict_set.names

    def prepare_data(self) -> None:
        self.source.prepare()
        where = self.source.location
        if where is not None:  # one process a node; the folder is named as it resolves, so no copy is mistaken
            shown = where if "://" in str(where) else Path(where).resolve()
            rank_zero_info(f"Data: {type(self.source).__name__} from {shown}")

    @property
    def per_device_batch_size(self) -> int:
        # Read at every loader's build, so Lightning's batch-size finder (which sets `batch_size`) reaches them
        return per_device_batch_size(self.batch_size, self.trainer)

    def setup(self, stage: str) -> None:
        per_device_batch_size(self.batch_size, self.trainer)  # a batch that does not split over devices fails here
        if hasattr(self.source, "served_split"):  # LitData chunks: nothing to read or hold out here
            for split, served in served_splits(self.source, stage).items():
                setattr(self, f"{split}_set", served)
        elif stage in ("fit", "validate") and not hasattr(self, "train_set"):
            self.check_memory(("train", "val", "test") if self.num_folds is not None else ("train", "val"))
            train, val = self.fit_splits()
            self.train_set, self.val_set = self.make_dataset(train), self.make_dataset(named(val, "val"))
        if stage == "predict" and self.predict_dir is not None:
            if self.in_memory:
                inputs, names = self.read_predict_dir(self.predict_dir)
            else:
                inputs, names = self.list_predict_dir(self.predict_dir)
            self.predict_set = self.make_dataset(Samples(inputs, no_labels(len(names)), names))
        elif stage in ("test", "predict") and not hasattr(self, "test_set"):
            if self._fold_splits is None:
                self.check_memory(("train", "val", "test") if self.num_folds is not None else ("test",))
            test = self.fold_split()[1] if self.num_folds is not None else named(self._load("test"), "test")
            self.test_set = self.make_dataset(test)
        if stage == "predict" and self.predict_dir is None:
            self.predict_set = self.test_set

    def load_split(self, split: Split) -> Samples | None:
        """The split decoded into memory, or its files listed when streaming (`in_memory` false)."""
        if not self.in_memory:
            return list_files(self.source, split, streaming=True)
        return self.read_split(split)

    def check_memory(self, splits: tuple[Split, ...]) -> None:
        """Before anything is decoded: refuse, in one line, splits the machine has no memory to hold (from their
        listing, in seconds). A source that does not list its files is not checked."""
        if not self.in_memory:
            return
        listed = {split: list_files(self.source, split, streaming=False) for split in splits}
        listed = {split: files for split, files in listed.items() if files is not None}
        if listed:
            names = f"{' and '.join(listed)} split{'s' if len(listed) > 1 else ''}"
            check_fits(self.memory_estimate(listed), f"the {names} of {type(self.source).__name__}")

    def memory_estimate(self, listed: dict[str, Samples]) -> MemoryEstimate:
        """What decoding the `listed` splits into memory costs (`MemoryEstimate`); see `memory_bytes`."""
        sizes = [self.memory_bytes(files) for files in listed.values()]
        counts = [len(files.labels) for files in listed.values()]
        largest = max(range(len(sizes)), key=sizes.__getitem__)
        # The largest split twice at once: built (a source may gather decoded samples, `sample_overhead` each),
        # or copied into its held-out training and validation parts
        building = sizes[largest] + counts[largest] * self.sample_overhead
        return MemoryEstimate(
            held=sum(sizes), building=building, statistics=self.statistics_bytes(listed), baseline=resident_memory()
        )

    def statistics_bytes(self, listed: dict[str, Samples]) -> int:
        """What measuring normalisation statistics on the training split allocates (none by default)."""
        return 0

    # Bytes each sample costs beside its data while a split is built: a source that decodes samples one by one
    # and gathers them holds a tensor object and its allocation for each until then
    sample_overhead = SAMPLE_OVERHEAD

    def read_split(self, split: Split) -> Samples | None:
        return self.source.load(split)

    def memory_bytes(self, files: Samples) -> int:
        """About how many bytes `files` take once decoded into memory."""
        return sum(Path(path).stat().st_size for path in files.inputs)

    def decoder(self) -> Callable[[Path], Tensor]:
        """One file -> its tensor as the in-memory path holds it; module-level, for worker processes."""
        name = type(self).__name__
        raise DataError(f"{name} has no reader for single files, so it cannot stream; set data.in_memory true.")

    def list_predict_dir(self, folder: Path) -> tuple[list[Path], list[str]]:
        """The files under `folder` that `read_predict_dir` would read, not read, with their names."""
        name = type(self.source).__name__
        raise DataError(f"data.predict_dir is not supported for {name} when streaming; set data.in_memory true.")

    @property
    def skips_bad_files(self) -> bool:
        """Whether the source leaves unreadable files out (its `skip_bad_files`), also when streaming."""
        return bool(getattr(self.source, "skip_bad_files", False))

    def make_dataset(self, samples: Samples) -> Dataset:
        if self.in_memory:
            return InMemoryTensors(samples)
        return StreamedFiles(samples, self.decoder(), self.batch_inputs(), skip_bad_files=self.skips_bad_files)

    def batch_inputs(self) -> Callable[[list[Tensor]], Inputs]:
        """A batch's decoded samples -> its inputs, as the in-memory path hands them over."""
        return torch.stack

    def read_predict_dir(self, folder: Path) -> tuple[Inputs | list[Tensor], list[str]]:
        """Every file under `folder`, read, with its name (its path in the folder)."""
        raise DataError(
            f"data.predict_dir is not supported for {type(self.source).__name__}: there is no reader for a "
            "folder of such files. Leave it unset to predict the test split."
        )

    def augment(self, inputs: Inputs, generator: torch.Generator) -> Inputs:
        """A training batch's inputs as the net sees them, randomness drawn from `generator` only."""
        return self.transform(inputs)

    def transform(self, inputs: Inputs) -> Inputs:
        """An evaluation batch's inputs as the net sees them."""
        return inputs

    def train_dataloader(self) -> DataLoader | DeviceLoader:
        loader = self._loader(self.train_set, train=True)
        if len(loader) == 0:
            raise DataError(
                f"the training split has {len(self.train_set)} samples, fewer than one batch of "
                f"{self.per_device_batch_size} per device, so no full batch could be drawn; lower data.batch_size."
            )
        return loader

    def val_dataloader(self) -> DataLoader | DeviceLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader | DeviceLoader:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader | DeviceLoader:
        return self._loader(self.predict_set)

    def on_after_batch_transfer(self, batch: tuple[Inputs, Any], dataloader_idx: int) -> tuple[Inputs, Any]:
        if isinstance(batch, DataError):  # a file a streaming worker could not read (StreamedFiles)
            raise batch
        inputs, labels = batch
        if self.trainer is not None and self.trainer.training:
            device = targets.device_of(labels)
            return self.augment(inputs, augmentation_generator(self.trainer, self.seed, device)), labels
        return self.transform(inputs), labels

    def _loader(self, dataset: Dataset, train: bool = False) -> DataLoader | DeviceLoader:
        if hasattr(dataset, "loader"):  # LitData's own loader: its sharding, shuffling and saved position
            size, workers = self.per_device_batch_size, self.num_workers
            return dataset.loader(size, train=train, seed=self.seed, num_workers=workers, batch=self.batch_inputs())
        if self.on_device:
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            inputs, labels = dataset.device_tensors(device)
            return device_loader(inputs, labels, self.trainer, self.per_device_batch_size, train=train, seed=self.seed)
        workers = {"num_workers": self.num_workers, "pin_memory": self.pin_memory, "collate_fn": keep_batch}
        return host_loader(dataset, self.trainer, self.per_device_batch_size, train=train, seed=self.seed, **workers)

    def fit_splits(self) -> tuple[Samples, Samples]:
        """(train, val) as a fit sees them."""
        if self.num_folds is not None:
            return hold_out(self.fold_split()[0], self.val_size, self.seed, self.source)
        train, val = self._load("train"), self.load_split("val")
        if val is None:
            return hold_out(train, self.val_size, self.seed, self.source)
        return train, nonempty(val, "val", self.source)

    def fold_split(self) -> tuple[Samples, Samples]:
        """(the other folds, fold `fold`) of the pool: every split the source has, each sample named."""
        if self._fold_splits is None:
            parts = {split: self.load_split(split) for split in ("train", "val", "test")}
            rest, test, self.held_out_groups = split_folds(
                parts, self.num_folds, self.fold, self.seed, self.source, self.fold_groups
            )
            self._fold_splits = rest, test
        return self._fold_splits

    def _load(self, split: Split) -> Samples:
        return nonempty(present(self.load_split(split), split, self.source), split, self.source)
