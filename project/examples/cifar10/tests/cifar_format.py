"""Write small CIFAR-10 stand-ins in the official on-disk format (cifar-10-batches-py pickles)."""

import pickle
import tarfile
from pathlib import Path

import numpy as np

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def learnable_images(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Rows of 3072 uint8 (channel-major) whose class is a colour and a stripe position, plus noise:
    easy enough that a few steps of training beat chance by a wide margin."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    palette = np.random.default_rng(1234).integers(40, 216, (10, 3))  # fixed across splits
    images = rng.normal(0, 20, (n, 3, 32, 32)) + palette[labels][:, :, None, None]
    for i, y in enumerate(labels):
        images[i, :, 3 * y : 3 * y + 3, :] = 250  # a horizontal stripe the random crop cannot hide
    return np.clip(images, 0, 255).astype(np.uint8).reshape(n, -1), labels.tolist()


def write_cifar10(root: Path, per_batch: int = 100, seed: int = 0) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        data, labels = learnable_images(per_batch, seed + i)
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CLASSES, "num_cases_per_batch": per_batch}, f, protocol=2)
    return folder


def write_cifar10_archive(root: Path, per_batch: int = 20) -> Path:
    """The official archive's layout: cifar-10-python.tar.gz holding cifar-10-batches-py/."""
    src = write_cifar10(root / "src", per_batch)
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    return archive


def cifar10_data(data_dir: Path | str = "data", download: bool = True, **kwargs):
    """The shipped recipes' data: the CIFAR-10 source plugged into the image DataModule; `kwargs` are
    the DataModule's (batch_size, val_size, on_device, flip, ...)."""
    from project.engine.data import ImageDataModule
    from project.examples.cifar10 import CIFAR10

    return ImageDataModule(CIFAR10(data_dir, download=download), **kwargs)
