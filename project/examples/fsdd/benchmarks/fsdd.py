"""FSDD through the template against a plain PyTorch loop of the same recipe, on one machine.

    OMP_NUM_THREADS=1 python project/examples/fsdd/benchmarks/fsdd.py FSDD_ROOT --epochs 3 --runs 5  # s/epoch
    OMP_NUM_THREADS=1 python project/examples/fsdd/benchmarks/fsdd.py FSDD_ROOT --to-accuracy 0.99 --runs 1 \\
        --skip-speaker
    python project/examples/fsdd/benchmarks/fsdd.py FSDD_ROOT --epochs 1 --runs 1 --limit-train 256  # a smoke test

FSDD_ROOT holds `recordings/` (or `free-spoken-digit-dataset-1.0.10/`); nothing is written there.

What it measures, each piece built from the project's own config files and classes:
1. The process: seconds to import the project and Lightning, to build the CLI's objects from
   `../configs/fsdd.yaml` (start-up), and to decode the 3,000 WAVs into memory (`prepare_data` +
   `setup`), once for the usual split and once for the speaker split.
2. Seconds per epoch: `../configs/fsdd.yaml` through the Trainer (the whole `trainer.fit`: every
   callback, validation and checkpoint each epoch, as configured) against a plain loop with the same
   net (RNNClassifier with its log-mel front end and SpecAugment), the DataModule's loaders (same
   order), its waveform augmentation with the same per-step generator, AdamW, the one-cycle schedule,
   label smoothing and gradient clipping, and a validation pass every epoch. No checkpoints, logging,
   metrics or callbacks in the plain loop: what they cost is the template's overhead. Runs are
   paired by seed and the order rotates, so a machine that slows down charges every side alike; the
   ratio is the median of the per-seed ratios.
3. The speaker-held-out overlay (`../configs/fsdd_speaker.yaml`) through the Trainer in the same
   rotation: its seconds per epoch beside the usual recipe's.
4. With `--to-accuracy A`: after every epoch the test accuracy is measured with the clock stopped;
   the time to the first epoch at >= A, for the template and for the plain loop. Each fit stops
   there (the one-cycle schedule still spans the recipe's `max_epochs`, or `--epochs`); s/epoch then
   counts the epochs it ran.
The decoded data is shared by all runs (decoding is timed once, in 1.).
"""

import time

START = time.perf_counter()

import argparse  # noqa: E402 (the clock above times the imports)
import functools  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import lightning as L  # noqa: E402
import torch  # noqa: E402

from project.engine.cli import main  # noqa: E402
from project.engine.data.audio import AudioClips  # noqa: E402
from project.engine.data.ordering import augmentation_seed  # noqa: E402
from project.engine.recipes import base_config  # noqa: E402

IMPORTS_S = time.perf_counter() - START
CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # the example's recipes
USUAL = CONFIGS / "fsdd.yaml"
SPEAKER = CONFIGS / "fsdd_speaker.yaml"


def build(config: Path, seed: int, args: argparse.Namespace, log_dir: str):
    overrides = [
        f"--config={base_config()}",  # `run=False` reads no default config
        f"--config={config}",
        f"--data.source.init_args.root={args.root}",
        "--data.source.init_args.download=false",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        "--trainer.enable_model_summary=false",  # printing the table is not training
        f"--seed_everything={seed}",
        *([f"--trainer.max_epochs={args.epochs}"] if args.epochs else []),
        *args.extra,
    ]
    return main(overrides, run=False)


class Decoded:
    """Each recipe's data, decoded once: later DataModules take the decoded sets instead of reading again."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.sets: dict[Path, dict] = {}
        self.seconds: dict[str, float] = {}

    def attach(self, cli, config: Path) -> None:
        data = cli.datamodule
        if config not in self.sets:
            start = time.perf_counter()
            data.prepare_data()
            data.setup("fit")
            data.setup("test")
            self.seconds[config.stem] = time.perf_counter() - start
            if self.args.limit_train:
                data.train_set = _first(data.train_set, self.args.limit_train)
            self.sets[config] = {k: getattr(data, k) for k in ("train_set", "val_set", "test_set")}
        for name, dataset in self.sets[config].items():
            setattr(data, name, dataset)
        data.setup("fit")  # the batch size per device; the sets are kept


def _first(clips: AudioClips, n: int) -> AudioClips:
    return AudioClips(clips.clips[:n], clips.labels[:n], clips.length, clips.names[:n])


def test_accuracy(model: L.LightningModule, data, device: torch.device) -> float:
    """Test-split accuracy of the net as it is now (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), device=device)
    with torch.no_grad():
        for (waves, lengths), labels in data.test_dataloader():
            inputs = data.eval_transform(waves.to(device), lengths.to(device))
            correct += (model.net(*inputs).argmax(1) == labels.to(device)).sum()
    model.train(was_training)
    return correct.item() / len(data.test_set)


