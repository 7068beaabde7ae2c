"""Training from LitData's optimized chunks, in a local folder or object storage (`s3://`, `gs://`, ...).

`python -m project.optimize` writes a source's splits as chunks with a `project.json` of what the net
and transforms need; the sources here read them back, and LitData's `StreamingDataset` and
`StreamingDataLoader` do the rest (caching, chunk-wise shuffling, sharding, the loader's position in
checkpoints). The splits are the chunks' own: no `val_size` hold-out and no cross-validation (folds would
each need their own conversion). An optional extra: `pip install -e ".[stream]"`.
"""

import json
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from project.engine.data.source import AudioSource, ImageSource, Samples, Split
from project.engine.errors import ConfigError, DataError

META = "project.json"
INSTALL = 'LitData is not installed; `pip install -e ".[stream]"` (or `pip install litdata`) adds it.'


def require_litdata() -> Any:
    try:
        import litdata
    except ImportError:
        raise ConfigError(INSTALL) from None
    return litdata


def read_meta(input_dir: str) -> dict[str, Any]:
    """`project.json` of an optimized folder, from disk or, for a URL, through LitData's downloader."""
    if "://" not in input_dir:  # a folder, not a URL
        path = Path(input_dir) / META
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: {input_dir} is not a folder written by `python -m project.optimize`."
            )
        return json.loads(path.read_text())
    from litdata.streaming.downloader import get_downloader

    require_litdata()
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / META
        get_downloader(input_dir, tmp, []).download_file(f"{input_dir.rstrip('/')}/{META}", str(local))
        return json.loads(local.read_text())


class ChunkSplit:
    """One split of an optimized folder and its LitData loader; predictions are named `<split>/<n>` (no files)."""

    def __init__(self, input_dir: str, split: Split, size: int, cache_dir: str | None):
        self.input_dir = f"{input_dir.rstrip('/')}/{split}"
        self.split = split
        self.size = size
        self.cache_dir = cache_dir

    def __len__(self) -> int:
        return self.size

    @property
    def names(self) -> list[str]:
        return [f"{self.split}/{i}" for i in range(self.size)]

    def loader(
        self, batch_size: int, *, train: bool, seed: int, num_workers: int, batch: Callable[[list[Tensor]], Any]
    ) -> Any:
        litdata = require_litdata()
        dataset = litdata.StreamingDataset(
            self.input_dir, cache_dir=self.cache_dir, shuffle=train, drop_last=train, seed=seed
        )
        return litdata.StreamingDataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=num_workers,
            drop_last=train,
            collate_fn=partial(collate, batch=batch),
        )


def collate(items: list[dict[str, Any]], batch: Callable[[list[Tensor]], Any]) -> tuple[Any, Tensor]:
    """LitData's samples -> (inputs as the in-memory path batches them, labels (B,))."""
    return batch([item["input"] for item in items]), torch.tensor([item["label"] for item in items])


class Chunks:
    """What the LitData sources share: the folder (or URL), its `project.json`, its splits."""

    def __init__(self, input_dir: str, cache_dir: str | None, kind: str):
        require_litdata()
        self.input_dir = input_dir
        self.cache_dir = cache_dir
        self.meta = read_meta(input_dir)
        if self.meta.get("kind") != kind:
            raise DataError(
                f"{input_dir} holds {self.meta.get('kind')} chunks, not {kind}; use project.engine.data.LitData"
                f"{'Images' if self.meta.get('kind') == 'image' else 'Audio'} with its data module."
            )

    def split(self, split: Split) -> ChunkSplit | None:
        size = self.meta["splits"].get(split)
        return None if not size else ChunkSplit(self.input_dir, split, size, self.cache_dir)


class LitDataImages(ImageSource):
    """Images optimized by `python -m project.optimize`, for `ImageDataModule` with `in_memory: false`.

    Args:
        input_dir: the folder it wrote, or its copy in object storage (`s3://bucket/prefix`, `gs://...`).
        cache_dir: where LitData keeps downloaded chunks (by default its own cache folder).
    """

    def __init__(self, input_dir: str, cache_dir: str | None = None):
        self.chunks = Chunks(input_dir, cache_dir, "image")
        meta = self.chunks.meta
        self.classes = tuple(meta["classes"])
        self.image_size = meta["image_size"]
        self.mean, self.std = tuple(meta["mean"]), tuple(meta["std"])

    @property
    def location(self) -> str:
        return self.chunks.input_dir

    def load(self, split: Split) -> Samples | None:
        raise DataError("LitData chunks are streamed: set data.in_memory false.")

    def served_split(self, split: Split) -> ChunkSplit | None:
        return self.chunks.split(split)


class LitDataAudio(AudioSource):
    """Clips optimized by `python -m project.optimize`, for `AudioDataModule` with `in_memory: false` and the
    `sample_rate` they were written at.

    Args:
        input_dir: the folder it wrote, or its copy in object storage (`s3://bucket/prefix`, `gs://...`).
        cache_dir: where LitData keeps downloaded chunks (by default its own cache folder).
    """

    def __init__(self, input_dir: str, cache_dir: str | None = None):
        self.chunks = Chunks(input_dir, cache_dir, "audio")
        self.classes = tuple(self.chunks.meta["classes"])
        self.chunk_sample_rate = self.chunks.meta["sample_rate"]

    @property
    def location(self) -> str:
        return self.chunks.input_dir

    def load(self, split: Split, sample_rate: int) -> Samples | None:
        raise DataError("LitData chunks are streamed: set data.in_memory false.")

    def served_split(self, split: Split) -> ChunkSplit | None:
        return self.chunks.split(split)


def check_served(source: Any, in_memory: bool, num_folds: int | None) -> None:
    """Refuse data-module settings that chunks, which serve their own splits, cannot honour."""
    if not hasattr(source, "served_split"):
        return
    name = type(source).__name__
    if in_memory:
        raise DataError(f"{name} streams its chunks: set data.in_memory false.")
    if num_folds is not None:
        raise DataError(
            f"{name}'s splits are the chunks' own, so it cannot deal folds; cross-validate on the files "
            "(data.in_memory false streams them) or optimize each fold into its own folder."
        )


def served_splits(source: Any, stage: str) -> dict[str, Any]:
    """{"train", "val"[, "test"]: the split the chunks serve} for `stage`, refusing one that is needed and missing."""
    name = type(source).__name__
    splits = {split: source.served_split(split) for split in ("train", "val", "test")}
    for split, needed in (("train", stage == "fit"), ("val", stage in ("fit", "validate"))):
        if needed and splits[split] is None:
            raise DataError(f"{name} has no {split} split; optimize the data again with one.")
    if stage not in ("test", "predict"):
        del splits["test"]
    elif splits["test"] is None:
        raise FileNotFoundError(f"{name} has no test split, so there is nothing to {stage} on.")
    return splits
