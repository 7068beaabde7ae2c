"""Data larger than memory: in memory vs streamed from files vs LitData chunks, on generated image folders.

    python benchmarks/streaming.py --root /tmp/streaming_bench --sizes 10000 100000
    python benchmarks/streaming.py --root /tmp/sb --sizes 300 --batches 3 --steps 2   # a smoke test

Generates `<root>/<n>/train/<class>/<i>.jpg` (64x64 JPEG, 10 classes; kept for the next run), then
prints one table:

- peak RSS: a short fit (`--steps` training batches, 2 validation batches, a small ResNet) in a process
  of its own, `data.in_memory` true and false: the main process's (the kernel's, `os.wait4`) and the
  sum over it and its loader workers (sampled, benchmarks/rss.py), RSS and PSS (PSS shares the pages
  the forked workers share with the main process among them);
- images/s of a pass of `--batches` training batches through the loader alone, and through the loader
  and the training augmentation (random translation, flip, normalisation on the CPU, in the main
  process, as a fit does it on the CPU), the best of `--repeats` alternating passes: the streamed
  `ImageFolder`, torchvision's `ImageFolder` + `DataLoader` with the same workers, batch and decode
  (Pillow, shorter side resized, centre crop), and LitData's loader over the set's optimized chunks.
  The augmentation is the same for all, so the loaders are compared alone; with it, the augmentation's
  own cost (one CPU) bounds them all;
- the time `python -m project.optimize` takes to write those chunks;
- resume: from a loader given a mid-epoch position (half the epoch done) to its first batch, against
  a fresh loader's first batch.
Throughput, conversion and resume are measured on the smallest size only.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's project, and benchmarks/rss.py
CLASSES = tuple(f"class{i}" for i in range(10))
SIZE = 64
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
MODES = ("streamed", "in memory", "LitData")


def make_folder(root: Path, count: int) -> Path:
    """`count` 64x64 JPEGs in 10 class folders (a class colour plus noise); reused when complete."""
    done = root / ".complete"
    if done.is_file():
        return root
    rng = np.random.default_rng(0)
    palette = rng.integers(30, 225, size=(len(CLASSES), 3))
    for i in range(count):
        label = i % len(CLASSES)
        folder = root / "train" / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = palette[label] + rng.normal(0, 25, size=(SIZE, SIZE, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i:06d}.jpg", quality=90)
    done.touch()
    return root


def data_args(folder: Path, in_memory: bool, workers: int, batch: int) -> list[str]:
    return [
        "--data=project.engine.data.ImageDataModule",
        "--data.source=project.engine.data.ImageFolder",
        f"--data.source.init_args.root={folder}",
        f"--data.source.init_args.image_size={SIZE}",
        f"--data.in_memory={str(in_memory).lower()}",
        f"--data.num_workers={workers if not in_memory else 0}",
        f"--data.batch_size={batch}",
        "--data.val_size=0.05",
        f"--data.mean=[{','.join(map(str, MEAN))}]",
        f"--data.std=[{','.join(map(str, STD))}]",
    ]


def litdata_args(chunks: Path, workers: int, batch: int) -> list[str]:
    return [
        "--data=project.engine.data.ImageDataModule",
        "--data.source=project.engine.data.LitDataImages",
        f"--data.source.init_args.input_dir={chunks}",
        "--data.in_memory=false",
        f"--data.num_workers={workers}",
        f"--data.batch_size={batch}",
    ]


def convert(folder: Path, chunks: Path, args: argparse.Namespace) -> float | None:
    """Seconds `python -m project.optimize` took, or None when the chunks were kept from a previous run."""
    from project.engine.data.optimize import main as optimize

    if (chunks / "optimized.json").is_file():
        return None
    start = time.perf_counter()
    data = data_args(folder, False, args.workers, args.batch)
    optimize([*data, f"--output_dir={chunks}", f"--num_workers={args.workers}"])
    return time.perf_counter() - start


def peak_rss_mb(data: list[str], args: argparse.Namespace) -> tuple[float, float, float, int]:
    """(main process's peak RSS, peak RSS summed over its process tree, the same in PSS, processes), MB."""
    from benchmarks import rss

    log_dir = Path(args.root) / "logs"
    command = [
        sys.executable,
        "-m",
        "project.cli",
        "fit",
        *data,
        "--model.net.init_args.widths=[16,32,64,128]",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.precision=32-true",
        f"--trainer.limit_train_batches={args.steps}",
        "--trainer.limit_val_batches=2",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.callbacks=[]",
        f"--trainer.logger.init_args.save_dir={log_dir}",
    ]
    peaks = rss.run(command, log_dir.with_suffix(".log"), cwd=ROOT)
    if peaks.returncode:
        raise SystemExit(f"the fit failed; see {log_dir.with_suffix('.log')}")
    return peaks.main / 1e6, peaks.tree_rss / 1e6, peaks.tree_pss / 1e6, peaks.processes


def images_per_second(loader, augment, batches: int) -> float:
    """Images per second over `batches` batches after the first (worker start-up left out), through `augment`
    too unless it is None."""
    iterator = iter(loader)
    next(iterator)
    generator = torch.Generator().manual_seed(0)
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        inputs, _ = next(iterator)
        if augment is not None:
            augment(inputs, generator)
        seen += len(inputs)
    return seen / (time.perf_counter() - start)


def streamed(folder: Path, args: argparse.Namespace, source=None):
    from project.engine.data import ImageDataModule, ImageFolder

    source = source or ImageFolder(folder, image_size=SIZE)
    data = ImageDataModule(
        source, in_memory=False, num_workers=args.workers, batch_size=args.batch, val_size=0.05, mean=MEAN, std=STD
    )
    data.setup("fit")
    return data


def torchvision_loader(folder: Path, args: argparse.Namespace):
    from torchvision import datasets, transforms

    decode = transforms.Compose([transforms.Resize(SIZE), transforms.CenterCrop(SIZE), transforms.PILToTensor()])
    dataset = datasets.ImageFolder(folder / "train", transform=decode)
    return torch.utils.data.DataLoader(
        dataset, batch_size=args.batch, shuffle=True, num_workers=args.workers, drop_last=True, persistent_workers=True
    )


def first_batch_seconds(make_loader) -> float:
    start = time.perf_counter()
    next(iter(make_loader()))
    return time.perf_counter() - start


def resume_seconds(data, state: dict) -> tuple[float, float]:
    """(fresh loader to first batch, loader given a saved mid-epoch `state` to first batch)."""
    fresh = first_batch_seconds(data.train_dataloader)

    def resumed():
        loader = data.train_dataloader()
        loader.load_state_dict(state)
        return loader

    return fresh, first_batch_seconds(resumed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="/tmp/streaming_bench", help="where the generated folders go")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=30, help="batches timed for images/s")
    parser.add_argument("--steps", type=int, default=10, help="training batches of each fit for peak RSS")
    parser.add_argument("--repeats", type=int, default=3, help="alternating passes timed; the best of each is kept")
    parser.add_argument("--no-rss", action="store_true", help="skip the fits (peak RSS)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, help="the fits for peak RSS")
    parser.add_argument("--no-throughput", action="store_true", help="only the fits")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []

    def row(name: str, value: str) -> None:
        rows.append((name, value))
        print(f"{name}: {value}", file=sys.stderr, flush=True)

    folders = {}
    for n in args.sizes:
        start = time.perf_counter()
        folders[n] = make_folder(Path(args.root) / str(n), n)
        row(f"generate {n:,} JPEGs", f"{time.perf_counter() - start:.0f} s (0 when kept from a previous run)")
    rss = {}
    for n in [] if args.no_rss else args.sizes:
        for mode in args.modes:
            if mode == "LitData":
                chunks = Path(args.root) / f"chunks{n}"
                took = convert(folders[n], chunks, args)
                if took is not None:
                    row(f"convert {n:,} images to LitData chunks, {args.workers} workers", f"{took:.0f} s")
                data = litdata_args(chunks, args.workers, 64)
            else:
                data = data_args(folders[n], mode == "in memory", args.workers, 64)
            main_mb, tree_mb, pss_mb, processes = peak_rss_mb(data, args)
            rss[n, mode] = main_mb
            row(f"peak RSS, fit, {n:,} images, {mode}: main process", f"{main_mb:.0f} MB")
            row(
                f"peak RSS, fit, {n:,} images, {mode}: summed over its {processes} processes (PSS)",
                f"{tree_mb:.0f} MB ({pss_mb:.0f} MB)",
            )
    if len(args.sizes) > 1 and not args.no_rss:
        small, large = min(args.sizes), max(args.sizes)
        for mode in args.modes:
            row(f"peak RSS {large:,} / {small:,}, {mode}", f"{rss[large, mode] / rss[small, mode]:.2f}x")
    if args.no_throughput:
        print_table(rows)
        return

    folder = folders[min(args.sizes)]
    data = streamed(folder, args)

    def augment(inputs, generator):
        return data.train_transform(inputs, generator)

    from project.engine.data import LitDataImages

    chunks = Path(args.root) / f"chunks{min(args.sizes)}"
    took = convert(folder, chunks, args)
    if took is not None:
        row(f"convert {min(args.sizes):,} images to LitData chunks, {args.workers} workers", f"{took:.0f} s")
    lit = streamed(folder, args, LitDataImages(str(chunks)))
    loaders = {
        "streamed ImageFolder": data.train_dataloader,
        "torchvision ImageFolder + DataLoader": lambda: torchvision_loader(folder, args),
        "LitData chunks": lit.train_dataloader,
    }
    # The best of alternating passes: on a shared machine a single pass swings by 2x with the others' load
    best = {(name, aug): 0.0 for name in loaders for aug in (False, True)}
    for _ in range(args.repeats):
        for (name, aug), value in best.items():
            rate = images_per_second(loaders[name](), augment if aug else None, args.batches)
            best[name, aug] = max(value, rate)
    for aug in (False, True):
        what = "loader + augmentation" if aug else "loader alone"
        for name in loaders:
            row(f"images/s, {what}: {name}, {args.workers} workers, batch {args.batch}", f"{best[name, aug]:.0f}")
        ratio = best["streamed ImageFolder", aug] / best["torchvision ImageFolder + DataLoader", aug]
        row(f"images/s, {what}: streamed / torchvision", f"{ratio:.2f}x")

    half = len(data.train_dataloader()) // 2
    fresh, resumed = resume_seconds(data, {"epoch": 0, "batches_done": half})
    row(f"streamed: first batch fresh / resumed at batch {half}", f"{fresh:.2f} s / {resumed:.2f} s")

    probe = lit.train_dataloader()
    iterator = iter(probe)
    for _ in range(half):
        next(iterator)
    fresh, resumed = resume_seconds(lit, probe.state_dict())
    del iterator
    row(f"LitData: first batch fresh / resumed at batch {half}", f"{fresh:.2f} s / {resumed:.2f} s")

    print_table(rows)


def print_table(rows: list[tuple[str, str]]) -> None:
    print(f"\n| measure ({os.cpu_count()} CPUs, shared with other jobs) | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
