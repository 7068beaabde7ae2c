"""Peak resident memory of each shipped recipe's fit on a CPU, and what its data takes in memory; and the
in-memory path's estimate against the measured peak.

    python benchmarks/memory.py --cifar10 CIFAR_DIR --fsdd FSDD_ROOT
    python benchmarks/memory.py --fsdd FSDD_ROOT --recipes fsdd --steps 1  # a smoke test
    python benchmarks/memory.py --estimate JPEG_ROOT --counts 15000 30000 --image-size 64

`--estimate`: JPEG_ROOT holds one folder of images per class (e.g. the CIFAR-10 JPEG tree's train/). For each
count, a folder of that many of its images (links, the same number from each class) is set up in memory by
an `ImageDataModule` (`data.in_memory: true`, no mean/std given, so they are measured, 10% held out), in a
process of its own: the estimate it makes before decoding (and how long that took) is printed against the
process's measured peak RSS; then a 3-step fit of the same data (`python -m project.cli fit`), against the
same estimate, with the RSS summed over its process tree beside the main process's.

Each recipe is fitted for a few steps in a process of its own (`python -m project.cli fit --config
RECIPE --trainer.limit_train_batches 3 --trainer.limit_val_batches 1 --trainer.max_epochs 1`, on the
CPU in float32), and that process's peak resident set size is read from the kernel when it ends
(`os.wait4`, the figure `/usr/bin/time -v` prints as "Maximum resident set size"). The peak of a
process that only imports the project is printed beside it: the rest is the data, the net, its
gradients and optimizer state, and the activations of a step. The data's own size is the sum of the
bytes of every tensor of its train, validation and test splits as the DataModule holds them
(CIFAR-10 as uint8, audio as float16), measured in this process after the fits.
A recipe whose data is not given is skipped, and the table says so.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
sys.path.insert(0, str(ROOT))  # this checkout's project, and benchmarks/rss.py
RECIPES = ("cifar10", "cifar10_fast", "fsdd", "fsdd_speaker", "speech_commands")
DATA_FLAG = {"cifar10": "cifar10", "cifar10_fast": "cifar10", "fsdd": "fsdd", "fsdd_speaker": "fsdd"}
DATA_FLAG["speech_commands"] = "speech_commands"


def data_args(recipe: str, args: argparse.Namespace) -> list[str] | None:
    root = getattr(args, DATA_FLAG[recipe])
    if root is None:
        return None
    return ["--data.source.init_args.root", str(root), "--data.source.init_args.download", "false"]


def peak_rss_mb(command: list[str], log: Path) -> tuple[float, int]:
    """(peak RSS in MB of `command`'s process, its exit status); its output goes to `log`."""
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, proc.returncode  # Linux reports kilobytes


def fit_command(recipe: str, extra: list[str], args: argparse.Namespace, log_dir: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "project.cli",
        "fit",
        "--config",
        recipe,
        *extra,
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.precision=32-true",  # what `accelerator: auto` picks on a CPU
        f"--trainer.limit_train_batches={args.steps}",
        "--trainer.limit_val_batches=1",
        "--trainer.max_epochs=1",
        "--trainer.enable_model_summary=false",
        f"--trainer.logger.init_args.save_dir={log_dir}",
    ]


def data_bytes(recipe: str, extra: list[str], log_dir: str) -> int:
    """Bytes of every tensor in the recipe's train, validation and test splits, as its DataModule holds them."""
    import torch

    from project.engine.cli import main
    from project.engine.recipes import base_config, recipe_path

    configs = [f"--config={base_config()}", f"--config={recipe_path(recipe)}"]  # `run=False` reads no default
    cli = main(
        [*configs, *extra, "--trainer.accelerator=cpu", f"--trainer.logger.init_args.save_dir={log_dir}"], run=False
    )
    data = cli.datamodule
    data.prepare_data()
    data.setup("fit")
    data.setup("test")
    total = 0
    for split in ("train_set", "val_set", "test_set"):
        dataset = getattr(data, split)
        held = [*getattr(dataset, "clips", []), getattr(dataset, "inputs", None), dataset.labels]
        total += sum(t.numel() * t.element_size() for t in held if isinstance(t, torch.Tensor))
    return total


def linked_subset(root: Path, count: int, work: Path) -> Path:
    """`count` images of `root/<class>/` (the same number from each class, in sorted order), linked into a
    folder of their own under `work`; reused when complete."""
    folder = work / f"images{count}"
    if (folder / ".complete").is_file():
        return folder
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    for i, cls in enumerate(classes):
        share = count // len(classes) + (i < count % len(classes))
        (folder / cls.name).mkdir(parents=True, exist_ok=True)
        for path in sorted(cls.iterdir())[:share]:
            target = folder / cls.name / path.name
            if not target.exists():
                target.symlink_to(path.resolve())
    (folder / ".complete").touch()
    return folder


def setup_only(folder: Path, image_size: int) -> None:
    """In this process: the estimate before decoding (printed as ESTIMATE <json>), then the fit's setup."""
    import json
    import time

    start = time.perf_counter()
    from project.engine.data import ImageDataModule, ImageFolder

    data = ImageDataModule(ImageFolder(folder, image_size=image_size), val_size=0.1, batch_size=64)
    imported = time.perf_counter()
    listed = {split: data.source.listing(split) for split in ("train", "val")}
    estimate = data.memory_estimate({split: files for split, files in listed.items() if files is not None})
    decided = time.perf_counter()
    data.setup("fit")
    done = time.perf_counter()
    numbers = {
        "held": estimate.held,
        "building": estimate.building,
        "statistics": estimate.statistics,
        "baseline": estimate.baseline,
        "peak": estimate.peak,
        "decide_s": decided - imported,
        "setup_s": done - decided,
        "import_s": imported - start,
    }
    print("ESTIMATE " + json.dumps(numbers), flush=True)


def estimate_rows(args: argparse.Namespace) -> None:
    import json

    from benchmarks import rss  # here: --setup-only needs none of it

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for count in args.counts:
        folder = linked_subset(Path(args.estimate), count, work)
        log = work / f"setup{count}.log"
        setup = rss.run([sys.executable, __file__, "--setup-only", str(folder), str(args.image_size)], log, cwd=ROOT)
        found = [line for line in log.read_text().splitlines() if line.startswith("ESTIMATE ")]
        if setup.returncode or not found:
            print(log.read_text()[-3000:])
            raise SystemExit(f"the setup of {count} images failed; see above")
        numbers = json.loads(found[-1].split(" ", 1)[1])
        fit = rss.run(
            [
                sys.executable,
                "-m",
                "project.cli",
                "fit",
                "--config",
                str(ROOT / "tests" / "tiny.yaml"),
                "--model.net=project.models.ResNet",
                "--model.net.init_args.widths=[16,32,64,128]",
                "--data=project.engine.data.ImageDataModule",
                "--data.source=project.engine.data.ImageFolder",
                f"--data.source.init_args.root={folder}",
                f"--data.source.init_args.image_size={args.image_size}",
                "--data.val_size=0.1",
                "--data.batch_size=64",
                "--trainer.accelerator=cpu",
                "--trainer.limit_train_batches=3",
                "--trainer.limit_val_batches=1",
                "--trainer.max_epochs=1",
                "--trainer.enable_progress_bar=false",
                f"--trainer.logger.init_args.save_dir={work / 'logs'}",
            ],
            work / f"fit{count}.log",
            cwd=ROOT,
        )
        if fit.returncode:
            print((work / f"fit{count}.log").read_text()[-3000:])
            raise SystemExit(f"the fit of {count} images failed; see above")
        rows.append((count, numbers, setup, fit))
        print(f"{count}: estimate {numbers['peak'] / 1e6:,.0f} MB, setup peak {setup.main / 1e6:,.0f} MB", flush=True)
    mb = 1e6
    print()
    print(
        f"| images ({args.image_size}x{args.image_size}) | estimate: held + building + statistics + process "
        "= peak | decided in | setup: measured peak (estimate / measured) | 3-step fit: main process peak "
        "(estimate / measured) | fit: RSS summed over its process tree |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for count, n, setup, fit in rows:
        parts = " + ".join(f"{n[k] / mb:,.0f}" for k in ("held", "building", "statistics", "baseline"))
        print(
            f"| {count:,} | {parts} = **{n['peak'] / mb:,.0f} MB** | {n['decide_s']:.2f} s | "
            f"{setup.main / mb:,.0f} MB ({n['peak'] / setup.main:.2f}) | {fit.main / mb:,.0f} MB "
            f"({n['peak'] / fit.main:.2f}) | {fit.tree_rss / mb:,.0f} MB ({fit.processes} processes) |"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cifar10", type=Path, help="folder holding cifar-10-batches-py/")
    p.add_argument("--fsdd", type=Path, help="folder holding FSDD's recordings/")
    p.add_argument("--speech-commands", type=Path, help="Speech Commands root, as its recipe's source.root")
    p.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES))
    p.add_argument("--steps", type=int, default=3, help="training steps of each fit")
    p.add_argument("--extra", action="append", default=[], help="extra CLI override for every recipe")
    p.add_argument("--estimate", help="a folder of class folders of images: the in-memory estimate against peaks")
    p.add_argument("--counts", type=int, nargs="+", default=[15000, 30000], help="images for --estimate")
    p.add_argument("--image-size", type=int, default=64, help="image_size for --estimate")
    p.add_argument("--work", default="/tmp/memory_estimate", help="where --estimate links its image folders")
    p.add_argument("--setup-only", nargs=2, help=argparse.SUPPRESS)  # FOLDER SIZE: one measured process
    return p.parse_args(argv)


def main_benchmark(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    args = parse_args(argv)
    if args.setup_only:
        setup_only(Path(args.setup_only[0]), int(args.setup_only[1]))
        return []
    if args.estimate:
        estimate_rows(args)
        return []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        baseline, _ = peak_rss_mb([sys.executable, "-c", "import project.cli"], Path(tmp) / "imports.log")
        print(f"importing the project (python -c 'import project.cli'): peak RSS {baseline:,.0f} MB")
        for recipe in args.recipes:
            extra = data_args(recipe, args)
            if extra is None:
                rows.append((recipe, f"skipped: pass --{DATA_FLAG[recipe].replace('_', '-')}", ""))
                continue
            extra += args.extra
            log = Path(tmp) / f"{recipe}.log"
            peak, code = peak_rss_mb(fit_command(recipe, extra, args, tmp), log)
            if code != 0:
                print(log.read_text()[-3000:])
                rows.append((recipe, f"fit failed (exit {code}); its output is above", ""))
                continue
            size = data_bytes(recipe, extra, tmp)
            rows.append((recipe, f"{peak:,.0f} MB", f"{size / 1e6:,.1f} MB ({size:,} bytes)"))
            print(f"  {recipe}: peak RSS {peak:,.0f} MB, data {size / 1e6:,.1f} MB")
    print()
    print(f"| recipe (fit, {args.steps} steps on the CPU) | peak RSS | data in memory (train + val + test) |")
    print("| --- | --- | --- |")
    print(f"| (imports only) | {baseline:,.0f} MB | |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return rows


if __name__ == "__main__":
    main_benchmark()