class AccuracyClock:
    """Training time (test evaluations excluded) to the first epoch whose test accuracy reaches `target`."""

    def __init__(self, target: float | None):
        self.target = target
        self.paused = 0.0
        self.reached_s: float | None = None
        self.accuracies: list[float] = []

    def start(self) -> None:
        self.started = time.perf_counter()

    def epoch_end(self, model: L.LightningModule, data, device: torch.device) -> bool:
        """Measures the test accuracy (clock stopped); True once the target is reached."""
        if self.target is None:
            return False
        now = time.perf_counter()
        self.accuracies.append(test_accuracy(model, data, device))
        if self.reached_s is None and self.accuracies[-1] >= self.target:
            self.reached_s = now - self.started - self.paused
        self.paused += time.perf_counter() - now
        return self.reached_s is not None


class EpochEndClock(L.Callback):
    """`AccuracyClock` for a Lightning fit: after each epoch's validation."""

    def __init__(self, clock: AccuracyClock, data, device: torch.device):
        self.clock, self.data, self.device = clock, data, device

    def on_train_epoch_end(self, trainer, pl_module):
        if self.clock.epoch_end(pl_module, self.data, self.device):
            trainer.should_stop = True


def lightning_run(config: Path, seed: int, args: argparse.Namespace, log_dir: str, decoded: Decoded) -> dict:
    cli = build(config, seed, args, log_dir)
    decoded.attach(cli, config)
    clock = AccuracyClock(args.to_accuracy)
    cli.trainer.callbacks.append(EpochEndClock(clock, cli.datamodule, torch.device("cpu")))
    clock.start()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    fit_s = time.perf_counter() - clock.started - clock.paused
    epochs = cli.trainer.current_epoch
    return {"seed": seed, "fit_s": fit_s, "epochs": epochs, "epoch_s": fit_s / epochs, **_reached(clock)}


def plain_run(seed: int, args: argparse.Namespace, log_dir: str, decoded: Decoded) -> dict:
    """project/examples/fsdd/configs/fsdd.yaml's work without Lightning (see the module's docstring)."""
    cli = build(USUAL, seed, args, log_dir)
    decoded.attach(cli, USUAL)
    L.seed_everything(seed, verbose=False)
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    device = torch.device("cpu")
    clock = AccuracyClock(args.to_accuracy)
    clock.start()
    model.to(device)
    train, val = data.train_dataloader(), data.val_dataloader()  # no trainer attached: one process, rank 0
    optimizer = model.optimizer(model.parameters())
    scheduler = model.scheduler(optimizer, total_steps=trainer.max_epochs * len(train))
    step = 0
    for epoch in range(trainer.max_epochs):
        model.train()
        train.sampler.set_epoch(epoch)
        for (waves, lengths), labels in train:
            step += 1
            labels = labels.to(device)
            # What `augmentation_generator` draws on rank 0 for this batch of a Lightning fit: it is
            # called before Lightning counts the batch, so the k-th batch (from 1) draws with k - 1
            generator = torch.Generator(device).manual_seed(augmentation_seed(data.seed, 0, step - 1))
            inputs = data.train_transform(waves.to(device), lengths.to(device), generator)
            loss = model.loss_fn(model.net(*inputs), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.gradient_clip_val)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        model.eval()
        correct = torch.zeros((), device=device)
        with torch.no_grad():
            for (waves, lengths), labels in val:
                inputs = data.eval_transform(waves.to(device), lengths.to(device))
                correct += (model.net(*inputs).argmax(1) == labels.to(device)).sum()
        val_acc = correct.item() / len(data.val_set)
        if clock.epoch_end(model, data, device):
            break
    fit_s = time.perf_counter() - clock.started - clock.paused
    epochs = epoch + 1
    return {
        "seed": seed,
        "fit_s": fit_s,
        "epochs": epochs,
        "epoch_s": fit_s / epochs,
        "val_acc": val_acc,
        **_reached(clock),
    }


def _reached(clock: AccuracyClock) -> dict:
    return {"to_accuracy_s": clock.reached_s, "test_accuracies": clock.accuracies} if clock.target else {}


