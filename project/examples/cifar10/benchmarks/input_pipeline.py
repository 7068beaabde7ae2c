"""The CIFAR-10 input pipeline on its own: the project's in-memory loader with batched augmentation
against the usual torchvision pipeline, and the loader's share of a training step.

    python project/examples/cifar10/benchmarks/input_pipeline.py DATA_DIR  # DATA_DIR holds cifar-10-batches-py/
    python project/examples/cifar10/benchmarks/input_pipeline.py --synthetic 4096 --repeats 2 --share-steps 2 \\
        --share-extra=--model.net.init_args.widths=[8,16,16,16]  # a smoke test, no data needed

Two measurements, both on one machine in one process run:
1. Images per second for random crop (4-pixel padding) + horizontal flip + normalise at batch 512,
   over `--batches` training batches:
   - project: `ImageDataModule`'s training loader (`ResumableLoader` over the uint8 set in memory, as
     `../configs/cifar10.yaml` configures it) with its batched `train_transform` on `--device`;
   - torchvision: `datasets.CIFAR10` with per-sample `transforms.v2` (RandomCrop(32, padding=4),
     RandomHorizontalFlip, ToImage, ToDtype(float32, scale=True), Normalize) through a shuffled
     `DataLoader(num_workers=--workers)`, each batch moved to `--device`. torchvision checks the
     official files' checksums; for a copy rebuilt in their layout (or `--synthetic`) the same images
     are served its way instead (`PILImages`: a PIL image per sample from the (N, H, W, C) array).
   Each repeat times both, the order alternating; the ratio is the median of the per-repeat ratios.
   The torchvision loader keeps its workers between repeats (`persistent_workers`), and an untimed
   warm-up of a few batches starts them, so worker start-up is not counted against it.
2. The loader's share of a training step of the standard recipe (`../configs/cifar10.yaml` through the
   CLI; narrow it with `--share-extra`): per step, the time in next(loader) + transfer + augmentation
   against the whole step (that plus forward, backward, optimizer and schedule), summed over
   `--share-steps` steps after 2 untimed ones.
The clock is read after `torch.cuda.synchronize()` on a GPU.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets
from torchvision.transforms import v2

from project.engine.cli import main
from project.engine.data import ImageDataModule
from project.engine.data.ordering import augmentation_seed
from project.engine.data.source import ImageSource, Samples, Split
from project.engine.recipes import base_config, recipe_path
from project.examples.cifar10 import CIFAR10

BATCH = 512
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10's, as its source publishes


class SyntheticImages(ImageSource):
    """Random 32x32 uint8 images with CIFAR-10's statistics and classes, for a machine without the data."""

    classes = tuple(str(i) for i in range(10))
    image_size = 32
    mean, std = MEAN, STD

    def __init__(self, count: int):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
        self.labels = torch.randint(0, 10, (count,), generator=generator)

    def load(self, split: Split) -> Samples | None:
        return Samples(self.images, self.labels) if split == "train" else None


