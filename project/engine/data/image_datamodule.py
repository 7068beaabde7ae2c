"""Images held in memory as uint8 and augmented on the device: any `ImageSource`. A batch is one gather from
an (N, 3, H, W) uint8 tensor (4x less to copy than float32), transformed on its device: no CPU worker sits
between the data and the GPU."""

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from project.engine.data.datamodule import InMemoryDataModule
from project.engine.data.image_files import decode_image_file, find_image_files, read_predict_folder
from project.engine.data.source import ImageSource, Samples
from project.engine.data.streaming import StreamedFiles
from project.engine.data.transforms import ImageEvalTransform, ImageTrainTransform, random_flip
from project.engine.errors import DataError

Stats = tuple[tuple[float, ...], tuple[float, ...]]
# Streamed images whose statistics are measured (no mean/std given or published): this many of the
# training split, decoded once at setup, instead of every image as in memory
STATS_SAMPLE = 2048
# Images converted to float at a time while statistics are measured: memory stays a few MB at any set size
STATS_CHUNK = 256


class ImageDataModule(InMemoryDataModule):
    """Image classification from an `ImageSource`.

    Args:
        source: the data set, e.g. `class_path: project.engine.data.ImageFolder`.
        **kwargs: `InMemoryDataModule`'s (batch_size, val_size, seed, on_device, predict_dir, ...).
            `predict_dir` images may be any size: each is resized and centre-cropped to `image_size`.
        mean, std: per-channel normalisation as fractions of 255; by default the source's published
            statistics, else measured on the training images at setup (streaming: the first 2,048).
            Saved in checkpoints, so evaluating one normalises exactly as its training did.
        translate: random translation of up to this many pixels (crop from reflect padding); 0 for none.
        flip: "random" mirrors each image with probability 1/2 at every step; "alternating" mirrors a
            fixed random half of the set in even epochs and the other half in odd ones (airbench's trick,
            worth most in short runs); "none" for text, digits and anything whose mirror image differs.
    """

    def __init__(
        self,
        source: ImageSource,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        translate: int = 4,
        flip: Literal["random", "alternating", "none"] = "random",
        **kwargs: Any,
    ):
        super().__init__(source, **kwargs)
        if translate < 0:
            raise DataError(f"data.translate (pixels) must be 0 or more, got {translate}.")
        if flip == "alternating" and hasattr(source, "served_split"):
            raise DataError(
                f"data.flip=alternating mirrors a fixed half of the set by index, which {type(source).__name__}'s "
                "chunk-wise shuffling does not keep; use flip: random."
            )
        self.mean = mean if mean is not None else source.mean
        self.std = std if std is not None else source.std
        self.translate = translate
        self.flip = flip
        self._stats: Stats | None = None
        if self.mean is not None and self.std is not None:
            self._make_transforms((self.mean, self.std))

    def setup(self, stage: str) -> None:
        fresh = not hasattr(self, "train_set")
        super().setup(stage)
        if fresh and hasattr(self, "train_set"):
            if self.flip == "alternating":
                # The fixed half mirrored in even epochs; the transform mirrors the whole set in odd ones
                flipper = torch.Generator().manual_seed(self.seed + 1)
                if isinstance(self.train_set, StreamedFiles):
                    # The same draws as random_flip's, applied to each image as it is decoded
                    self.train_set.mirrored = torch.rand(len(self.train_set), generator=flipper) < 0.5
                else:
                    self.train_set.inputs = random_flip(self.train_set.inputs, flipper)
            if self._stats is None:
                self._make_transforms(self._measure(self._stats_images(self.train_set)))

    def sample_train_images(self, n: int) -> Tensor:
        """The first `n` training images as evaluation sees them, (n, C, H, W) float, for a layer set from data
        (airbench's whitening conv): the split is seeded, so every rank computes the same layer."""
        return self.transform(self._first_images(self.train_set, n))

    def read_predict_dir(self, folder: Path) -> tuple[Tensor, list[str]]:
        return read_predict_folder(folder, self.source.image_size, self.source.skip_bad_files)

    def decoder(self) -> Callable[[Path], Tensor]:
        return partial(decode_image_file, size=self.source.image_size)

    def memory_bytes(self, files: Samples) -> int:
        return len(files.labels) * 3 * self.source.image_size**2  # uint8 (N, 3, S, S)

    sample_overhead = 0  # images are decoded straight into one tensor (image_files.decode_stacked)

    def statistics_bytes(self, listed: dict[str, Samples]) -> int:
        if (self.mean is not None and self.std is not None) or "train" not in listed:
            return 0
        # one chunk: its pixels regrouped by channel (uint8), as float32, and squared (float32)
        return min(STATS_CHUNK, len(listed["train"].labels)) * 3 * self.source.image_size**2 * 9

    def list_predict_dir(self, folder: Path) -> tuple[list[Path], list[str]]:
        if not folder.is_dir():
            raise FileNotFoundError(
                f"data.predict_dir {folder.resolve()} does not exist; point it at a folder of images."
            )
        files = find_image_files(folder, self.source.skip_bad_files)  # other files; unreadable images stop the run
        return files, [str(path.relative_to(folder)) for path in files]

    @staticmethod
    def _first_images(dataset: Any, n: int) -> Tensor:
        """The first `n` images of an in-memory or streamed set, uint8 (n, C, H, W)."""
        if isinstance(dataset, StreamedFiles):
            return torch.stack(dataset.first_readable(n))
        if hasattr(dataset, "loader"):  # LitData chunks: the first n in their reading order
            loader = dataset.loader(min(n, 256), train=False, seed=0, num_workers=0, batch=torch.stack)
            images, count = [], 0
            for inputs, _ in loader:
                images.append(inputs)
                count += len(inputs)
                if count >= n:
                    break
            return torch.cat(images)[:n]
        return dataset.inputs[:n]

    def _stats_images(self, dataset: Any) -> Tensor:
        """The training images the statistics are measured on: all in memory, a sample when streaming."""
        return self._first_images(dataset, STATS_SAMPLE) if isinstance(dataset, StreamedFiles) else dataset.inputs

    def augment(self, inputs: Tensor, generator: torch.Generator) -> Tensor:
        self._ensure_stats()
        return self.train_transform(inputs, generator, epoch=self.trainer.current_epoch)

    def transform(self, inputs: Tensor) -> Tensor:
        self._ensure_stats()
        return self.eval_transform(inputs)

    def state_dict(self) -> dict[str, tuple[float, ...]]:
        return {"mean": self._stats[0], "std": self._stats[1]} if self._stats else {}

    def load_state_dict(self, state: dict[str, tuple[float, ...]]) -> None:
        if state:
            self._make_transforms((tuple(state["mean"]), tuple(state["std"])))

    def _ensure_stats(self) -> None:
        if self._stats is None:  # evaluating without fitting and without a checkpoint's statistics
            self._make_transforms(self._measure(self._stats_images(self.make_dataset(self.fit_splits()[0]))))

    def _measure(self, train_images: Tensor) -> Stats:
        """The given mean and std, or the per-channel statistics of the training images, measured a chunk of
        images at a time (all of them as floats at once took 9 bytes a pixel: 2.35 GB for 25,000 at 64x64)."""
        if self.mean and self.std:
            return tuple(self.mean), tuple(self.std)
        channels = train_images.shape[1]
        total = torch.zeros(channels, dtype=torch.float64)
        squares = torch.zeros(channels, dtype=torch.float64)
        for start in range(0, len(train_images), STATS_CHUNK):
            pixels = train_images[start : start + STATS_CHUNK].transpose(0, 1).reshape(channels, -1).float()
            total += pixels.sum(1, dtype=torch.float64)
            squares += pixels.square().sum(1, dtype=torch.float64)
        count = max(train_images[0].numel() // channels * len(train_images), 2)
        mean = total / count
        variance = ((squares - count * mean.square()) / (count - 1)).clamp_min(0)
        mean = self.mean or tuple((mean / 255).tolist())
        std = self.std or tuple((variance.sqrt() / 255).clamp_min(1e-3).tolist())
        return mean, std

    def _make_transforms(self, stats: Stats) -> None:
        self._stats = stats
        self.train_transform = ImageTrainTransform(*stats, pad=self.translate, flip=self.flip)
        self.eval_transform = ImageEvalTransform(*stats)
