"""What the template costs over a plain PyTorch loop doing the same work: the check to run after touching anything
on the fit path (callbacks, hooks, logging, checkpoints, the CLI's trainer, the task's step).

    python benchmarks/overhead.py                # about 2 minutes on an idle 2-core CPU
    python benchmarks/overhead.py --long         # 10x the steps, same validations: per-step costs cannot hide
    python benchmarks/overhead.py --bare         # also a bare Lightning Trainer: Lightning's own share
    python benchmarks/overhead.py --smoke        # every path once, in seconds: checks, no figure to read
    python benchmarks/overhead.py --threads 1 --clock cpu   # on a busy machine (see below)

No example and no download: synthetic images (`SyntheticImages`) through the engine's `ImageDataModule` (the set
in memory, batches gathered on the device, `data.on_device`), `project.models.ResNet` at small widths, the
classification task's Classifier, SGD with a one-cycle schedule and label smoothing, a validation and its
checkpoints after every epoch: `configs/base.yaml` under `RECIPE` below, through the CLI's own objects, so every
always-on callback, the logger, the checkpoints and the run's config.yaml are in. The plain loop trains the same
net from the same initial weights on the same batches with the same augmentation, optimizer and schedule, and
validates (loss and accuracy, one read-back) as often; it logs, checks and saves nothing: that is the template's.
Both reach the same validation accuracy, or the check says so. Extra `--key value` arguments go to both sides.

1. Paired fits: after one untimed fit of each, `--pairs` pairs, which side goes first alternating, so a machine
   that slows down charges both alike. The figure is the median of the per-pair ratios of `trainer.fit`'s wall
   time to the plain loop's, with the smallest and largest; the ratio of process CPU time beside it moves less
   when other work shares the machine (`--threads 1` keeps torch's threads from waiting on each other then).
2. The split: `--split-runs` more pairs, the template's fit under `project.engine.hook_times.HookTimes`, a
   Lightning profiler that times every hook and splits the fit into training steps, validations (with their
   epoch's end: epoch metrics, checkpoints) and the rest of the fit; the plain loop times the same three. The
   differences are the template's cost per step, per validation and per fit, and each hook of the template's own,
   `self.log` and each torchmetrics `update` is listed with its share (the profiler's own cost measured and taken
   out). `--clock cpu` splits by the main thread's CPU time, for a busy machine.
3. Host reads: one more fit under `HostReads`, which counts the torch calls that read a tensor's value back to the
   host (`.item()`, `bool(t)`, `.tolist()`, `.cpu()`, `nonzero`, ...; each a device sync on a GPU) in each
   training step. Only the steps that log (every `trainer.log_every_n_steps`) may read.

It prints the markdown tables BENCHMARKS.md holds, with the commit, date and machine load.
"""

import argparse
import datetime
import os
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.profilers import Profiler
from torch.overrides import TorchFunctionMode

ROOT = Path(__file__).resolve().parents[1]
# The split's clock (`--clock`): wall time, or the main thread's CPU time, which a loaded machine moves less
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = CLOCKS["wall"]
if str(ROOT) not in sys.path:  # `python benchmarks/overhead.py` from a checkout imports this checkout's project
    sys.path.insert(0, str(ROOT))

from project.engine.cli import main as cli_main  # noqa: E402
from project.engine.data.ordering import augmentation_seed  # noqa: E402
from project.engine.data.source import ImageSource, Samples, Split  # noqa: E402
from project.engine.hook_times import (  # noqa: E402
    HookTimes,
    hook_rows,
    own_cost_per_call,
    own_hooks,
    phase_seconds,
    split_rows,
)
from project.engine.recipes import base_config  # noqa: E402

# The fit both sides do; `--key value` arguments on the command line of this script override it
RECIPE = """
trainer:
  accelerator: cpu
  devices: 1
  precision: 32-true
  max_epochs: 2
  enable_model_summary: false  # printing the table is not training
  logger:
    class_path: project.engine.callbacks.TensorBoardLogger
    init_args: {name: overhead}
model:
  class_path: project.tasks.classification.Classifier
  init_args:
    net:
      class_path: project.models.ResNet
      init_args: {widths: [16, 32, 32], residual: [true, false]}
    optimizer:
      class_path: torch.optim.SGD
      init_args: {lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}
    scheduler:
      class_path: torch.optim.lr_scheduler.OneCycleLR
      init_args: {max_lr: 0.05, pct_start: 0.25}
    label_smoothing: 0.1
data:
  class_path: project.engine.data.ImageDataModule
  init_args:
    source:
      class_path: $source
      init_args: {train: $train, val: $val}
    batch_size: $batch
    on_device: true
    translate: 2
"""