def rotated(n: int, runs: dict[str, Callable[[int], dict]]) -> dict[str, list[dict]]:
    """`n` rounds of every run in `runs`, seed = round; the order rotates by one each round."""
    names = list(runs)
    out: dict[str, list[dict]] = {name: [] for name in names}
    for seed in range(n):
        for name in names[seed % len(names) :] + names[: seed % len(names)]:
            out[name].append(runs[name](seed))
        print(f"  round {seed}: " + ", ".join(f"{k} {v[-1]['epoch_s']:.2f} s/epoch" for k, v in out.items()))
    return out


def summary(values: list[float], fmt: str = ".3f") -> str:
    return (
        f"median {statistics.median(values):{fmt}} (min {min(values):{fmt}}, max {max(values):{fmt}}, n={len(values)})"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", type=Path, help="folder holding FSDD's recordings/ (read only)")
    p.add_argument("--runs", type=int, default=5, help="rounds (seeds 0..runs-1) of each measured fit")
    p.add_argument("--epochs", type=int, help="override the recipes' max_epochs (the one-cycle schedule follows)")
    p.add_argument("--limit-train", type=int, help="train on the first N training clips only (smoke tests)")
    p.add_argument("--to-accuracy", type=float, help="also time each fit to this test accuracy, e.g. 0.99")
    p.add_argument("--skip-plain", action="store_true")
    p.add_argument("--skip-speaker", action="store_true")
    p.add_argument("--extra", action="append", default=[], help="extra CLI override for every recipe")
    p.add_argument("--json", type=Path, help="also write every figure here")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def main_benchmark(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    results: dict = {
        "device": f"CPU, {torch.get_num_threads()} threads (torch {torch.__version__})",
        "imports_s": IMPORTS_S,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    print(f"device: {results['device']}")
    decoded = Decoded(args)
    with tempfile.TemporaryDirectory() as log_dir:
        start = time.perf_counter()
        cli = build(USUAL, 0, args, log_dir)
        results["startup_s"] = time.perf_counter() - start
        decoded.attach(cli, USUAL)
        if not args.skip_speaker:
            decoded.attach(build(SPEAKER, 0, args, log_dir), SPEAKER)
        results["decode_s"] = decoded.seconds
        runs = {"template": functools.partial(lightning_run, USUAL, args=args, log_dir=log_dir, decoded=decoded)}
        if not args.skip_plain:
            runs["plain"] = functools.partial(plain_run, args=args, log_dir=log_dir, decoded=decoded)
        if not args.skip_speaker:
            runs["speaker"] = functools.partial(lightning_run, SPEAKER, args=args, log_dir=log_dir, decoded=decoded)
        print("warm-up: one epoch of each")
        warm = argparse.Namespace(**{**vars(args), "epochs": 1, "to_accuracy": None})
        for name, run in runs.items():
            run.keywords["args"] = warm
            run(0)
            run.keywords["args"] = args
            print(f"  {name} warmed up")
        results["runs"] = rotated(args.runs, runs)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def print_table(results: dict) -> None:
    runs = results["runs"]
    rows = [
        ("device", results["device"]),
        ("imports (project, Lightning, torch), s", f"{results['imports_s']:.2f}"),
        ("start-up: CLI objects from project/examples/fsdd/configs/fsdd.yaml, s", f"{results['startup_s']:.2f}"),
    ]
    rows += [(f"decoding the WAVs ({name}), s", f"{s:.2f}") for name, s in results["decode_s"].items()]
    epochs = runs["template"][0]["epochs"]
    for name, label in (
        ("template", "fsdd.yaml, template"),
        ("plain", "fsdd.yaml, plain loop"),
        ("speaker", "fsdd_speaker.yaml, template"),
    ):
        if name in runs:
            rows.append((f"{label}: s/epoch ({epochs} epochs)", summary([r["epoch_s"] for r in runs[name]])))
            reached = [r["to_accuracy_s"] for r in runs[name] if r.get("to_accuracy_s") is not None]
            if "to_accuracy_s" in runs[name][0]:
                rows.append(
                    (
                        f"{label}: s to the target test accuracy",
                        summary(reached, ".1f") if reached else f"not reached in {epochs} epochs",
                    )
                )
    pairs = (("plain", "template / plain loop"), ("speaker", "speaker overlay / usual recipe (both template)"))
    for name, label in pairs:
        if name in runs:
            ratios = [a["fit_s"] / b["fit_s"] for a, b in zip(runs["template"], runs[name], strict=True)]
            ratios = ratios if name == "plain" else [1 / r for r in ratios]
            rows.append((label, summary(ratios)))
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"| {key.ljust(width)} | {value} |")


if __name__ == "__main__":
    main_benchmark()
