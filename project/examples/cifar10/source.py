"""CIFAR-10: the official python-pickle archive, read into uint8 tensors."""

import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from project.engine.data.download import RemoteArchive, download_and_extract
from project.engine.data.source import ImageSource, Samples, Split
from project.engine.errors import DataError
from project.engine.internals import NUMPY_ARRAY_PICKLE_GLOBALS, numpy_pickle_module

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


class CIFAR10(ImageSource):
    """CIFAR-10 from the official python-pickle archive: 50,000 training and 10,000 test images, 32x32, and no
    validation split (the DataModule holds out `data.val_size` training images).

    Args:
        root: where `cifar-10-batches-py/` is, or will be extracted to.
        download: fetch the official archive (checksum-verified) when the folder is missing.
    """

    classes = CLASSES
    image_size = 32
    mean = MEAN
    std = STD

    def __init__(self, root: str | Path = "data", download: bool = True):
        self.root = Path(root)
        self.download = download

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    @property
    def location(self) -> Path:
        return self.folder

    def prepare(self) -> None:
        # An extracted folder is read as it is: copies rebuilt from other sources (from a JPEG
        # copy, say) differ in bytes from the official archive yet are valid.
        if self.folder.is_dir():
            return
        if not self.download and not (self.root / ARCHIVE.filename).exists():
            raise FileNotFoundError(self._missing_message())
        download_and_extract(ARCHIVE, self.root, download=self.download, extracted=f"{FOLDER}/")

    def load(self, split: Split) -> Samples | None:
        if split == "val":
            return None
        images, labels = read_batches(self.folder, TRAIN_FILES if split == "train" else TEST_FILES)
        return Samples(images, labels)

    def _missing_message(self) -> str:
        return (
            f"CIFAR-10 not found: looked for {self.folder.resolve()} and download is false. Either "
            f"set --data.source.init_args.download true on a machine with internet, or download {ARCHIVE.url} "
            f"by hand and extract it into {self.root.resolve()} (creating {FOLDER}/), or point "
            "--data.source.init_args.root at the folder that holds it."
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
    data = _array(entry["data"])
    if data.dtype.kind not in "iu" or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{path} is not a CIFAR-10 batch: 'data' must be integers of shape (N, 3072), got {_described(data)}; "
            f"{how_to_fix}"
        )
    if data.size and (data.min() < 0 or data.max() > 255):
        raise DataError(
            f"{path} holds pixel values from {data.min()} to {data.max()}; CIFAR-10 pixels are 0..255 (uint8): "
            f"{how_to_fix}"
        )
    labels = _array(entry["labels"])
    if labels.dtype.kind not in "iu" or labels.ndim != 1 or len(labels) != len(data):
        raise DataError(
            f"{path} is not a CIFAR-10 batch: 'labels' must be a list of {len(data)} integers (one per image), got "
            f"{_described(labels)}; {how_to_fix}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(
            f"labels in {path} fall outside 0..{len(CLASSES) - 1} (found {labels.min()}..{labels.max()}); the "
            "files are not CIFAR-10."
        )
    return data.astype(np.uint8, copy=False), torch.from_numpy(labels.astype(np.int64))


def _array(raw: object) -> np.ndarray:
    """`raw` as an array; rows of different lengths (ragged) as an object array, which the checks refuse."""
    try:
        return np.asarray(raw)
    except ValueError:
        rows = list(raw)
        ragged = np.empty(len(rows), dtype=object)
        for i, row in enumerate(rows):
            ragged[i] = row
        return ragged


def _described(array: np.ndarray) -> str:
    if array.dtype == object:
        return f"{len(array)} rows of different lengths or types (ragged)"
    return f"{array.dtype} values of shape {array.shape}"


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