class SyntheticImages(ImageSource):
    """Random 32x32 images of 10 classes, each class tinted its own colour so that a net learns something:
    seeded, so both sides of a pair (and every run) read the same images."""

    classes = tuple(f"class{i}" for i in range(10))
    image_size = 32
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def __init__(self, train: int = 4096, val: int = 512):
        self.counts = {"train": train, "val": val}

    def load(self, split: Split) -> Samples | None:
        if split == "test":
            return None
        generator = torch.Generator().manual_seed(("train", "val").index(split))
        n = self.counts[split]
        labels = torch.randint(0, len(self.classes), (n,), generator=generator)
        tint = torch.rand(len(self.classes), 3, 1, 1, generator=torch.Generator().manual_seed(10)) * 96
        noise = torch.rand(n, 3, 32, 32, generator=generator) * 160
        return Samples((noise + tint[labels]).to(torch.uint8), labels)


def build(args: argparse.Namespace, seed: int, log_dir: str) -> Any:
    """The CLI's model, data module and trainer for RECIPE (over configs/base.yaml), data set up, ready to fit."""
    recipe = string.Template(RECIPE).substitute(
        source=f"{SyntheticImages.__module__}.SyntheticImages", train=args.train, val=args.val, batch=args.batch_size
    )
    cli = cli_main(
        [
            f"--config={base_config()}",
            f"--config={recipe}",
            f"--trainer.max_epochs={args.epochs}",
            f"--trainer.logger.init_args.save_dir={log_dir}",
            f"--seed_everything={seed}",
            f"--data.seed={seed}",
            *args.extra,
        ],
        run=False,
    )
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    return cli


def template_fit(
    args: argparse.Namespace, seed: int, log_dir: str, profiler: Profiler | None = None, bare: bool = False
) -> dict:
    """`trainer.fit` of the CLI's objects, timed. `bare`: the same model and data under a Trainer of Lightning's
    with nothing on (no logger, checkpoints, progress, sanity check or callbacks): Lightning's own share."""
    cli = build(args, seed, log_dir)
    trainer = cli.trainer
    if bare:
        import lightning as L

        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=trainer.max_epochs,
            precision=trainer.precision,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=trainer.log_every_n_steps,
        )
    if profiler is not None:
        trainer.profiler = profiler
        profiler.watch(cli.model)
    wall, cpu, split_total = time.perf_counter(), time.process_time(), clock()
    trainer.fit(cli.model, datamodule=cli.datamodule)
    wall, cpu, split_total = time.perf_counter() - wall, time.process_time() - cpu, clock() - split_total
    return {
        "wall": wall,
        "cpu": cpu,
        "total": split_total,
        "steps": trainer.global_step,
        "validations": trainer.current_epoch,  # one a finished epoch
        "val_acc": float(trainer.callback_metrics.get("val/acc", float("nan"))),
    }


def plain_fit(args: argparse.Namespace, seed: int, log_dir: str) -> dict:
    """The same fit by hand: the net, batches, augmentation, optimizer, schedule and loss of `build`'s objects."""
    cli = build(args, seed, log_dir)
    model, data, epochs = cli.model, cli.datamodule, cli.trainer.max_epochs
    torch.manual_seed(seed)
    device = torch.device("cpu")
    phases = {"steps": 0.0, "validations": 0.0}
    wall, cpu, split_total = time.perf_counter(), time.process_time(), clock()
    model.to(device)
    train, val = data.train_dataloader(), data.val_dataloader()  # no trainer attached: one process
    optimizer = model.optimizer(model.parameters())
    scheduler = model.scheduler(optimizer, total_steps=epochs * len(train))
    step, correct = 0, torch.zeros((), dtype=torch.long)
    for epoch in range(epochs):
        start = clock()
        model.train()
        train.sampler.set_epoch(epoch)
        for images, labels in train:
            step += 1
            # What `augmentation_generator` draws for this batch of a Lightning fit (see cifar10_fast.py)
            generator = torch.Generator(device).manual_seed(augmentation_seed(data.seed, 0, step - 1))
            loss = model.loss_fn(model.net(data.train_transform(images, generator, epoch=epoch)), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        phases["steps"] += clock() - start
        start = clock()
        model.eval()
        total_loss, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        with torch.no_grad():
            for images, labels in val:
                logits = model.net(data.eval_transform(images))
                total_loss += model.loss_fn(logits, labels) * len(labels)
                correct += (logits.argmax(1) == labels).sum()
        accuracy = correct.item() / len(data.val_set)  # the one read-back of a validation
        phases["validations"] += clock() - start
    wall, cpu, split_total = time.perf_counter() - wall, time.process_time() - cpu, clock() - split_total
    return {
        "wall": wall,
        "cpu": cpu,
        "total": split_total,
        "steps": step,
        "validations": epochs,
        "val_acc": accuracy,
        "phases": phases,
    }


# Torch calls that read a value back to the host: on a GPU, each waits for every kernel queued before it
READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.numpy,
    torch.Tensor.cpu,
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.__index__,
    torch.Tensor.__format__,
    torch.Tensor.__repr__,
    torch.Tensor.__array__,
    torch.Tensor.nonzero,
    torch.nonzero,
    torch.Tensor.unique,
    torch.unique,
    torch.masked_select,
    torch.Tensor.masked_select,
    torch.equal,
    torch.allclose,
    torch.Tensor.is_nonzero,
}


