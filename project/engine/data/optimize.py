"""Convert any data set into LitData's optimized chunks, to train from a folder or object storage.

    python -m project.optimize --config configs/my_images.yaml --output_dir chunks/my_images
    python -m project.optimize --config fsdd --output_dir chunks/fsdd --num_workers 4

The config's `data:` section (and any `--data.*`) says what to convert. Each split is written as the fit sees
it (the held-out validation split included), decoded as training would, to `<output_dir>/train`, `val` and
`test`, beside a `project.json` of what the net and transforms need. Run again with the same arguments, it
resumes where it stopped. Train from the folder or its upload with `project.engine.data.LitDataImages` or
`LitDataAudio` (docs/data.md).
"""

import json
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile
from torch import Tensor

from project.engine.data.chunks import META, require_litdata
from project.engine.data.datamodule import InMemoryDataModule
from project.engine.data.source import Source, Split
from project.engine.data.targets import is_sequences
from project.engine.errors import DataError, run_command
from project.engine.parser import ProjectArgumentParser
from project.engine.recipes import recipe_path

# The other sections of a recipe, accepted and not used
OTHER_KEYS = ("seed_everything", "trainer", "model", "optimizer", "lr_scheduler", "ckpt_path")


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
    data: InMemoryDataModule, output_dir: str, num_workers: int, chunk_bytes: str, fast_dev_run: bool = False
) -> dict[str, Any]:
    """Write `data`'s splits as LitData chunks under `output_dir`; returns its `project.json`."""
    litdata = require_litdata()
    data.prepare_data()
    datasets = splits_of(data)
    if any(is_sequences(dataset.labels) for dataset in datasets.values()):
        raise DataError(
            f"{type(data.source).__name__} has a sequence per sample as its target; LitData chunks hold one class "
            "index a sample. Train from the files instead: data.in_memory false streams them (docs/data.md)."
        )
    meta = meta_of(data, {split: len(dataset) for split, dataset in datasets.items()})
    out = Path(output_dir)
    for split, dataset in datasets.items():
        target = out / split
        if (target / "index.json").is_file():
            print(f"{target}: already written, left as it is.", file=sys.stderr)
            continue
        print(f"{target}: {len(dataset)} samples", file=sys.stderr)
        litdata.optimize(
            fn=Sample(dataset),
            inputs=list(range(len(dataset))),
            output_dir=str(target),
            chunk_bytes=chunk_bytes,
            num_workers=num_workers,
            use_checkpoint=True,  # a re-run resumes an interrupted split
            fast_dev_run=fast_dev_run,
            # fork where there is one: spawned workers would each import torch again, for every split
            start_method="fork" if "fork" in multiprocessing.get_all_start_methods() else None,
        )
    (out / META).write_text(json.dumps(meta, indent=1))
    return meta


def main(args: list[str] | None = None) -> dict[str, Any]:
    parser = ProjectArgumentParser(prog="python -m project.optimize", description=__doc__.split("\n")[0])
    parser.add_argument("--config", action=ActionConfigFile, help="a recipe (or a file with a data: section)")
    parser.add_subclass_arguments(InMemoryDataModule, "data", required=True)
    parser.add_argument("--output_dir", type=str, required=True, help="where the chunks go (a local folder)")
    parser.add_argument("--num_workers", type=int, default=os.cpu_count() or 1, help="processes decoding")
    parser.add_argument("--chunk_bytes", type=str, default="64MB", help="size of each chunk file")
    for key in OTHER_KEYS:
        parser.add_argument(f"--{key}", type=Any, default=None, help="(a recipe's; not used)")
    args = list(sys.argv[1:] if args is None else args)
    args = [recipe_path(a) if i and args[i - 1] == "--config" else a for i, a in enumerate(args)]
    config = parser.instantiate(parser.parse_args(args))
    data = config.data
    if type(data.source).listing is not Source.listing:
        data.in_memory = False  # decoded file by file in the workers, however large the set
    meta = optimize(data, config.output_dir, config.num_workers, config.chunk_bytes)
    print(_yaml_hint(config.output_dir, meta))
    return meta


def _yaml_hint(output_dir: str, meta: dict[str, Any]) -> str:
    source = "LitDataImages" if meta["kind"] == "image" else "LitDataAudio"
    rate = f"\n    sample_rate: {meta['sample_rate']}" if meta["kind"] == "audio" else ""
    return (
        f"Wrote {', '.join(f'{n} {s}' for s, n in meta['splits'].items())} samples to {output_dir}. Train from it "
        "(or from its copy at s3://...) with:\ndata:\n  init_args:\n    source:\n"
        f"      class_path: project.engine.data.{source}\n"
        f"      init_args:\n        input_dir: {Path(output_dir).resolve()}\n"
        f"    in_memory: false{rate}"
    )


if __name__ == "__main__":
    run_command(main)
