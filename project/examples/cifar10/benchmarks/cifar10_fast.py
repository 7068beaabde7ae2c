"""Benchmark the fast CIFAR-10 recipe: accuracy and time over N runs, and what Lightning costs over a
plain PyTorch loop, for the fast recipe and for the standard one (ResNet-9).

    python project/examples/cifar10/benchmarks/cifar10_fast.py DATA_DIR --runs 5 --compile  # on a GPU (BENCHMARKS.md)
    python project/examples/cifar10/benchmarks/cifar10_fast.py DATA_DIR --device cpu --limit-train 1024 \\
        --limit-eval 256 --batch-size 256 --epochs 1 --runs 1 --precision 32-true  # a smoke test on a CPU

DATA_DIR holds `cifar-10-batches-py/` (the official data, or a copy rebuilt in its layout; BENCHMARKS.md).

Each measurement is built from the project's own config files and classes:
1. Fast: `../configs/cifar10_fast.yaml` through LightningCLI's objects (Trainer + Classifier + DataModule),
   run `--runs` times with seeds 0..N-1 after one untimed warm-up run (cuDNN autotuning, torch.compile).
   Time is the whole `trainer.fit` call (setup, whitening init, training, the final validation and
   checkpoint); test accuracy comes from `trainer.test` afterwards, timed separately. Reading the data
   from disk happens before the clock starts, as in airbench.
2. The same net, loader, augmentation, optimizer, schedule and callbacks' logic in a plain PyTorch loop,
   each run PAIRED with the Lightning run of the same seed (which of the two goes first alternates,
   so a machine that slows down or warms up over the process charges both alike). The overhead is the
   median over pairs of (Lightning fit time / plain fit time) - 1, with the smallest and largest ratio; the same
   ratio of process CPU time beside it says how much other work on the machine moved the wall clock.
   `--split N`: N more pairs, the Lightning fit under `project.engine.hook_times.HookTimes`, split the overhead
   into per step, per validation and per fit, and name each hook's share (`--clock cpu` on a busy machine).
3. Standard: `../configs/cifar10.yaml` (ResNet-9; narrow it with `--standard-extra`) for
   `--standard-epochs`, paired the same way with a plain loop of its own: the DataModule's training
   loader (same order), its augmentation, the recipe's SGD, one-cycle schedule and label smoothing,
   and a validation pass after every epoch as the recipe does. The Lightning runs also give training
   images per second (epochs after the first; the first pays for cuDNN autotuning).
The clock is read after `torch.cuda.synchronize()`, here only; the project code never synchronizes.
Both plain loops import every piece from the project; none is copied here.
"""

import argparse
import functools
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.profilers import PassThroughProfiler

from project.engine.callbacks import FreezeParameters, Lookahead
from project.engine.cli import main
from project.engine.data.datamodule import InMemoryTensors
from project.engine.data.loaders import DeviceLoader
from project.engine.data.ordering import augmentation_seed
from project.engine.data.source import Samples
from project.engine.hook_times import HookTimes, hook_rows, own_cost_per_call, own_hooks, phase_seconds, split_rows
from project.engine.recipes import base_config
from project.tasks.classification import metrics