class HostReads(TorchFunctionMode):
    """Counts host reads (READS) in each training step: from `on_train_batch_start` (a callback) to the next."""

    def __init__(self) -> None:
        super().__init__()
        self.step: int | None = None
        self.reads: dict[int, list[str]] = defaultdict(list)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if self.step is not None and func in READS:
            self.reads[self.step].append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


class StepMarks:
    """A callback (built lazily: Lightning is imported by then) telling `HostReads` which step runs."""

    def __new__(cls, reads: HostReads):
        import lightning as L

        class Marks(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                reads.step = trainer.global_step + 1  # the step being taken, counted from 1

            def on_train_epoch_end(self, trainer, pl_module):
                reads.step = None

            def on_validation_start(self, trainer, pl_module):
                reads.step = None

        return Marks()


def host_reads(args: argparse.Namespace, log_dir: str) -> tuple[dict[int, list[str]], int, int]:
    """({step: its reads} for the steps that read from the host though they do not log, steps taken,
    log_every_n_steps)."""
    reads = HostReads()
    cli = build(args, 0, log_dir)
    # First of the callbacks, so that a step's reads are counted from its first hook to the next step's, and a
    # validation's (from its first hook) are not
    cli.trainer.callbacks.insert(0, StepMarks(reads))
    with reads:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    every = cli.trainer.log_every_n_steps
    # A step's logging happens after the step is counted: step k logs when k is a multiple of `every`
    unexpected = {step: names for step, names in sorted(reads.reads.items()) if names and step % every}
    return unexpected, cli.trainer.global_step, every


def split(args: argparse.Namespace, log_dir: str, runs: int) -> tuple[dict, dict]:
    """Seconds per step, per validation and per fit of each side (the template's and, with `--bare`, bare Lightning's
    fits under `HookTimes`), medians over `runs` rounds; and each of the template's own hooks, `self.log` and metric
    updates, per unit of its phase (the profiler's own cost taken out)."""
    own = own_cost_per_call(clock)
    rows: dict[str, list[float]] = defaultdict(list)
    hooks: dict[tuple[str, str], list[float]] = defaultdict(list)
    for seed in range(runs):
        for side in sides(args):
            if side == "plain":
                b = plain_fit(args, seed, log_dir)
                phases = {**b["phases"], "fit": b["total"] - sum(b["phases"].values())}
                units = {"steps": b["steps"], "validations": b["validations"], "fit": 1}
            else:
                profiler = HookTimes(clock)
                a = template_fit(args, seed, log_dir, profiler, bare=side == "bare")
                profiler.close()
                phases = phase_seconds(profiler, a["total"], own)
                units = {"steps": a["steps"], "validations": a["validations"], "fit": 1}
                for key, seconds in own_hooks(profiler, units, own).items() if side == "template" else ():
                    hooks[key].append(seconds)
            for phase, unit in units.items():
                rows[f"{side} {phase}"].append(phases[phase] / max(unit, 1))
    medians = {key: statistics.median(values) for key, values in rows.items()}
    return medians, {key: statistics.median(values) for key, values in hooks.items()}


def sides(args: argparse.Namespace) -> list[str]:
    return ["template", "plain", "bare"] if args.bare else ["template", "plain"]


def run_side(side: str, args: argparse.Namespace, seed: int, log_dir: str) -> dict:
    if side == "plain":
        return plain_fit(args, seed, log_dir)
    return template_fit(args, seed, log_dir, bare=side == "bare")


def paired(args: argparse.Namespace, log_dir: str, seed: int) -> dict[str, dict]:
    """One fit of each side, in an order that turns with `seed`, so that each side goes first as often."""
    order = sides(args)
    order = order[seed % len(order) :] + order[: seed % len(order)]
    return {side: run_side(side, args, seed, log_dir) for side in order}


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return out.stdout.strip() + (" + uncommitted changes" if dirty.strip() else "") if out.returncode == 0 else "?"
    except OSError:
        return "?"


def load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    except OSError:
        return "?"


def ratio_row(pairs: list[dict[str, dict]], key: str, side: str = "template") -> str:
    ratios = [pair[side][key] / pair["plain"][key] for pair in pairs]
    median = statistics.median(ratios)
    return f"**{median:.3f} ({100 * (median - 1):+.1f}%)** ({min(ratios):.3f}, {max(ratios):.3f})"


@contextmanager
def quiet(enabled: bool) -> Iterator[None]:
    """Send the fits' own output (progress lines, run summaries) to /dev/null."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1), os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def report(args: argparse.Namespace, pairs: list[dict[str, dict]], medians: dict, named: dict, reads) -> str:
    steps, validations = pairs[0]["template"]["steps"], pairs[0]["template"]["validations"]
    fit_s = {side: statistics.median(pair[side]["wall"] for pair in pairs) for side in sides(args)}
    lines = [
        f"commit {commit()}, {datetime.date.today().isoformat()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load {args.load_before} before, {load()} after; split by the "
        f"{args.clock} clock",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| the fit | {args.epochs} epochs of {args.train} synthetic 32x32 images: {steps} steps of "
        f"{args.batch_size}, {validations} validations of {args.val} |",
        f"| template / plain loop, wall time, median of {len(pairs)} pairs (min, max) | {ratio_row(pairs, 'wall')} |",
        f"| the same, process CPU time | {ratio_row(pairs, 'cpu')} |",
    ]
    if args.bare:
        lines.append(f"| bare Lightning / plain loop, wall time (min, max) | {ratio_row(pairs, 'wall', 'bare')} |")
    lines.append(f"| fit time, median: {', '.join(fit_s)} | {'; '.join(f'{t:.2f} s' for t in fit_s.values())} |")
    lines += split_rows(medians, sides(args))
    unexpected, taken, every = reads
    lines.append(
        f"| training steps that read a value back to the host (a GPU sync), the logging steps (every {every}) aside "
        f"| **{len(unexpected)}** of {taken} |"
    )
    for step, names in list(unexpected.items())[:3]:
        lines.append(f"| step {step} reads | {', '.join(sorted(set(names)))} |")
    lines += ["", *hook_rows(medians, named, args.min_shown)]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pairs", type=int, default=7, help="timed pairs (template fit, plain fit)")
    p.add_argument("--split-runs", type=int, default=3, help="instrumented pairs for the per step/validation/fit split")
    p.add_argument("--train", type=int, default=2048, help="synthetic training images (an epoch's steps: / batch)")
    p.add_argument("--val", type=int, default=512, help="synthetic validation images")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2, help="epochs, each ending in a validation")
    p.add_argument("--long", action="store_true", help="10x the training images: 10x the steps, same validations")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="the split's clock (cpu: a busy machine)")
    p.add_argument("--bare", action="store_true", help="also time a bare Lightning Trainer: Lightning's own share")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, 1 pair: checks that every path runs")
    p.add_argument("--min-shown", type=float, default=1.0, help="hooks costing less (µs or ms) are summed in one row")
    p.add_argument("--show-fits", action="store_true", help="let the fits print their progress and summaries")
    p.add_argument("extra", nargs="*", help="CLI overrides for both sides, e.g. --trainer.log_every_n_steps=50")
    args, unknown = p.parse_known_args(argv)
    args.extra += unknown
    if args.smoke:
        args.pairs, args.split_runs, args.train, args.val, args.batch_size = 1, 1, 256, 64, 32
    if args.long:
        args.train *= 10
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    args.load_before = load()
    print(f"load {args.load_before}; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    with tempfile.TemporaryDirectory() as log_dir:
        if not args.smoke:
            with quiet(not args.show_fits):
                paired(args, log_dir, 0)  # untimed: first calls, caches, allocations
        pairs = []
        for seed in range(args.pairs):
            with quiet(not args.show_fits):
                pairs.append(paired(args, log_dir, seed))
            times = ", ".join(f"{side} {fit['wall']:.3f} s" for side, fit in pairs[-1].items())
            ratio = pairs[-1]["template"]["wall"] / pairs[-1]["plain"]["wall"]
            print(f"  pair {seed}: {times}, ratio {ratio:.3f}", flush=True)
        # Both sides train alike, step for step: the same validation accuracy, or the comparison is void
        accuracies = {side: fit["val_acc"] for side, fit in pairs[0].items()}
        if max(accuracies.values()) - min(accuracies.values()) > 1e-6:
            print(f"warning: the sides trained differently: val/acc {accuracies}")
        with quiet(not args.show_fits):
            medians, named = split(args, log_dir, args.split_runs)
            reads = host_reads(args, log_dir)
    table = report(args, pairs, medians, named, reads)
    print()
    print(table)
    return table


if __name__ == "__main__":
    main()
