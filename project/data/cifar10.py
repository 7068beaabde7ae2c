"""CIFAR-10: the official python-pickle archive, held in memory as uint8, augmented on the device."""

import pickle
from pathlib import Path
from typing import ClassVar, Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from project.data.device_loader import DeviceLoader
from project.data.download import RemoteArchive, download_and_extract
from project.data.image_files import read_predict_folder
from project.data.loading import (
    InMemoryImages,
    augmentation_generator,
    make_loader,
    per_device_batch_size,
)
from project.data.transforms import ImageEvalTransform, ImageTrainTransform, random_flip
from project.errors import DataError
from project.internals import NUMPY_ARRAY_PICKLE_GLOBALS, keep_batch, numpy_pickle_module

ARCHIVE = RemoteArchive(
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    filename="cifar-10-python.tar.gz",
)
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Per-channel statistics of the training set, as fractions of 255
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class CIFAR10DataModule(L.LightningDataModule):
    """CIFAR-10 with a seeded validation split held out of the 50,000 training images.

    Args:
        data_dir: where `cifar-10-batches-py/` is, or will be extracted to.
        batch_size: global batch size, split evenly across devices so a recipe means the same on
            1 or 8 GPUs.
        val_size: training images held out for validation (the test set is never used to choose).
        download: fetch the official archive (checksum-verified) when the folder is missing.
        num_workers: loader processes. The images are in memory and augmented on the device, so a
            batch is one indexing op; 0 avoids copying the set into worker processes.
        seed: fixes the validation split and the augmentation stream.
        on_device: keep the whole set on the training device and gather batches there (a
            `DeviceLoader`): no worker and no host work per step, for nets fast enough to outrun a
            DataLoader. Costs 150 MB of device memory for the uint8 images.
        translate: random translation of up to this many pixels (crop from reflect padding); 0 for none.
        predict_dir: a folder of images (any size; resized to 32x32) for `predict`; by default it
            predicts the test split. The predictions CSV names each file by its path in the folder.
        flip: "random" mirrors each image with probability 1/2 at every step; "alternating" mirrors a
            fixed random half of the set in even epochs and the other half in odd ones, so every image
            is seen both ways within two epochs (airbench's trick, worth most in short runs).
    """

    num_classes = len(CLASSES)
    classes = CLASSES

    def __init__(
        self,
        data_dir: str | Path = "data",
        batch_size: int = 512,
        val_size: int = 5000,
        download: bool = True,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        seed: int = 0,
        on_device: bool = False,
        translate: int = 4,
        flip: Literal["random", "alternating", "none"] = "random",
        predict_dir: str | Path | None = None,
    ):
        super().__init__()
        if batch_size < 1:
            raise DataError(f"data.batch_size must be at least 1, got {batch_size}.")
        if val_size < 1:
            raise DataError(
                f"data.val_size must be at least 1 (got {val_size}): checkpoints pick the best epoch by "
                "validation accuracy, which needs a validation split."
            )
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.val_size = val_size
        self.download = download
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.on_device = on_device
        self.predict_dir = Path(predict_dir) if predict_dir is not None else None
        self.flip = flip
        self.train_transform = ImageTrainTransform(MEAN, STD, pad=translate, flip=flip)
        self.eval_transform = ImageEvalTransform(MEAN, STD)

    @property
    def folder(self) -> Path:
        return self.data_dir / FOLDER

    def prepare_data(self) -> None:
        # An extracted folder is read as it is: copies rebuilt from other sources (from a JPEG
        # copy, say) differ in bytes from the official archive yet are valid.
        if self.folder.is_dir():
            return
        if not self.download and not (self.data_dir / ARCHIVE.filename).exists():
            raise FileNotFoundError(self._missing_message())
        download_and_extract(ARCHIVE, self.data_dir, download=self.download)

    def setup(self, stage: str) -> None:
        self.per_device_batch_size = per_device_batch_size(self.batch_size, self.trainer)
        if stage in ("fit", "validate") and not hasattr(self, "train_set"):
            images, labels = read_batches(self.folder, TRAIN_FILES)
            if not 0 < self.val_size < len(labels):
                raise DataError(
                    f"data.val_size={self.val_size} must be between 1 and {len(labels) - 1}, the number of "
                    f"training images in {self.folder} less one."
                )
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
            val, train = order[: self.val_size], order[self.val_size :]
            train_images = images[train]
            if self.flip == "alternating":
                # The fixed half mirrored in even epochs; the transform mirrors the whole set in odd ones
                flipper = torch.Generator().manual_seed(self.seed + 1)
                train_images = random_flip(train_images, flipper)
            self.train_set = InMemoryImages(train_images, labels[train])
            self.val_set = InMemoryImages(images[val], labels[val])
        if stage == "predict" and self.predict_dir is not None:
            images, self.predict_names = read_predict_folder(self.predict_dir, size=32, skip_bad_files=False)
            self.predict_set = InMemoryImages(images, torch.full((len(images),), -1))  # -1: no label
        elif stage in ("test", "predict") and not hasattr(self, "test_set"):
            self.test_set = InMemoryImages(*read_batches(self.folder, TEST_FILES))
        if stage == "predict" and self.predict_dir is None:
            self.predict_set = self.test_set
            self.predict_names = [f"test/{i}" for i in range(len(self.test_set))]

    def train_dataloader(self) -> DataLoader | DeviceLoader:
        # drop_last keeps every step's batch (and BatchNorm statistics) full-sized
        return self._loader(self.train_set, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader | DeviceLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader | DeviceLoader:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader | DeviceLoader:
        return self._loader(self.predict_set)

    def sample_train_images(self, n: int) -> Tensor:
        """The first `n` training images, normalised as the net sees them in evaluation: (n, C, H, W) float.

        For nets that set a layer from data statistics before training (airbench's whitening conv). The
        split is seeded, so every rank gets the same images and computes the same layer.
        """
        return self.eval_transform(self.train_set.images[:n])

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int) -> tuple[Tensor, Tensor]:
        images, labels = batch
        if self.trainer is not None and self.trainer.training:
            generator = augmentation_generator(self.trainer, self.seed, images.device)
            return self.train_transform(images, generator, epoch=self.trainer.current_epoch), labels
        return self.eval_transform(images), labels

    def _loader(
        self, dataset: InMemoryImages, shuffle: bool = False, drop_last: bool = False
    ) -> DataLoader | DeviceLoader:
        if self.on_device:
            return self._device_loader(dataset, shuffle, drop_last)
        return make_loader(
            dataset,
            self.trainer,
            self.per_device_batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            seed=self.seed,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=keep_batch,
        )

    def _device_loader(self, dataset: InMemoryImages, shuffle: bool, drop_last: bool) -> DeviceLoader:
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        # Moved once and kept there: later loaders (and later fits) of this DataModule reuse the copy
        dataset.images, dataset.labels = dataset.images.to(device), dataset.labels.to(device)
        return DeviceLoader(
            dataset.images,
            dataset.labels,
            batch_size=self.per_device_batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            seed=self.seed,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
        )

    def _missing_message(self) -> str:
        return (
            f"CIFAR-10 not found: looked for {self.folder.resolve()} and data.download is false. Either "
            f"set --data.download true on a machine with internet, or download {ARCHIVE.url} by hand and "
            f"extract it into {self.data_dir.resolve()} (creating {FOLDER}/), or point --data.data_dir at "
            "the folder that holds it."
        )


