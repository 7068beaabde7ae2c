"""Training from LitData's optimized chunks, in a local folder or object storage (`s3://`, `gs://`, `r2://`).

`python -m project.optimize` writes a source's splits as chunks with an `optimized.json` of what the net
and transforms need; the sources here read them back, and LitData's `StreamingDataset` and
`StreamingDataLoader` do the rest (caching, chunk-wise shuffling, sharding, the loader's position in
checkpoints). Object storage is reached through LitData's own client, with `storage_options` (endpoint,
credentials, ...) passed through to it, for the chunks and `optimized.json` alike. Every split's `index.json`
is checked when the source is built: a damaged or foreign chunk folder is one line naming the file, and a
chunk file outside the split's folder is refused. The splits are the chunks' own: no `val_size` hold-out and
no cross-validation (folds would each need their own conversion). An optional extra: `pip install -e ".[stream]"`.
"""

import json
import os
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from project.engine import internals
from project.engine.data.source import AudioSource, ImageSource, Samples, Split
from project.engine.errors import ConfigError, DataError
from project.engine.signals import ignore_in_worker

META = "optimized.json"
INDEX = "index.json"
INSTALL = 'LitData is not installed; `pip install -e ".[stream]"` (or `pip install litdata`) adds it.'
SCHEMES = ("s3", "gs", "r2")  # what LitData's writer and reader reach (litdata.constants._SUPPORTED_PROVIDERS)
AGAIN = "run python -m project.optimize again into a new folder"
# Reading optimized.json and index.json: a wrong endpoint fails in seconds, not after LitData's 1,000 retries
_QUICK_S3 = {"retries": {"max_attempts": 3, "mode": "standard"}, "connect_timeout": 10, "read_timeout": 60}


def require_litdata() -> Any:
    try:
        import litdata
    except ImportError:
        raise ConfigError(INSTALL) from None
    return litdata


def is_url(path: str) -> bool:
    return "://" in str(path)


def check_url(url: str) -> None:
    """Refuse, in one line, a URL that LitData cannot write or read."""
    scheme = str(url).split("://", 1)[0]
    if scheme not in SCHEMES:
        raise ConfigError(
            f"{url}: LitData reads and writes chunks in {', '.join(s + '://' for s in SCHEMES)} object storage or a "
            f"local folder, not {scheme}://; copy the chunks to one of those."
        )