class PILImages(Dataset):
    """What `datasets.CIFAR10` serves (a PIL image per sample, then its transform), over given images."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images = images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C), as CIFAR10 keeps them
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def project_pipeline(args: argparse.Namespace):
    """The DataModule as ../configs/cifar10.yaml builds it (translate 4, random flip, no workers)."""
    source = SyntheticImages(args.synthetic) if args.synthetic else CIFAR10(root=args.data_dir, download=False)
    data = ImageDataModule(source, batch_size=BATCH, val_size=0.1 if args.synthetic else 5000, translate=4)
    data.setup("fit")
    return data


def torchvision_loader(args: argparse.Namespace, data: ImageDataModule) -> DataLoader:
    transform = v2.Compose(
        [
            v2.ToImage(),
            v2.RandomCrop(32, padding=4),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ]
    )
    dataset = None
    if not args.synthetic:
        try:
            dataset = datasets.CIFAR10(str(args.data_dir), train=True, transform=transform, download=False)
        except RuntimeError:  # it checks the official files' checksums, which a copy rebuilt in their layout fails
            print("torchvision's CIFAR10 refuses this copy (not the official files): serving the same images its way")
    if dataset is None:
        train = data.source.load("train")  # the whole training split, as datasets.CIFAR10 serves it
        dataset = PILImages(train.inputs, train.labels, transform)
    return DataLoader(
        dataset,
        batch_size=BATCH,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


def time_project(data: ImageDataModule, loader, device: torch.device, batches: int, epoch: int) -> float:
    """Images/s over `batches` batches: gather, transfer, crop + flip + normalise."""
    loader.sampler.set_epoch(epoch)
    sync(device)
    start = time.perf_counter()
    done = 0
    for step, (images, _labels) in enumerate(loader, start=1):
        generator = torch.Generator(device).manual_seed(augmentation_seed(data.seed, 0, step - 1))
        out = data.train_transform(images.to(device, non_blocking=True), generator, epoch=epoch)
        done += len(out)
        if step == batches:
            break
    sync(device)
    return done / (time.perf_counter() - start)


def time_torchvision(loader: DataLoader, device: torch.device, batches: int) -> float:
    sync(device)
    start = time.perf_counter()
    done = 0
    for step, (images, _labels) in enumerate(loader, start=1):
        done += len(images.to(device, non_blocking=True))
        if step == batches:
            break
    sync(device)
    return done / (time.perf_counter() - start)


def throughput(args: argparse.Namespace, device: torch.device) -> dict:
    data = project_pipeline(args)
    ours = data.train_dataloader()
    theirs = torchvision_loader(args, data)
    batches = min(args.batches or len(ours), len(ours), len(theirs))
    time_project(data, ours, device, 3, epoch=0)  # warm-up: allocator, the transform's constants on the device
    time_torchvision(theirs, device, 3)  # warm-up: starts the persistent workers
    project, torchvision = [], []
    for repeat in range(args.repeats):
        if repeat % 2 == 0:
            project.append(time_project(data, ours, device, batches, epoch=repeat))
            torchvision.append(time_torchvision(theirs, device, batches))
        else:
            torchvision.append(time_torchvision(theirs, device, batches))
            project.append(time_project(data, ours, device, batches, epoch=repeat))
        print(
            f"  repeat {repeat}: project {project[-1]:,.0f} images/s, torchvision {torchvision[-1]:,.0f} images/s, "
            f"ratio {project[-1] / torchvision[-1]:.2f}"
        )
    ratios = [p / t for p, t in zip(project, torchvision, strict=True)]
    return {"batches": batches, "project": project, "torchvision": torchvision, "ratios": ratios}


def loader_share(args: argparse.Namespace, device: torch.device, log_dir: str) -> dict:
    """Per training step of the standard recipe: loader time (next + transfer + augmentation) and step time."""
    root = ["--data.source.init_args.root", str(args.data_dir), "--data.source.init_args.download", "false"]
    overrides = [
        f"--config={base_config()}",  # `run=False` reads no default config
        f"--config={recipe_path('cifar10')}",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        *([] if args.synthetic else root),
        # On a CPU the CLI's `accelerator: auto` picks 32-true precision, as a user's fit would get
        *(["--trainer.accelerator=gpu"] if device.type == "cuda" else []),
        *([f"--trainer.precision={args.precision}"] if args.precision else []),
        *args.share_extra,
    ]
    cli = main(overrides, run=False)
    model, data = cli.model, cli.datamodule
    if args.synthetic:  # the recipe's DataModule settings, over synthetic images
        data.source = SyntheticImages(args.synthetic)
        data.val_size = 0.1
    data.setup("fit")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cli.trainer.precision == "bf16-mixed")
    model.to(device).train()
    optimizer = model.optimizer(model.parameters())
    loader = data.train_dataloader()
    scheduler = model.scheduler(optimizer, total_steps=args.share_steps + 2)
    load_s, total_s = [], []
    batches = forever(loader)
    for step in range(1, args.share_steps + 3):
        sync(device)
        start = time.perf_counter()
        images, labels = next(batches)
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        generator = torch.Generator(device).manual_seed(augmentation_seed(data.seed, 0, step - 1))
        inputs = data.train_transform(images, generator, epoch=0)
        sync(device)
        loaded = time.perf_counter()
        with autocast:
            loss = model.loss_fn(model.net(inputs), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        sync(device)
        if step > 2:  # the first steps pay for allocation and autotuning
            load_s.append(loaded - start)
            total_s.append(time.perf_counter() - start)
    return {
        "steps": len(total_s),
        "batch_size": data.batch_size,
        "load_s": load_s,
        "step_s": total_s,
        "share": sum(load_s) / sum(total_s),
        "precision": cli.trainer.precision,
    }


def forever(loader):
    """The loader's batches, epoch after epoch."""
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data_dir", type=Path, nargs="?", help="folder holding cifar-10-batches-py/")
    p.add_argument("--synthetic", type=int, metavar="N", help="N random images instead of CIFAR-10 (no data needed)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=2, help="torchvision DataLoader workers")
    p.add_argument("--repeats", type=int, default=5, help="paired repeats of the throughput measurement")
    p.add_argument("--batches", type=int, help="batches per measurement (default: one epoch)")
    p.add_argument("--share-steps", type=int, default=10, help="timed training steps for the loader's share; 0 skips")
    p.add_argument("--precision", help="trainer.precision for the loader-share steps (e.g. 32-true on a CPU)")
    p.add_argument("--share-extra", action="append", default=[], help="extra CLI override for the standard recipe")
    args = p.parse_args(argv)
    if (args.data_dir is None) == (args.synthetic is None):
        p.error("give DATA_DIR or --synthetic N (one of them)")
    if args.synthetic is not None and args.synthetic < 2 * BATCH:
        p.error(f"--synthetic needs at least {2 * BATCH} images (two batches of {BATCH} after validation)")
    return args


def spread(values: list[float], fmt: str = ",.0f") -> str:
    median = statistics.median(values)
    return f"median {median:{fmt}} (min {min(values):{fmt}}, max {max(values):{fmt}}, n={len(values)})"


def main_benchmark(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    data = f"synthetic ({args.synthetic} images)" if args.synthetic else f"CIFAR-10 in {args.data_dir}"
    print(f"device: {where} (torch {torch.__version__}); data: {data}; batch {BATCH}")
    results = {"throughput": throughput(args, device)}
    if args.share_steps > 0:
        with tempfile.TemporaryDirectory() as log_dir:
            results["share"] = loader_share(args, device, log_dir)
    t = results["throughput"]
    rows = [
        ("device", where),
        ("data", data),
        ("project loader + batched crop/flip/normalise, images/s", spread(t["project"])),
        (f"torchvision v2 per-sample, {args.workers} workers, images/s", spread(t["torchvision"])),
        ("project / torchvision", spread(t["ratios"], ".2f") + f", {t['batches']} batches of {BATCH} each"),
    ]
    if "share" in results:
        s = results["share"]
        rows += [
            ("standard recipe: loader time per step, s", spread(s["load_s"], ".4f")),
            ("standard recipe: whole step, s", spread(s["step_s"], ".4f")),
            (
                "standard recipe: loader's share of a step",
                f"{100 * s['share']:.1f}% (batch {s['batch_size']}, {s['precision']}, {s['steps']} steps)",
            ),
        ]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"| {key.ljust(width)} | {value} |")
    return results


if __name__ == "__main__":
    main_benchmark()