def read_batches(folder: Path, names: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """Read official-format pickle batches into uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    images, labels = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
            raise FileNotFoundError(
                f"{path} is missing ({folder} holds {present or 'nothing'}); the folder looks half-extracted. "
                f"Delete {folder} and run again to re-download, or re-extract the official archive there."
            )
        data, batch_labels = _checked_batch(path, _load_batch(path))
        images.append(torch.from_numpy(data).view(-1, 3, 32, 32))  # rows are channel-major
        labels.append(batch_labels)
    return torch.cat(images), torch.cat(labels)


def _checked_batch(path: Path, entry: dict) -> tuple[np.ndarray, Tensor]:
    """A batch's pixels as uint8 (N, 3072) and labels as int64 (N,), refusing anything a silent cast
    would change: float pixels (truncated), values outside 0..255 (wrapped), non-integer labels."""
    how_to_fix = "re-extract the official archive, or write the batch as the official format is."
    data = np.asarray(entry["data"])
    if data.dtype.kind not in "iu" or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{path} is not a CIFAR-10 batch: 'data' must be integers of shape (N, 3072), got {data.dtype} of "
            f"shape {data.shape}; {how_to_fix}"
        )
    if data.size and (data.min() < 0 or data.max() > 255):
        raise DataError(
            f"{path} holds pixel values from {data.min()} to {data.max()}; CIFAR-10 pixels are 0..255 (uint8): "
            f"{how_to_fix}"
        )
    raw = entry["labels"]
    try:
        labels = np.asarray(raw)
    except ValueError:  # ragged nesting
        labels = np.asarray(raw, dtype=object)
    if labels.dtype.kind not in "iu" or labels.ndim != 1 or len(labels) != len(data):
        raise DataError(
            f"{path} is not a CIFAR-10 batch: 'labels' must be a list of {len(data)} integers (one per image), got "
            f"{labels.dtype} values of shape {labels.shape}; {how_to_fix}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(
            f"labels in {path} fall outside 0..{len(CLASSES) - 1} (found {labels.min()}..{labels.max()}); the "
            "files are not CIFAR-10."
        )
    return data.astype(np.uint8, copy=False), torch.from_numpy(labels.astype(np.int64))


def _load_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        try:
            entry = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise DataError(f"{path} is not a readable CIFAR-10 batch ({err}). Delete it and re-extract.") from err
    if not isinstance(entry, dict) or not {"data", "labels"} <= entry.keys():
        raise DataError(f"{path} is not a CIFAR-10 batch: expected a dict with 'data' and 'labels'.")
    return entry


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The official batches are pickles; this refuses anything in them but numpy arrays and builtins,
    so a tampered file cannot run code when it is read."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = NUMPY_ARRAY_PICKLE_GLOBALS | {
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}; only numpy arrays are expected")
        return super().find_class(numpy_pickle_module(module), name)
