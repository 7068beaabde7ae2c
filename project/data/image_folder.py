"""Your own images, one sub-folder per class, decoded once and held in memory as uint8 like CIFAR-10.

Two layouts are accepted:

    data_dir/<class>/*.jpg                   a seeded `val_fraction` of it is held out for validation
    data_dir/train/<class>/*.jpg             the same, plus optional val/ and test/ folders with the
    data_dir/val/<class>/*.jpg  (optional)   same class names: val/ replaces the seeded split, test/
    data_dir/test/<class>/*.jpg (optional)   is what `test` and `predict` use

Class names are the sub-folder names in sorted order, so label i always means the same class. Every
image is decoded with Pillow at `setup`, its shorter side resized to `image_size` and centre-
cropped to a square, so a batch is one gather from an (N, 3, image_size, image_size) uint8 tensor and
augmentation runs on the device (project/data/transforms.py), as for CIFAR-10.
"""

import logging
from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from project.data.image_files import decode_all, find_image_files, read_predict_folder
from project.data.loading import (
    InMemoryImages,
    augmentation_generator,
    make_loader,
    per_device_batch_size,
)
from project.data.transforms import ImageEvalTransform, ImageTrainTransform
from project.errors import DataError
from project.internals import keep_batch

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class ImageFolderDataModule(L.LightningDataModule):
    """Image classification from a folder tree (see the module docstring for the layouts).

    Args:
        data_dir: the folder holding the class folders, or train/ (val/, test/) folders of them.
        image_size: side of the square every image is resized and centre-cropped to.
        batch_size: global batch size, split evenly across devices.
        val_fraction: share of the training images held out for validation when there is no val/.
        num_workers: loader processes; the images are in memory, so 0 is usually fastest.
        seed: fixes the validation split, the shuffle order and the augmentation stream.
        mean, std: per-channel normalisation as fractions of 255; by default measured on the training
            images at setup.
        translate: random translation of up to this many pixels during training; 0 for none.
        flip: mirror a random half of each training batch left-right (off for text, digits, ...).
        skip_bad_files: by default an unreadable file stops setup with its name; with this, each one
            is logged as a warning and left out, and a count is logged at the end.
        predict_dir: a folder of images for `predict` (by default the test/ split); the predictions
            CSV names each file by its path in the folder.
    """

    def __init__(
        self,
        data_dir: str | Path,
        image_size: int = 32,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        seed: int = 0,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        translate: int = 4,
        flip: bool = True,
        skip_bad_files: bool = False,
        predict_dir: str | Path | None = None,
    ):
        super().__init__()
        if batch_size < 1:
            raise DataError(f"data.batch_size must be at least 1, got {batch_size}.")
        if image_size < 1:
            raise DataError(f"data.image_size must be at least 1, got {image_size}.")
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.image_size = image_size
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.mean, self.std = mean, std
        self.translate = translate
        self.flip = flip
        self.skip_bad_files = skip_bad_files
        self.predict_dir = Path(predict_dir) if predict_dir is not None else None
        self._stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # normalisation (mean, std)
        # Read from folder names only, so the CLI can size the model before any image is decoded
        self.roots = find_split_roots(self.data_dir)
        self.classes = find_classes(self.roots["train"])
        self.num_classes = len(self.classes)
        if "val" not in self.roots and not 0 < val_fraction < 1:
            raise DataError(
                f"data.val_fraction={val_fraction} must be between 0 and 1 (exclusive): {self.data_dir} has no "
                "val/ folder, so the validation images are drawn from the training images."
            )

    def setup(self, stage: str) -> None:
        self.per_device_batch_size = per_device_batch_size(self.batch_size, self.trainer)
        if stage in ("fit", "validate") and not hasattr(self, "train_set"):
            images, labels = self._read("train")
            if "val" in self.roots:
                self.train_set = InMemoryImages(images, labels)
                self.val_set = InMemoryImages(*self._read("val"))
            else:
                n_val = round(len(labels) * self.val_fraction)
                if not 0 < n_val < len(labels):
                    raise DataError(
                        f"data.val_fraction={self.val_fraction} of {len(labels)} images in {self.roots['train']} "
                        f"leaves {n_val} for validation and {len(labels) - n_val} for training; both need at "
                        "least one. Add images or change data.val_fraction."
                    )
                order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
                val, train = order[:n_val], order[n_val:]
                self.train_set = InMemoryImages(images[train], labels[train])
                self.val_set = InMemoryImages(images[val], labels[val])
            self._make_transforms(*self._measure(self.train_set.images))
        if stage == "predict" and self.predict_dir is not None:
            images, self.predict_names = read_predict_folder(self.predict_dir, self.image_size, self.skip_bad_files)
            self.predict_set = InMemoryImages(images, torch.full((len(images),), -1))  # -1: no label
        elif stage in ("test", "predict") and not hasattr(self, "test_set"):
            if "test" not in self.roots:
                raise FileNotFoundError(
                    f"{self.data_dir / 'test'} does not exist, so there is nothing to {stage} on. Put held-out "
                    f"images in {self.data_dir / 'test'}/<class>/ (same class names as training), or use "
                    "`validate` to score the validation split."
                )
            self.test_set = InMemoryImages(*self._read("test"))
        if stage == "predict" and self.predict_dir is None:
            self.predict_set = self.test_set
            self.predict_names = [f"test/{i}" for i in range(len(self.test_set))]

    def train_dataloader(self) -> DataLoader:
        # drop_last keeps every step's batch (and BatchNorm statistics) full-sized
        return self._loader(self.train_set, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_set)

    def state_dict(self) -> dict[str, tuple[float, ...]]:
        # Saved in checkpoints, so evaluating one normalises exactly as its training did
        return {"mean": self._stats[0], "std": self._stats[1]} if self._stats else {}

    def load_state_dict(self, state: dict[str, tuple[float, ...]]) -> None:
        if state:
            self._make_transforms(tuple(state["mean"]), tuple(state["std"]))

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int) -> tuple[Tensor, Tensor]:
        images, labels = batch
        if self._stats is None:  # evaluating without fitting and without a checkpoint's statistics
            self._make_transforms(*self._measure(self._read("train")[0]))
        if self.trainer is not None and self.trainer.training:
            return self.train_transform(images, augmentation_generator(self.trainer, self.seed, images.device)), labels
        return self.eval_transform(images), labels

    def _measure(self, train_images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The given mean and std, or the per-channel statistics of the training images."""
        if self.mean is not None and self.std is not None:
            return self.mean, self.std
        pixels = train_images.transpose(0, 1).reshape(3, -1).float() / 255  # (C, N*H*W)
        mean = self.mean or tuple(pixels.mean(1).tolist())
        std = self.std or tuple(pixels.std(1).clamp_min(1e-3).tolist())
        return mean, std

    def _make_transforms(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self._stats = (mean, std)
        flip = "random" if self.flip else "none"
        self.train_transform = ImageTrainTransform(mean, std, pad=self.translate, flip=flip)
        self.eval_transform = ImageEvalTransform(mean, std)

    def _read(self, split: str) -> tuple[Tensor, Tensor]:
        """Decode every image of a split: uint8 (N, 3, S, S) and int64 labels (N,)."""
        root = self.roots[split]
        files, labels = list_images(root, self.classes, self.skip_bad_files)
        images, kept = decode_all(files, self.image_size, self.skip_bad_files)
        if not images:
            raise DataError(f"No readable image is left in {root}; see the warnings above for each file.")
        kept_labels = [labels[i] for i in kept]
        missing = set(range(self.num_classes)) - set(kept_labels)
        if split == "train" and missing:
            names = ", ".join(str(root / self.classes[i]) for i in sorted(missing))
            raise DataError(f"No readable image is left in {names}; every class needs training images.")
        return torch.stack(images), torch.tensor(kept_labels, dtype=torch.int64)

    def _loader(self, dataset: InMemoryImages, shuffle: bool = False, drop_last: bool = False) -> DataLoader:
        if shuffle and drop_last and len(dataset) < self.per_device_batch_size:
            raise DataError(
                f"Only {len(dataset)} training images, fewer than one batch of {self.per_device_batch_size}; "
                "lower data.batch_size."
            )
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


def find_split_roots(data_dir: Path) -> dict[str, Path]:
    """{"train": folder of class folders, and "val"/"test" when present}."""
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"Image folder {data_dir.resolve()} does not exist. Point --data.data_dir at a folder holding one "
            "sub-folder of images per class (or train/, val/, test/ folders of them)."
        )
    if (data_dir / "train").is_dir():
        return {split: data_dir / split for split in SPLITS if (data_dir / split).is_dir()}
    return {"train": data_dir}


def find_classes(root: Path) -> tuple[str, ...]:
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise FileNotFoundError(
            f"{root.resolve()} holds no class folders. Expected one sub-folder per class, e.g. "
            f"{root / 'cat'}/001.jpg and {root / 'dog'}/001.jpg."
        )
    if len(classes) < 2:
        raise DataError(f"{root.resolve()} holds a single class folder ({classes[0]}); classification needs two.")
    return classes


def list_images(root: Path, classes: tuple[str, ...], skip_bad_files: bool = False) -> tuple[list[Path], list[int]]:
    """Every image file under root/<class>/ (recursively), with its class index, in a fixed order."""
    folders = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    unknown = folders - set(classes)
    if unknown:
        raise DataError(
            f"{root} has class folders the training set lacks: {sorted(unknown)} (training classes: "
            f"{list(classes)}). Rename or remove them; a class must be trained on to be evaluated."
        )
    files, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue  # a val/ or test/ folder may lack a class
        found = find_image_files(folder, skip_bad_files)
        if not found:
            raise DataError(
                f"Class folder {folder} holds no images. Add images or delete the folder; an empty class "
                "would still count towards num_classes and could never be predicted correctly."
            )
        files += found
        labels += [label] * len(found)
    return files, labels
