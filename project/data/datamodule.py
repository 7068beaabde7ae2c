"""One DataModule for every in-memory data set: a `Source` says what the data is; this does the rest.

It owns what is the same for every data set: holding out a seeded validation split when the source
has none, the folds of cross-validation (`fold`, `num_folds`), the global batch size (split over
devices), resumable training loaders or a copy of the set on the device (`on_device`), `predict_dir`,
class names and the size checks. Tables of features use it as it is; `ImageDataModule` and
`AudioDataModule` add their inputs' transforms and readers.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from project.data.folds import assign_folds
from project.data.loaders import DeviceLoader, Inputs, device_loader, host_loader, per_device_batch_size
from project.data.ordering import augmentation_generator
from project.data.source import Samples, Source, Split, no_labels
from project.data.streaming import StreamedFiles, check_fits
from project.errors import DataError
from project.internals import keep_batch


class InMemoryTensors(Dataset):
    """Inputs (N, ...) with int64 labels (N,), fetched a whole batch of indices at a time."""

    def __init__(self, samples: Samples):
        self.inputs = samples.inputs
        self.labels = samples.labels
        self.names = samples.names

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.inputs[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        # DataLoader calls this with a whole batch (project.internals.keep_batch): one gather
        # instead of B getitems and a stack
        index = torch.as_tensor(indices)
        return self.inputs[index], self.labels[index]

    def device_tensors(self, device: torch.device) -> tuple[Inputs, Tensor]:
        # Moved once and kept there: later loaders (and later fits) of this DataModule reuse the copy
        self.inputs, self.labels = self.inputs.to(device), self.labels.to(device)
        return self.inputs, self.labels


class InMemoryDataModule(L.LightningDataModule):
    """A source's splits decoded into memory once, served by resumable loaders.

    Args:
        source: the data set, e.g. `class_path: project.data.FeatureFile`.
        batch_size: global batch size, split evenly across devices so a recipe means the same on
            1 or 8 GPUs.
        val_size: when the source has no validation split, how much of its training split is held
            out (seeded by `seed`) to choose the best epoch: a count (an int) or a share (a float in
            (0, 1)). The test split is never used to choose.
        num_workers: loader processes. The data is in memory and transformed on the device, so a
            batch is a few copies; 0 avoids copying the set into worker processes.
        seed: fixes the held-out validation split, the shuffle order and the augmentation stream.
        on_device: keep the whole set on the training device and gather batches there (a
            `DeviceLoader`): no worker and no host work per step, for nets fast enough to outrun a
            DataLoader. Costs the set's size in device memory.
        predict_dir: a folder of files for `predict` (by default it predicts the test split); the
            predictions CSV names each file by its path in the folder.
        fold, num_folds: cross-validation. Every sample the source has (its train, val and test
            splits together: the pool) is dealt into `num_folds` folds, stratified by class and
            fixed by `seed` (project/data/folds.py); fold `fold` is the test split, and the rest is
            trained on, `val_size` of it held out to choose the best epoch. Saved in checkpoints, so
            `test --ckpt_path` tests the fold the run was trained without. `python -m project.crossval`
            runs every fold.
        in_memory: decode every sample into memory at setup (the default), or, with false, stream
            each from its file when its batch is fetched, in `num_workers` worker processes, so memory
            stays flat however large the set (docs/data.md). Splits, folds, order, resume, names and
            augmentation are the same either way. Needs a source that lists its files (`listing`).
        fold_groups: deal whole groups into the folds instead of stratifying by class: the name of
            a per-sample group the source tells (its `group_keys`, e.g. "speaker"), so no group is
            both trained and tested on. With as many folds as groups, each fold is one group.
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
        if batch_size < 1:
            raise DataError(f"data.batch_size must be at least 1, got {batch_size}.")
        if num_workers < 0:
            raise DataError(f"data.num_workers must be 0 (load in the main process) or more, got {num_workers}.")
        if not (val_size >= 1 if isinstance(val_size, int) else 0 < val_size < 1):
            raise DataError(
                f"data.val_size must be at least 1 (a count) or between 0 and 1 (a share), got {val_size}: "
                "checkpoints pick the best epoch by validation accuracy, which needs a validation split."
            )
        check_folds(fold, num_folds, fold_groups, source)
        if hasattr(source, "served_split"):  # LitData chunks (project/data/chunks.py)
            name = type(source).__name__
            if in_memory:
                raise DataError(f"{name} streams its chunks: set data.in_memory false.")
            if num_folds is not None:
                raise DataError(
                    f"{name}'s splits are the chunks' own, so it cannot deal folds; cross-validate on the files "
                    "(data.in_memory false streams them) or optimize each fold into its own folder."
                )
        if on_device and not in_memory:
            raise DataError(
                "data.on_device keeps the data set on the device, so it needs data.in_memory true; "
                "set one of them false."
            )
        self.save_hyperparameters(ignore=["source"])
        self.source = source
        self.batch_size = batch_size
        self.val_size = val_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.on_device = on_device
        self.predict_dir = Path(predict_dir) if predict_dir is not None else None
        self.fold = fold
        self.num_folds = num_folds
        self.fold_groups = fold_groups
        self.in_memory = in_memory
        self._fold_splits: tuple[Samples, Samples] | None = None
        # The groups in the test fold (e.g. the held-out speakers), known once the folds are dealt
        self.held_out_groups: list[str] | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.source.classes)

    @property
    def num_classes(self) -> int:
        return len(self.source.classes)

    @property
    def sizes(self) -> dict[str, Any]:
        """Handed to the net's constructor arguments of the same names (project/sizes.py): the class
        count and what the source tells of its inputs (`Source.input_sizes`)."""
        return {"num_classes": self.num_classes, **self.source.input_sizes}

    @property
    def predict_names(self) -> list[str]:
        """The sample behind each row of a `predict` CSV."""
        return self.predict_set.names

    def prepare_data(self) -> None:
        self.source.prepare()

    @property
    def per_device_batch_size(self) -> int:
        # Read from `batch_size` at every loader's build, so a changed batch size (Lightning's
        # batch-size finder sets `batch_size`) reaches the loaders
        return per_device_batch_size(self.batch_size, self.trainer)

    def setup(self, stage: str) -> None:
        per_device_batch_size(self.batch_size, self.trainer)  # a batch that does not split over devices fails here
        if hasattr(self.source, "served_split"):
            self._setup_served(stage)
            return
        if stage in ("fit", "validate") and not hasattr(self, "train_set"):
            train, val = self.fit_splits()
            self.train_set, self.val_set = self.make_dataset(train), self.make_dataset(self._named(val, "val"))
        if stage == "predict" and self.predict_dir is not None:
            if self.in_memory:
                inputs, names = self.read_predict_dir(self.predict_dir)
            else:
                inputs, names = self.list_predict_dir(self.predict_dir)
            self.predict_set = self.make_dataset(Samples(inputs, no_labels(len(names)), names))
        elif stage in ("test", "predict") and not hasattr(self, "test_set"):
            test = self.fold_split()[1] if self.num_folds is not None else self._named(self._load("test"), "test")
            self.test_set = self.make_dataset(test)
        if stage == "predict" and self.predict_dir is None:
            self.predict_set = self.test_set

    def _setup_served(self, stage: str) -> None:
        """The splits of a source that serves its own (LitData chunks): nothing to read or hold out here."""
        name = type(self.source).__name__
        splits = {split: self.source.served_split(split) for split in ("train", "val", "test")}
        for split, needed in (("train", stage == "fit"), ("val", stage in ("fit", "validate"))):
            if needed and splits[split] is None:
                raise DataError(f"{name} has no {split} split; optimize the data again with one.")
        self.train_set, self.val_set = splits["train"], splits["val"]
        if stage in ("test", "predict"):
            if splits["test"] is None:
                raise FileNotFoundError(f"{name} has no test split, so there is nothing to {stage} on.")
            self.test_set = splits["test"]
        if stage == "predict" and self.predict_dir is not None:
            files, names = self.list_predict_dir(self.predict_dir)
            self.predict_set = StreamedFiles(
                Samples(files, no_labels(len(names)), names), self.decoder(), self.batch_inputs()
            )
        elif stage == "predict":
            self.predict_set = self.test_set

    # --- what the image and audio DataModules adapt ---------------------------------------------

    def load_split(self, split: Split) -> Samples | None:
        """The split decoded into memory, or its files listed when streaming (`in_memory` false)."""
        try:
            files = self.source.listing(split)
        except NotImplementedError:
            if not self.in_memory:
                raise DataError(
                    f"data.in_memory is false but {type(self.source).__name__} cannot be streamed: it does not list "
                    "its files (`listing`). Set data.in_memory true, or convert it to LitData chunks "
                    "(`python -m project.data.optimize`, docs/data.md)."
                ) from None
            files = None
        if not self.in_memory:
            return files
        if files is not None:
            check_fits(self.memory_bytes(files), f"the {split} split of {type(self.source).__name__}")
        return self.read_split(split)

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
        raise DataError(
            f"data.predict_dir is not supported for {type(self.source).__name__} when streaming; "
            "set data.in_memory true."
        )

    def make_dataset(self, samples: Samples) -> Dataset:
        return (
            InMemoryTensors(samples) if self.in_memory else StreamedFiles(samples, self.decoder(), self.batch_inputs())
        )

    def batch_inputs(self) -> Callable[[list[Tensor]], Inputs]:
        """A batch's decoded samples -> its inputs, as the in-memory path hands them over."""
        return torch.stack

    def read_predict_dir(self, folder: Path) -> tuple[Inputs | list[Tensor], list[str]]:
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

    # --- loaders --------------------------------------------------------------------------------

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

    def on_after_batch_transfer(self, batch: tuple[Inputs, Tensor], dataloader_idx: int) -> tuple[Inputs, Tensor]:
        if isinstance(batch, DataError):  # a file a streaming worker could not read (StreamedFiles)
            raise batch
        inputs, labels = batch
        if self.trainer is not None and self.trainer.training:
            return self.augment(inputs, augmentation_generator(self.trainer, self.seed, labels.device)), labels
        return self.transform(inputs), labels

    def _loader(self, dataset: Dataset, train: bool = False) -> DataLoader | DeviceLoader:
        if hasattr(dataset, "loader"):  # LitData's own loader: its sharding, shuffling and saved position
            return dataset.loader(
                self.per_device_batch_size,
                train=train,
                seed=self.seed,
                num_workers=self.num_workers,
                batch=self.batch_inputs(),
            )
        if self.on_device:
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            inputs, labels = dataset.device_tensors(device)
            return device_loader(inputs, labels, self.trainer, self.per_device_batch_size, train=train, seed=self.seed)
        return host_loader(
            dataset,
            self.trainer,
            self.per_device_batch_size,
            train=train,
            seed=self.seed,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=keep_batch,
        )

    # --- splits ---------------------------------------------------------------------------------

    def fit_splits(self) -> tuple[Samples, Samples]:
        """(train, val) as a fit sees them."""
        if self.num_folds is not None:
            return self._hold_out(self.fold_split()[0])
        train, val = self._load("train"), self.load_split("val")
        return self._hold_out(train) if val is None else (train, self._checked(val, "val"))

    def fold_split(self) -> tuple[Samples, Samples]:
        """(the other folds, fold `fold`) of the pool: every split the source has, each sample named."""
        if self._fold_splits is None:
            parts = [(split, self.load_split(split)) for split in ("train", "val", "test")]
            parts = [self._named(s, split) for split, s in parts if s is not None and len(s.labels)]
            if not parts:
                raise DataError(f"{type(self.source).__name__} holds no samples to deal into folds.")
            pool = Samples.concat(parts)
            groups = None
            if self.fold_groups is not None:
                groups = [self.source.group(self.fold_groups, name) for name in pool.names]
            folds = assign_folds(pool.names, pool.labels, self.num_folds, self.seed, groups, self.classes)
            held_out = folds == self.fold
            if groups is not None:
                self.held_out_groups = sorted({g for g, out in zip(groups, held_out.tolist(), strict=True) if out})
            rest, test = held_out.logical_not().nonzero().squeeze(1), held_out.nonzero().squeeze(1)
            self._fold_splits = pool.select(rest), pool.select(test)
        return self._fold_splits

    def _load(self, split: Split) -> Samples:
        samples = self.load_split(split)
        if samples is None:
            name = type(self.source).__name__
            hint = (
                f" Give it one ({name}'s documentation says how; an image folder's is root/test/<class>/), score "
                "the validation split with `validate`, or test on folds of the data it has: `python -m "
                "project.crossval` (README, Cross-validation)."
            )
            raise FileNotFoundError(
                f"{name} has no {split} split, so there is nothing to {split} on.{hint if split == 'test' else ''}"
            )
        return self._checked(samples, split)

    def _checked(self, samples: Samples, split: Split) -> Samples:
        if len(samples.labels) == 0:
            raise DataError(
                f"the {split} split of {type(self.source).__name__} is empty; check the data set's split settings."
            )
        return samples

    def _hold_out(self, train: Samples) -> tuple[Samples, Samples]:
        """(train, val): a seeded `val_size` of the training samples held out for validation."""
        n = len(train.labels)
        n_val = self.val_size if isinstance(self.val_size, int) else round(n * self.val_size)
        if not 0 < n_val < n:
            if isinstance(self.val_size, int):
                raise DataError(
                    f"data.val_size={self.val_size} must be between 1 and {n - 1}, the number of training "
                    f"samples of {type(self.source).__name__} less one."
                )
            raise DataError(
                f"data.val_size={self.val_size} of {n} training samples leaves {n_val} for validation and "
                f"{n - n_val} for training; both need at least one. Add data or change data.val_size."
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        return train.select(order[n_val:]), train.select(order[:n_val])

    @staticmethod
    def _named(samples: Samples, split: str) -> Samples:
        if samples.names is not None:
            return samples
        return samples._replace(names=[f"{split}/{i}" for i in range(len(samples.labels))])


def check_folds(fold: int | None, num_folds: int | None, fold_groups: str | None, source: Source) -> None:
    """Refuse fold settings that cannot work, naming the key, before any data is read."""
    if num_folds is None:
        if fold is not None:
            raise DataError(f"data.fold={fold} needs data.num_folds, the number of folds the data is dealt into.")
        if fold_groups is not None:
            raise DataError(f"data.fold_groups={fold_groups!r} needs data.num_folds and data.fold (cross-validation).")
        return
    if num_folds < 2:
        raise DataError(f"data.num_folds must be at least 2, got {num_folds}: one fold leaves nothing to train on.")
    if fold is None:
        raise DataError(
            f"data.num_folds={num_folds} needs data.fold, the fold to test on (0 to {num_folds - 1}); "
            "`python -m project.crossval` runs them all."
        )
    if not 0 <= fold < num_folds:
        raise DataError(f"data.fold must be between 0 and {num_folds - 1} (data.num_folds={num_folds}), got {fold}.")
    if fold_groups is not None and fold_groups not in source.group_keys:
        known = f"it tells {', '.join(source.group_keys)}" if source.group_keys else "it tells none"
        name = type(source).__name__
        raise DataError(
            f"data.fold_groups={fold_groups!r}: {name} cannot tell a sample's {fold_groups} ({known}). "
            "Leave data.fold_groups unset to stratify the folds by class."
        )
