"""Your own images, one sub-folder per class, decoded once and held in memory as uint8 like CIFAR-10.

    root/<class>/*.jpg                   a seeded `data.val_size` of it is held out for validation
    root/train/<class>/*.jpg             the same, plus optional val/ and test/ folders with the
    root/val/<class>/*.jpg  (optional)   same class names: val/ replaces the seeded split, test/
    root/test/<class>/*.jpg (optional)   is what `test` and `predict` use

Class names are the sorted sub-folder names, so label i always means the same class. Each image's shorter
side is resized to `image_size` and centre-cropped to a square at `setup`.
"""

from pathlib import Path

import torch

from project.engine.data.image_files import decode_stacked, find_image_files
from project.engine.data.source import ImageSource, Samples, Split
from project.engine.data.streaming import listing
from project.engine.errors import DataError

SPLITS = ("train", "val", "test")


class ImageFolder(ImageSource):
    """Image classification from a folder tree (see the module docstring for the layouts).

    Args:
        root: the folder holding the class folders, or train/ (val/, test/) folders of them.
        image_size: side of the square every image is resized and centre-cropped to.
        skip_bad_files: by default an unreadable file stops setup with its name; with this, each one is
            logged as a warning and left out, and a count is logged at the end.
    """

    def __init__(self, root: str | Path, image_size: int = 32, skip_bad_files: bool = False):
        if image_size < 1:
            raise DataError(f"image_size must be at least 1, got {image_size}.")
        self.root = Path(root)
        self.image_size = image_size
        self.skip_bad_files = skip_bad_files
        # Read from folder names only, so the CLI can size the model before any image is decoded
        self.roots = find_split_roots(self.root)
        self.classes = find_classes(self.roots["train"])

    def listing(self, split: Split) -> Samples | None:
        """A split's image files, each named by its path below root."""
        if split not in self.roots:
            return None  # nothing to test on (the DataModule says so), but cross-validation needs no test/
        files, labels = list_images(self.roots[split], self.classes, self.skip_bad_files)
        return listing(list(zip(files, labels, strict=True)), self.root)

    def load(self, split: Split) -> Samples | None:
        """Decode every image of a split: uint8 (N, 3, S, S) and int64 labels (N,)."""
        files = self.listing(split)
        if files is None:
            return None
        root = self.roots[split]
        images, kept = decode_stacked(files.inputs, self.image_size, self.skip_bad_files)
        if not kept:
            raise DataError(f"No readable image is left in {root}; see the warnings above for each file.")
        kept_labels = files.labels[kept].tolist()
        missing = set(range(len(self.classes))) - set(kept_labels)
        if split == "train" and missing:
            names = ", ".join(str(root / self.classes[i]) for i in sorted(missing))
            raise DataError(f"No readable image is left in {names}; every class needs training images.")
        names = [files.names[i] for i in kept]
        return Samples(images, torch.tensor(kept_labels, dtype=torch.int64), names)


def find_split_roots(root: Path) -> dict[str, Path]:
    """{"train": folder of class folders, and "val"/"test" when present}."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"Image folder {root.resolve()} does not exist. Point --data.source.init_args.root at a folder holding one "
            "sub-folder of images per class (or train/, val/, test/ folders of them)."
        )
    if (root / "train").is_dir():
        return {split: root / split for split in SPLITS if (root / split).is_dir()}
    return {"train": root}


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
