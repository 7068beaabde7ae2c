"""Convert any data set into LitData's optimized chunks, to train from a folder or object storage.

    python -m project.optimize --config configs/my_images.yaml --output_dir chunks/my_images
    python -m project.optimize --config configs/my_sounds.yaml --output_dir chunks/my_sounds --num_workers 4
    python -m project.optimize --config configs/my_sounds.yaml --output_dir s3://bucket/chunks/my_sounds

The config's `data:` section (and any `--data.*`) says what to convert. Each split is written as the fit sees
it (the held-out validation split included), decoded as training would, to `<output_dir>/train`, `val` and
`test`, beside an `optimized.json` of what the net and transforms need. An `s3://`, `gs://` or `r2://` output goes
through LitData's own writer and client, with `--storage_options` (endpoint, credentials) passed through; the
provider's environment (`AWS_ENDPOINT_URL`, ...) works too. Run again with the same arguments, it resumes where
it stopped. Train from the folder or URL with `project.engine.data.LitDataImages` or `LitDataAudio` (docs/data.md).
"""

import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile
from torch import Tensor

from project.engine.data.chunks import META, ChunkStore, is_url, require_litdata
from project.engine.data.datamodule import InMemoryDataModule
from project.engine.data.loaders import usable_workers
from project.engine.data.source import Source, Split
from project.engine.data.targets import is_sequences
from project.engine.errors import DataError, run_command
from project.engine.parser import ProjectArgumentParser
from project.engine.recipes import recipe_path

# The other sections of a recipe, accepted and not used
OTHER_KEYS = (
    "seed_everything", "trainer", "model", "optimizer", "lr_scheduler", "ckpt_path",
    "checkpoint", "last_checkpoint", "predictions",
)  # fmt: skip


class Sample:
    """Index -> what LitData stores for it: {"input": tensor, "label": int}. Sent to LitData's
    worker processes, so it holds the split's dataset (files, or the decoded samples)."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __call__(self, index: int) -> dict[str, Any]:
        inputs, labels = self.dataset.__getitems__([index])
        if isinstance(inputs, tuple):  # audio: (waves (1, T), lengths (1,)) -> the clip without padding
            waves, lengths = inputs
            clip: Tensor = waves[0, : int(lengths[0])]
        else:
            clip = inputs[0]
        return {"input": clip.contiguous(), "label": int(labels[0])}


def splits_of(data: InMemoryDataModule) -> dict[Split, Any]:
    """The datasets a fit and a test would use, by split."""
    data.setup("fit")
    datasets: dict[Split, Any] = {"train": data.train_set, "val": data.val_set}
    try:
        data.setup("test")
        datasets["test"] = data.test_set
    except FileNotFoundError:
        pass  # no test split: nothing to write for it
    return datasets


def meta_of(data: InMemoryDataModule, sizes: dict[str, int]) -> dict[str, Any]:
    meta: dict[str, Any] = {"classes": list(data.classes), "splits": sizes}
    if hasattr(data.source, "image_size"):
        stats = data.state_dict()
        meta.update(kind="image", image_size=data.source.image_size, mean=list(stats["mean"]), std=list(stats["std"]))
    elif hasattr(data, "sample_rate"):
        meta.update(kind="audio", sample_rate=data.sample_rate)
    else:
        raise DataError(f"{type(data).__name__} is neither images nor audio; only those can be optimized.")
    return meta


def optimize(
    data: InMemoryDataModule,
    output_dir: str,
    num_workers: int,
    chunk_bytes: str,
    fast_dev_run: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write `data`'s splits as LitData chunks under `output_dir` (a folder or an object-storage URL); returns its
    `optimized.json`."""
    litdata = require_litdata()
    store = ChunkStore(output_dir, storage_options)  # a URL LitData cannot write is refused here, before any work
    data.prepare_data()
    datasets = splits_of(data)
    if any(is_sequences(dataset.labels) for dataset in datasets.values()):
        raise DataError(
            f"{type(data.source).__name__} has a sequence per sample as its target; LitData chunks hold one class "
            "index a sample. Train from the files instead: data.in_memory false streams them (docs/data.md)."
        )
    meta = meta_of(data, {split: len(dataset) for split, dataset in datasets.items()})
    with _staging(output_dir):
        for split, dataset in datasets.items():
            _write_split(litdata, store, split, dataset, num_workers, chunk_bytes, fast_dev_run)
    store.write_text(json.dumps(meta, indent=1), META)  # through the client that wrote the chunks
    return meta