class ChunkStore:
    """A chunk folder: a local path, or a URL read and written through LitData's client with `storage_options`."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None):
        self.root = str(root).rstrip("/") if is_url(root) else str(root)
        self.storage_options = dict(storage_options or {})
        if is_url(self.root):
            check_url(self.root)
            require_litdata()
            if _endpoint(self.storage_options).startswith("http://"):
                internals.allow_http_object_storage()
        self._client: Any = None

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts]) if is_url(self.root) else str(Path(self.root, *parts))

    def client(self) -> Any:
        if self._client is None:
            options = dict(self.storage_options)
            if self.root.startswith(("s3://", "r2://")) and "config" not in options:
                import botocore.config

                options["config"] = botocore.config.Config(**_QUICK_S3)
            self._client = internals.litdata_storage(self.root, options)
        return self._client

    def read_text(self, *parts: str) -> str:
        """The text of a file in the folder; a missing or unreadable one is one line naming it."""
        path = self.path(*parts)
        if not is_url(self.root):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path} does not exist")
            return Path(path).read_text()
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / parts[-1]
            try:
                self.client().download_file(path, str(local))
            except Exception as err:
                if _missing(err):
                    raise FileNotFoundError(f"{path} does not exist") from None
                raise DataError(f"cannot read {path}: {_reason(err)}. {_storage_hint(self)}") from err
            return local.read_text()

    def exists(self, *parts: str) -> bool:
        path = self.path(*parts)
        if not is_url(self.root):
            return Path(path).is_file()
        try:
            return bool(self.client().exists(path))
        except Exception as err:
            raise DataError(f"cannot reach {path}: {_reason(err)}. {_storage_hint(self)}") from err

    def write_text(self, text: str, *parts: str) -> None:
        path = self.path(*parts)
        if not is_url(self.root):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / parts[-1]
            local.write_text(text)
            try:
                self.client().upload_file(str(local), path)
            except Exception as err:
                raise DataError(f"cannot write {path}: {_reason(err)}. {_storage_hint(self)}") from err


def _endpoint(storage_options: dict[str, Any]) -> str:
    return str(
        storage_options.get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or ""
    )


def _missing(err: BaseException) -> bool:
    """Whether object storage said the object is not there (S3's 404 / NoSuchKey, GCS's NotFound)."""
    code = str(((getattr(err, "response", None) or {}).get("Error") or {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound") or type(err).__name__ in ("NotFound", "FileNotFoundError")


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _storage_hint(store: ChunkStore) -> str:
    endpoint = _endpoint(store.storage_options)
    where = f"the endpoint {endpoint}" if endpoint else "the provider's default endpoint"
    return (
        f"It was asked of {where}; set the endpoint and credentials in the source's storage_options (e.g. "
        "endpoint_url) or the provider's environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), "
        "as docs/data.md shows"
    )


def read_meta(input_dir: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """`optimized.json` of an optimized folder or URL, read through the same client as its chunks, checked."""
    store = ChunkStore(input_dir, storage_options)
    path = store.path(META)
    try:
        text = store.read_text(META)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} does not exist: {input_dir} is not a folder written by `python -m project.optimize`."
        ) from None
    meta = _json(text, path)
    kinds = {"image": ("image_size", "mean", "std"), "audio": ("sample_rate",)}
    splits = meta.get("splits") if isinstance(meta, dict) else None
    valid = (
        isinstance(meta, dict)
        and meta.get("kind") in kinds
        and isinstance(meta.get("classes"), list)
        and meta["classes"]
        and isinstance(splits, dict)
        and all(isinstance(n, int) and n >= 0 for n in splits.values())
        and all(key in meta for key in kinds.get(meta.get("kind"), ()))
    )
    if not valid:
        raise DataError(
            f"{path} is not what `python -m project.optimize` writes (kind, classes, splits and the kind's sizes); "
            f"it was edited or damaged: {AGAIN}."
        )
    return meta


def _json(text: str, path: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}): it is damaged; {AGAIN}.") from None


def check_split(store: ChunkStore, split: str, size: int) -> list[str]:
    """The chunk files of `split` as its `index.json` names them, checked: each inside the split's folder, and,
    in a local folder, present, of the size written and with a whole header; `size` samples in all."""
    index_path = store.path(split, INDEX)
    try:
        index = _json(store.read_text(split, INDEX), index_path)
    except FileNotFoundError:
        written = f"the {split} split was not written completely"
        raise DataError(f"{index_path} does not exist: {written}; {AGAIN}.") from None
    chunks = index.get("chunks") if isinstance(index, dict) else None
    if not isinstance(chunks, list) or not chunks:
        raise DataError(f"{index_path} lists no chunks: it is damaged or empty; {AGAIN}.")
    compressed = bool((index.get("config") or {}).get("compression"))
    names, samples = [], 0
    for chunk in chunks:
        name = chunk.get("filename") if isinstance(chunk, dict) else None
        items, length = (chunk.get("chunk_size"), chunk.get("chunk_bytes")) if isinstance(chunk, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(items, int) or not isinstance(length, int):
            raise DataError(f"{index_path} has a chunk entry without filename, chunk_size and chunk_bytes: {AGAIN}.")
        if name in ("", ".", "..") or "/" in name or "\\" in name or Path(name).name != name:
            raise DataError(
                f"{index_path} names the chunk file {name!r}, outside {store.path(split)}: a chunk folder reads only "
                f"its own files, so this index was edited or does not belong here; {AGAIN}."
            )
        if not is_url(store.root):
            _check_chunk_file(Path(store.path(split, name)), items, length, compressed)
        names.append(name)
        samples += items
    if samples != size:
        raise DataError(
            f"{index_path} lists {samples} samples but {store.path(META)} says the {split} split has {size}: the "
            f"split was replaced or is from another conversion; {AGAIN}."
        )
    return names


def _check_chunk_file(path: Path, items: int, length: int, compressed: bool) -> None:
    """A local chunk file as LitData wrote it: uint32 item count, then item count + 1 uint32 offsets, the
    last one the file's end (litdata's `BinaryWriter._create_chunk`)."""
    if not path.is_file():
        raise DataError(f"{path} does not exist, but {path.parent / INDEX} lists it: the split is incomplete; {AGAIN}.")
    actual = path.stat().st_size
    if compressed:
        if actual == 0:
            raise DataError(f"{path} is empty: the chunk is damaged; {AGAIN}.")
        return
    if actual != length:
        raise DataError(
            f"{path} is {actual} bytes, but {path.parent / INDEX} says {length}: the chunk is truncated or "
            f"replaced; {AGAIN}."
        )
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(4 * (items + 2)), dtype="<u4")
    if len(header) != items + 2 or header[0] != items or header[-1] != actual or np.any(np.diff(header[1:]) < 0):
        raise DataError(f"{path} does not start with the header of its {items} samples: the chunk is damaged; {AGAIN}.")


class ChunkSplit:
    """One split of an optimized folder and its LitData loader; predictions are named `<split>/<n>` (no files)."""

    def __init__(
        self,
        input_dir: str,
        split: Split,
        size: int,
        cache_dir: str | None,
        storage_options: dict[str, Any] | None = None,
        num_classes: int | None = None,
        chunk_names: list[str] | None = None,
    ):
        self.input_dir = f"{input_dir.rstrip('/')}/{split}" if is_url(input_dir) else str(Path(input_dir, split))
        self.split = split
        self.size = size
        self.cache_dir = cache_dir
        self.storage_options = dict(storage_options or {})
        self.num_classes = num_classes
        self.chunk_names = chunk_names or []

    def __len__(self) -> int:
        return self.size

    @property
    def names(self) -> list[str]:
        return [f"{self.split}/{i}" for i in range(self.size)]

    def loader(
        self, batch_size: int, *, train: bool, seed: int, num_workers: int, batch: Callable[[list[Tensor]], Any]
    ) -> Any:
        litdata = require_litdata()
        dataset = _checked_dataset_class(litdata)(
            self.input_dir,
            cache_dir=self.cache_dir,
            shuffle=train,
            drop_last=train,
            seed=seed,
            storage_options=self.storage_options,
        )
        dataset.chunk_names = self.chunk_names
        loader = _chunk_loader_class(litdata)(
            dataset,
            batch_size=batch_size,
            num_workers=num_workers,
            drop_last=train,
            collate_fn=partial(collate, batch=batch, num_classes=self.num_classes, where=self.input_dir),
            worker_init_fn=ignore_in_worker if num_workers > 0 else None,
        )
        return loader


_LOADERS: dict[int, type] = {}


def _chunk_loader_class(litdata: Any) -> type:
    """LitData's `StreamingDataLoader`, resumable where Lightning resumes it, and with `mark_trained` and
    `rewind_to_trained` as `ResumableLoader` has them (project.engine.callbacks.StopBetweenSteps)."""
    if id(litdata) not in _LOADERS:

        class ChunkLoader(litdata.StreamingDataLoader):
            _restored = False  # a saved position was loaded and no pass has started from it yet
            _trained: tuple[int, int, int, int] | None = None

            def load_state_dict(self, obj: dict[str, Any]) -> None:
                # The same chunks (the run's config says which) read through this run's cache folder: LitData
                # refused a resume whose cache_dir (or a local folder's path) differs, in a worker, with a traceback
                saved, dataset = obj.get("dataset"), self.dataset
                if isinstance(saved, dict) and saved.get("input_dir_url") == dataset.input_dir.url:
                    here = {"input_dir_path": dataset.input_dir.path, "cache_dir_path": dataset.cache_dir.path}
                    obj = {**obj, "dataset": {**saved, **here}}
                super().load_state_dict(obj)
                self._restored = True
                # A position at the end of an epoch starts the next one afresh. LitData compares it with the
                # whole set's length, not this rank's share, so under DDP it replayed the ended epoch's order
                if self.batch_size and obj.get("num_samples_yielded", 0) >= len(self) * self.batch_size:
                    self.restore = False

            def __iter__(self) -> Any:
                # LitData forgets a loaded position only when a pass runs to its end, which Lightning never
                # asks for (it stops at the loader's length): the pass after a resumed epoch then resumed it
                # again, and yielded nothing. Only the first pass after `load_state_dict` resumes.
                if not self._restored:
                    self.restore = False
                self._restored = False
                yield from super().__iter__()

            def mark_trained(self) -> None:
                self._trained = internals.streaming_loader_position(self)

            def rewind_to_trained(self) -> bool:
                if self._trained is None or self._trained == internals.streaming_loader_position(self):
                    return False
                internals.set_streaming_loader_position(self, self._trained)
                return True

        _LOADERS[id(litdata)] = ChunkLoader
    return _LOADERS[id(litdata)]


_CHECKED: dict[int, type] = {}


def _checked_dataset_class(litdata: Any) -> type:
    """LitData's `StreamingDataset`, whose samples that cannot be read come out as the `DataError` saying so, which
    the DataModule raises in the main process as one line (a worker's exception arrives with its traceback)."""
    if id(litdata) not in _CHECKED:

        class CheckedChunks(litdata.StreamingDataset):
            chunk_names: list[str] = []  # noqa: RUF012

            def __getitem__(self, index: Any) -> Any:
                try:
                    return super().__getitem__(index)
                except Exception as err:
                    try:
                        chunk = int(index.chunk_index)
                    except (AttributeError, TypeError, ValueError):
                        chunk = -1
                    names = self.chunk_names
                    where = names[chunk] if 0 <= chunk < len(names) else "a chunk"
                    return DataError(
                        f"{self.input_dir.path or self.input_dir.url}/{where}: a sample cannot be read "
                        f"({_reason(err)}): the chunk is damaged; {AGAIN}."
                    )

        _CHECKED[id(litdata)] = CheckedChunks
    return _CHECKED[id(litdata)]


def collate(
    items: list[Any], batch: Callable[[list[Tensor]], Any], num_classes: int | None = None, where: str = ""
) -> tuple[Any, Tensor] | DataError:
    """LitData's samples -> (inputs as the in-memory path batches them, labels (B,)); a sample that could not be
    read, or a label outside the classes, as the `DataError` saying so (raised by the DataModule)."""
    bad = next((item for item in items if isinstance(item, DataError)), None)
    if bad is not None:
        return bad
    labels = torch.tensor([item["label"] for item in items])
    if num_classes is not None and len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        wrong = int(labels.max()) if int(labels.max()) >= num_classes else int(labels.min())
        return DataError(
            f"{where}: a sample's label is {wrong}, outside the {num_classes} classes its {META} names: the chunks "
            f"and {META} are not from the same conversion; {AGAIN}."
        )
    return batch([item["input"] for item in items]), labels


class Chunks:
    """What the LitData sources share: the folder (or URL), its `optimized.json`, its splits, all checked."""

    def __init__(self, input_dir: str, cache_dir: str | None, kind: str, storage_options: dict[str, Any] | None):
        require_litdata()
        self.input_dir = str(input_dir)
        self.cache_dir = cache_dir
        self.storage_options = dict(storage_options or {})
        self.meta = read_meta(self.input_dir, self.storage_options)
        if self.meta.get("kind") != kind:
            raise DataError(
                f"{input_dir} holds {self.meta.get('kind')} chunks, not {kind}; use project.engine.data.LitData"
                f"{'Images' if self.meta.get('kind') == 'image' else 'Audio'} with its data module."
            )
        store = ChunkStore(self.input_dir, self.storage_options)
        self.chunk_names = {
            split: check_split(store, split, size) for split, size in self.meta["splits"].items() if size
        }

    def split(self, split: Split) -> ChunkSplit | None:
        size = self.meta["splits"].get(split)
        if not size:
            return None
        return ChunkSplit(
            self.input_dir,
            split,
            size,
            self.cache_dir,
            self.storage_options,
            num_classes=len(self.meta["classes"]),
            chunk_names=self.chunk_names.get(split),
        )


class LitDataImages(ImageSource):
    """Images optimized by `python -m project.optimize`, for `ImageDataModule` with `in_memory: false`.

    Args:
        input_dir: the folder it wrote, or its copy in object storage (`s3://bucket/prefix`, `gs://...`).
        cache_dir: where LitData keeps downloaded chunks (by default its own cache folder).
        storage_options: passed to LitData's object-storage client for the chunks and `optimized.json` alike:
            for S3, boto3's client arguments, e.g. `endpoint_url: http://127.0.0.1:9000` for MinIO
            (credentials are better left to the environment: this config is saved with the run).
    """

    def __init__(self, input_dir: str, cache_dir: str | None = None, storage_options: dict[str, Any] | None = None):
        self.chunks = Chunks(input_dir, cache_dir, "image", storage_options)
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
        storage_options: passed to LitData's object-storage client (see `LitDataImages`).
    """

    def __init__(self, input_dir: str, cache_dir: str | None = None, storage_options: dict[str, Any] | None = None):
        self.chunks = Chunks(input_dir, cache_dir, "audio", storage_options)
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