STANDARD = Path(__file__).resolve().parents[1] / "configs" / "cifar10.yaml"
# Hooks whose work the plain loop does too: the whitening layer set from data, lookahead, freezing
SHARED = ("Classifier.on_fit_start", "[Callback]Lookahead.", "[Callback]FreezeParameters.")
FAST = Path(__file__).resolve().parents[1] / "configs" / "cifar10_fast.yaml"


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def build(configs: list[Path], args: argparse.Namespace, log_dir: str, extra: list[str]):
    """LightningCLI's model, datamodule and trainer for `configs` over configs/base.yaml (later ones
    override earlier ones, as `fit --config` does), with the data read and trimmed, ready to fit."""
    accelerator = ["--trainer.accelerator=" + ("gpu" if args.device == "cuda" else "cpu"), "--trainer.devices=1"]
    overrides = [
        *[f"--config={c}" for c in [base_config(), *configs]],  # `run=False` reads no default config
        f"--data.source.init_args.root={args.data_dir}",
        "--data.source.init_args.download=false",
        *accelerator,
        f"--trainer.logger.init_args.save_dir={log_dir}",
        *([f"--trainer.precision={args.precision}"] if args.precision else []),
        *([f"--data.batch_size={args.batch_size}"] if args.batch_size else []),
        *extra,
    ]
    cli = main(overrides, run=False)
    data = cli.datamodule
    data.prepare_data()
    data.setup("fit")
    data.setup("test")
    if args.limit_train:
        data.train_set = _first(data.train_set, args.limit_train)
    if args.limit_eval:
        data.val_set, data.test_set = _first(data.val_set, args.limit_eval), _first(data.test_set, args.limit_eval)
    return cli


def lightning_run(seed: int, args: argparse.Namespace, log_dir: str, profiler: HookTimes | None = None) -> dict:
    extra = [f"--seed_everything={seed}", f"--data.seed={seed}", *fast_overrides(args)]
    cli = build([STANDARD, FAST], args, log_dir, extra)
    if profiler is not None:  # the split (`--split`): every hook timed
        cli.trainer.profiler = profiler
        profiler.watch(cli.model)
    sync(args.device)
    start, cpu, split_start = time.perf_counter(), time.process_time(), args.clock()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    sync(args.device)
    fit_s, cpu_s, split_s = time.perf_counter() - start, time.process_time() - cpu, args.clock() - split_start
    if profiler is not None:
        profiler.close()
        cli.trainer.profiler = PassThroughProfiler()  # the test below is no part of the fit
    val_acc = float(cli.trainer.callback_metrics[metrics.VAL_ACC])  # `test` replaces callback_metrics
    start = time.perf_counter()
    (result,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    sync(args.device)
    return {
        "seed": seed,
        "fit_s": fit_s,
        "cpu_s": cpu_s,
        "split_s": split_s,
        "validations": cli.trainer.current_epoch // cli.trainer.check_val_every_n_epoch,
        "test_s": time.perf_counter() - start,
        "test_acc": result[metrics.TEST_ACC],
        "val_acc": val_acc,
        "steps": cli.trainer.global_step,
    }


def fast_overrides(args: argparse.Namespace) -> list[str]:
    out = ["--trainer.enable_model_summary=false"]  # printing the table is not training
    if args.compile:
        out.append("--model.compile=true")
    if args.epochs:
        # Validation runs once, at the end, so its interval follows the epoch count
        out += [f"--trainer.max_epochs={args.epochs}", f"--trainer.check_val_every_n_epoch={args.epochs}"]
    return out + args.extra


def _first(dataset: InMemoryTensors, n: int) -> InMemoryTensors:
    names = dataset.names[:n] if dataset.names is not None else None
    return InMemoryTensors(Samples(dataset.inputs[:n], dataset.labels[:n], names))


def plain_run(seed: int, args: argparse.Namespace, log_dir: str) -> dict:
    """The fast config's work without Lightning: same net, loader, augmentation, optimizer, schedule,
    lookahead and freezing, bf16 autocast, and one validation pass at the end."""
    cli = build(
        [STANDARD, FAST], args, log_dir, [f"--seed_everything={seed}", f"--data.seed={seed}", *fast_overrides(args)]
    )
    L.seed_everything(seed, verbose=False)
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    device = torch.device(args.device)
    epochs = trainer.max_epochs
    callbacks = {type(c): c for c in trainer.callbacks}
    lookahead, freeze = callbacks.get(Lookahead), callbacks.get(FreezeParameters)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=trainer.precision == "bf16-mixed")

    sync(args.device)
    start, cpu, split_start, steps_s = time.perf_counter(), time.process_time(), args.clock(), 0.0
    model.to(device)
    model.net.init_from_data(data.sample_train_images)
    train = DeviceLoader(
        data.train_set.inputs,
        data.train_set.labels,
        data.batch_size,
        shuffle=True,
        drop_last=True,
        seed=data.seed,
        device=device,
    )
    val = DeviceLoader(data.val_set.inputs, data.val_set.labels, data.batch_size, device=device)
    optimizer = model.optimizer(model.parameters())
    total_steps = epochs * len(train)
    scheduler = model.scheduler(optimizer, total_steps=total_steps)
    if freeze is not None:
        named = dict(model.named_parameters())
        freeze.frozen = [named[n] for n in freeze.names]
    step = 0
    for epoch in range(epochs):
        sync(args.device)
        epoch_start = args.clock()
        model.train()
        train.sampler.set_epoch(epoch)
        for images, labels in train:
            step += 1
            # What `augmentation_generator` draws on rank 0 for this batch of a Lightning fit: it is
            # called before Lightning counts the batch, so the k-th batch (from 1) draws with k - 1
            generator = torch.Generator(device).manual_seed(augmentation_seed(data.seed, 0, step - 1))
            inputs = data.train_transform(images, generator, epoch=epoch)
            with autocast:
                loss = model.loss_fn(model.net(inputs), labels)
            loss.backward()
            if freeze is not None:
                freeze.apply(epoch)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if lookahead is not None:
                lookahead.step(model, epoch, step, total_steps)  # ends on the average at the last step
        sync(args.device)
        steps_s += args.clock() - epoch_start
    val_start = args.clock()
    model.eval()
    correct = torch.zeros((), device=device)
    with torch.no_grad(), autocast:
        for images, labels in val:
            correct += (model.net(data.eval_transform(images)).argmax(1) == labels).sum()
    val_acc = correct.item() / len(data.val_set)
    phases = {"steps": steps_s, "validations": args.clock() - val_start}
    sync(args.device)
    fit_s, cpu_s, split_s = time.perf_counter() - start, time.process_time() - cpu, args.clock() - split_start
    phases["fit"] = split_s - phases["steps"] - phases["validations"]
    return {
        "seed": seed,
        "fit_s": fit_s,
        "cpu_s": cpu_s,
        "val_acc": val_acc,
        "steps": step,
        "validations": 1,
        "phases": phases,
    }