@contextlib.contextmanager
def _staging(output_dir: str) -> Iterator[None]:
    """For object storage, LitData writes each chunk to a local folder before uploading it: by default the same
    /tmp/chunks for every process on the machine, which two conversions (or any other LitData writer) share and
    clear under each other's feet. A folder of this run's own, removed at the end."""
    if not is_url(output_dir):
        yield
        return
    names = ("DATA_OPTIMIZER_CACHE_FOLDER", "DATA_OPTIMIZER_DATA_CACHE_FOLDER")
    before = {name: os.environ.get(name) for name in names}
    with tempfile.TemporaryDirectory(prefix="project-optimize-") as staging:
        os.environ.update({names[0]: f"{staging}/chunks", names[1]: f"{staging}/data"})
        try:
            yield
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _write_split(
    litdata: Any,
    store: ChunkStore,
    split: Split,
    dataset: Any,
    num_workers: int,
    chunk_bytes: str,
    fast_dev_run: bool,
) -> None:
    target = store.path(split)
    if store.exists(split, "index.json"):
        print(f"{target}: already written, left as it is.", file=sys.stderr)
        return
    print(f"{target}: {len(dataset)} samples", file=sys.stderr)
    litdata.optimize(
        fn=Sample(dataset),
        inputs=list(range(len(dataset))),
        output_dir=target,
        chunk_bytes=chunk_bytes,
        num_workers=num_workers,
        use_checkpoint=True,  # a re-run resumes an interrupted split
        fast_dev_run=fast_dev_run,
        # fork where there is one: spawned workers would each import torch again, for every split
        start_method="fork" if "fork" in multiprocessing.get_all_start_methods() else None,
        storage_options=dict(store.storage_options),
    )


def main(args: list[str] | None = None) -> dict[str, Any]:
    parser = ProjectArgumentParser(prog="python -m project.optimize", description=__doc__.split("\n")[0])
    parser.add_argument("--config", action=ActionConfigFile, help="a recipe (or a file with a data: section)")
    parser.add_subclass_arguments(InMemoryDataModule, "data", required=True)
    parser.add_argument(
        "--output_dir", type=str, required=True, help="where the chunks go: a local folder, or s3://, gs://, r2://"
    )
    parser.add_argument(
        "--storage_options",
        type=dict[str, Any] | None,
        default=None,
        help='passed to LitData\'s object-storage client, e.g. \'{"endpoint_url": "http://127.0.0.1:9000"}\'',
    )
    parser.add_argument("--num_workers", type=int, default=os.cpu_count() or 1, help="processes decoding")
    parser.add_argument("--chunk_bytes", type=str, default="64MB", help="size of each chunk file")
    for key in OTHER_KEYS:
        parser.add_argument(f"--{key}", type=Any, default=None, help="(a recipe's; not used)")
    args = list(sys.argv[1:] if args is None else args)
    args = [_recipe(a, args[i - 1] if i else "") for i, a in enumerate(args)]
    config = parser.instantiate(parser.parse_args(args))
    data = config.data
    if type(data.source).listing is not Source.listing:
        data.in_memory = False  # decoded file by file in the workers, however large the set
    meta = optimize(
        data,
        config.output_dir,
        usable_workers(config.num_workers, "--num_workers"),
        config.chunk_bytes,
        storage_options=config.storage_options,
    )
    print(_yaml_hint(config.output_dir, meta, config.storage_options))
    return meta


def _recipe(arg: str, previous: str) -> str:
    """A `--config` value as a recipe's name or a file (`--config NAME` and `--config=NAME` alike)."""
    if previous == "--config":
        return recipe_path(arg)
    if arg.startswith("--config="):
        return "--config=" + recipe_path(arg.removeprefix("--config="))
    return arg


def _yaml_hint(output_dir: str, meta: dict[str, Any], storage_options: dict[str, Any] | None = None) -> str:
    source = "LitDataImages" if meta["kind"] == "image" else "LitDataAudio"
    rate = f"\n    sample_rate: {meta['sample_rate']}" if meta["kind"] == "audio" else ""
    where = output_dir if is_url(output_dir) else str(Path(output_dir).resolve())
    # Only where the storage is, never a credential: the config is saved with every run
    endpoint = (storage_options or {}).get("endpoint_url")
    options = f"\n        storage_options: {{endpoint_url: {endpoint}}}" if endpoint else ""
    copy = "" if is_url(output_dir) else " (or from its copy at s3://...)"
    return (
        f"Wrote {', '.join(f'{n} {s}' for s, n in meta['splits'].items())} samples to {where}. Train from it"
        f"{copy} with:\ndata:\n  init_args:\n    source:\n"
        f"      class_path: project.engine.data.{source}\n"
        f"      init_args:\n        input_dir: {where}{options}\n"
        f"    in_memory: false{rate}"
    )


if __name__ == "__main__":
    run_command(main)