class EpochTimer(L.Callback):
    """Seconds spent in each epoch's training batches (validation excluded); benchmark only, so it may sync."""

    def __init__(self, device: str):
        self.device = device
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        sync(self.device)
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx + 1 == trainer.num_training_batches:
            sync(self.device)
            self.seconds.append(time.perf_counter() - self.start)


def standard_overrides(seed: int, args: argparse.Namespace) -> list[str]:
    return [
        f"--seed_everything={seed}",
        f"--data.seed={seed}",
        f"--trainer.max_epochs={args.standard_epochs}",
        "--trainer.enable_model_summary=false",  # printing the table is not training
        *args.standard_extra,
    ]


def standard_lightning_run(seed: int, args: argparse.Namespace, log_dir: str) -> dict:
    """`../configs/cifar10.yaml` through the CLI's objects: the whole `trainer.fit`, and images/s per epoch."""
    cli = build([STANDARD], args, log_dir, standard_overrides(seed, args))
    timer = EpochTimer(args.device)
    cli.trainer.callbacks.append(timer)
    sync(args.device)
    start, cpu = time.perf_counter(), time.process_time()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    sync(args.device)
    fit_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    images_per_epoch = cli.trainer.num_training_batches * cli.datamodule.batch_size
    steady = timer.seconds[1:] or timer.seconds  # the first epoch pays for cuDNN autotuning
    return {
        "seed": seed,
        "fit_s": fit_s,
        "cpu_s": cpu_s,
        "val_acc": float(cli.trainer.callback_metrics[metrics.VAL_ACC]),
        "steps": cli.trainer.global_step,
        "epoch_s": timer.seconds,
        "images_per_s": images_per_epoch / statistics.mean(steady),
        "batch_size": cli.datamodule.batch_size,
    }


def standard_plain_run(seed: int, args: argparse.Namespace, log_dir: str) -> dict:
    """The standard recipe's work without Lightning: the DataModule's own training loader (same order),
    its augmentation with the same per-step generator, the recipe's optimizer, one-cycle schedule and
    label-smoothed loss, bf16 autocast if asked for, and a validation pass as often as the recipe
    validates. No checkpoints, logging, metrics or callbacks: what those cost is the overhead."""
    cli = build([STANDARD], args, log_dir, standard_overrides(seed, args))
    L.seed_everything(seed, verbose=False)
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    device = torch.device(args.device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=trainer.precision == "bf16-mixed")

    sync(args.device)
    start, cpu = time.perf_counter(), time.process_time()
    model.to(device)
    train, val = data.train_dataloader(), data.val_dataloader()  # no trainer attached: one process, rank 0
    optimizer = model.optimizer(model.parameters())
    scheduler = model.scheduler(optimizer, total_steps=trainer.max_epochs * len(train))
    step, val_acc = 0, float("nan")
    for epoch in range(trainer.max_epochs):
        model.train()
        train.sampler.set_epoch(epoch)
        for images, labels in train:
            step += 1
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            # What `augmentation_generator` draws on rank 0 for this batch of a Lightning fit: it is
            # called before Lightning counts the batch, so the k-th batch (from 1) draws with k - 1
            generator = torch.Generator(device).manual_seed(augmentation_seed(data.seed, 0, step - 1))
            inputs = data.train_transform(images, generator, epoch=epoch)
            with autocast:
                loss = model.loss_fn(model.net(inputs), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        if (epoch + 1) % trainer.check_val_every_n_epoch == 0:
            val_acc = evaluate(model, data, val, device, autocast)
    sync(args.device)
    fit_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    return {"seed": seed, "fit_s": fit_s, "cpu_s": cpu_s, "val_acc": val_acc, "steps": step}


def evaluate(model: L.LightningModule, data, loader, device: torch.device, autocast) -> float:
    """Validation accuracy over `loader`; one read-back at the end."""
    model.eval()
    correct = torch.zeros((), device=device)
    with torch.no_grad(), autocast:
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            correct += (model.net(data.eval_transform(images)).argmax(1) == labels).sum()
    return correct.item() / len(loader.dataset)


def paired(n: int, lightning: Callable[[int], dict], plain: Callable[[int], dict]) -> list[tuple[dict, dict]]:
    """`n` pairs (Lightning run, plain run) of seeds 0..n-1; in every other pair the plain run goes first."""
    pairs = []
    for seed in range(n):
        if seed % 2 == 0:
            a = lightning(seed)
            b = plain(seed)
        else:
            b = plain(seed)
            a = lightning(seed)
        ratio, cpu = a["fit_s"] / b["fit_s"], a["cpu_s"] / b["cpu_s"]
        print(
            f"  pair {seed}: lightning {a['fit_s']:.3f} s, plain {b['fit_s']:.3f} s, ratio {ratio:.3f} "
            f"(process CPU time ratio {cpu:.3f})",
            flush=True,
        )
        pairs.append((a, b))
    return pairs


def ratios(pairs: list[tuple[dict, dict]], key: str = "fit_s") -> dict:
    values = [a[key] / b[key] for a, b in pairs]
    return {"ratios": values, "median": statistics.median(values), "min": min(values), "max": max(values)}


def spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return (
        f"{mean:.4f} ± {std:.4f} (median {statistics.median(values):.4f}, min {min(values):.4f}, max {max(values):.4f})"
    )


def overhead(summary: dict) -> str:
    return (
        f"{100 * (summary['median'] - 1):+.1f}% (median of {len(summary['ratios'])} paired ratios "
        f"{summary['median']:.3f}, min {summary['min']:.3f}, max {summary['max']:.3f})"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data_dir", type=Path, help="folder holding cifar-10-batches-py/")
    p.add_argument("--runs", type=int, default=5, help="timed runs (pairs) of the fast config (seeds 0..runs-1)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile the net (warm-up run excluded)")
    p.add_argument("--epochs", type=int, help="override the fast config's epochs")
    p.add_argument("--precision", help="override trainer.precision (e.g. 32-true on a CPU)")
    p.add_argument("--batch-size", type=int, help="override data.batch_size (both configs)")
    p.add_argument("--limit-train", type=int, help="train on the first N training images only (both configs)")
    p.add_argument("--limit-eval", type=int, help="validate and test on the first N images only (both configs)")
    p.add_argument("--standard-epochs", type=int, default=3, help="epochs of the standard config")
    p.add_argument("--standard-runs", type=int, help="timed runs (pairs) of the standard config; default --runs")
    p.add_argument("--skip-plain", action="store_true", help="no plain loops: Lightning runs only, no overhead")
    p.add_argument("--skip-fast", action="store_true")
    p.add_argument("--skip-standard", action="store_true")
    p.add_argument("--extra", action="append", default=[], help="extra CLI override for the fast config")
    p.add_argument("--standard-extra", action="append", default=[], help="extra CLI override, standard config")
    p.add_argument("--json", type=Path, help="also write every figure here")
    p.add_argument("--split", type=int, default=0, help="pairs more, Lightning's under HookTimes: the overhead split")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="the split's clock (cpu: a busy machine)")
    args = p.parse_args(argv)
    args.clock_name = args.clock
    args.clock = time.perf_counter if args.clock == "wall" else time.thread_time
    args.standard_runs = args.standard_runs or args.runs
    if args.runs < 1 or args.standard_runs < 1:
        p.error("--runs and --standard-runs must be at least 1")
    return args


def describe_device(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"CPU, {torch.get_num_threads()} threads (torch {torch.__version__})"


def main_benchmark(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_float32_matmul_precision("high")
    results: dict = {"device": describe_device(args.device), "args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as log_dir:
        print(f"device: {results['device']}")
        if not args.skip_fast:
            run_fast(args, log_dir, results)
        if not args.skip_standard:
            run_standard(args, log_dir, results)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def run_fast(args: argparse.Namespace, log_dir: str, results: dict) -> None:
    start = time.perf_counter()
    lightning_run(0, args, log_dir)  # warm-up: cuDNN autotuning, torch.compile
    results["warmup_s"] = time.perf_counter() - start
    print(f"fast: warm-up run (incl. compile if on): {results['warmup_s']:.1f} s")
    lightning = functools.partial(lightning_run, args=args, log_dir=log_dir)
    if args.skip_plain:
        results["lightning"] = [lightning(seed) for seed in range(args.runs)]
    else:
        plain_run(0, args, log_dir)  # warm-up for the plain loop's own shapes
        pairs = paired(args.runs, lightning, functools.partial(plain_run, args=args, log_dir=log_dir))
        results["lightning"], results["plain"] = [a for a, _ in pairs], [b for _, b in pairs]
        results["fast_overhead"] = ratios(pairs)
        results["fast_overhead_cpu"] = ratios(pairs, "cpu_s")
    if args.split:
        run_split(args, log_dir, results)
    for r in results["lightning"]:
        print(f"  fast run {r['seed']}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items() if k != "seed"))


def run_split(args: argparse.Namespace, log_dir: str, results: dict) -> None:
    """`--split` pairs, the Lightning fit under `HookTimes`: the overhead per step, per validation and per fit,
    and each of the template's hooks (project/engine/hook_times.py)."""
    own = own_cost_per_call(args.clock)
    rows: dict[str, list[float]] = {}
    hooks: dict[tuple[str, str], list[float]] = {}
    for seed in range(args.split):
        profiler = HookTimes(args.clock)
        a = lightning_run(seed, args, log_dir, profiler)
        b = plain_run(seed, args, log_dir)
        units = {"steps": a["steps"], "validations": a["validations"], "fit": 1}
        for side, phases in (("template", phase_seconds(profiler, a["split_s"], own)), ("plain", b["phases"])):
            for phase, unit in units.items():
                rows.setdefault(f"{side} {phase}", []).append(phases[phase] / max(unit, 1))
        for key, seconds in own_hooks(profiler, units, own, SHARED).items():
            hooks.setdefault(key, []).append(seconds)
    results["split"] = {
        "pairs": args.split,
        "clock": args.clock_name,
        "medians": {k: statistics.median(v) for k, v in rows.items()},
        "hooks": [[phase, name, statistics.median(v)] for (phase, name), v in hooks.items()],
    }


def run_standard(args: argparse.Namespace, log_dir: str, results: dict) -> None:
    print("standard: warm-up run")
    lightning = functools.partial(standard_lightning_run, args=args, log_dir=log_dir)
    lightning(0)
    if args.skip_plain:
        results["standard"] = [lightning(seed) for seed in range(args.standard_runs)]
        return
    standard_plain_run(0, args, log_dir)
    pairs = paired(args.standard_runs, lightning, functools.partial(standard_plain_run, args=args, log_dir=log_dir))
    results["standard"], results["standard_plain"] = [a for a, _ in pairs], [b for _, b in pairs]
    results["standard_overhead"] = ratios(pairs)


def print_table(results: dict) -> None:
    rows = [("device", results["device"])]
    if "lightning" in results:
        runs = results["lightning"]
        rows += [
            ("fast: runs", str(len(runs))),
            ("fast: test accuracy (TTA)", spread([r["test_acc"] for r in runs])),
            ("fast: fit time, s", spread([r["fit_s"] for r in runs])),
            ("fast: test time, s", spread([r["test_s"] for r in runs])),
            ("fast: steps per run", str(runs[0]["steps"])),
            ("fast: warm-up run, s", f"{results['warmup_s']:.2f}"),
        ]
    if "plain" in results:
        rows += [
            ("fast: plain loop fit time, s", spread([r["fit_s"] for r in results["plain"]])),
            ("fast: plain loop val accuracy", spread([r["val_acc"] for r in results["plain"]])),
            ("fast: Lightning overhead", overhead(results["fast_overhead"])),
            ("fast: the same by process CPU time", overhead(results["fast_overhead_cpu"])),
        ]
    if "standard" in results:
        runs = results["standard"]
        rows += [
            ("standard: runs", f"{len(runs)} of {runs[0]['steps']} steps (batch {runs[0]['batch_size']})"),
            ("standard: fit time, s", spread([r["fit_s"] for r in runs])),
            ("standard: val accuracy", spread([r["val_acc"] for r in runs])),
            ("standard: training images/s", spread([r["images_per_s"] for r in runs])),
        ]
    if "standard_plain" in results:
        rows += [
            ("standard: plain loop fit time, s", spread([r["fit_s"] for r in results["standard_plain"]])),
            ("standard: plain loop val accuracy", spread([r["val_acc"] for r in results["standard_plain"]])),
            ("standard: Lightning overhead", overhead(results["standard_overhead"])),
        ]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"| {key.ljust(width)} | {value} |")
    if "split" in results:
        split = results["split"]
        print(f"\nfast: where the overhead goes, medians of {split['pairs']} more pairs ({split['clock']} clock)\n")
        print("| figure | value |\n| --- | --- |")
        print("\n".join(split_rows(split["medians"], ["template", "plain"])))
        print()
        print("\n".join(hook_rows(split["medians"], {(phase, name): s for phase, name, s in split["hooks"]})))


if __name__ == "__main__":
    main_benchmark()
