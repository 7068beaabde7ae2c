"""Connected-digit speech recognition (CTC) through the template against a plain PyTorch loop of the same net,
data and schedule, on one machine.

    OMP_NUM_THREADS=1 python project/examples/fsdd/benchmarks/fsdd_ctc.py FSDD_ROOT --preset quick --runs 5
    python project/examples/fsdd/benchmarks/fsdd_ctc.py FSDD_ROOT --epochs 1 --runs 1 --train-utterances 64  # smoke

FSDD_ROOT holds `recordings/` (or `free-spoken-digit-dataset-1.0.10/`); nothing is written there.

Both sides are built from `../configs/fsdd_ctc.yaml` (and `--preset`, e.g. the quick preset of
`../configs/presets/quick/fsdd_ctc.yaml`), with the same decoded utterances:
- template: the whole `trainer.fit` of the CLI's objects (every callback and view of the recipe, validation with
  greedy decoding, WER and CER, checkpoints, logging and progress, as configured);
- plain loop: the recipe's net (RNNFrameClassifier), the DataModule's loaders in the same order, its waveform
  augmentation with the same per-step generator, AdamW and the one-cycle schedule over the same steps, CTC loss,
  gradient clipping, and a validation pass every epoch that decodes greedily and scores WER and CER. No
  checkpoints, logging, progress, callbacks or views: what they cost is the template's overhead.
Runs are paired by seed and the order alternates, so a machine that slows down charges both sides alike; the
overhead is the median of the per-seed ratios of whole-fit times. One untimed warm-up run of each side first. The
ratio of the process's CPU time (every thread) is printed too: on a machine shared with other work it moves less
than the wall clock.
"""

import time

START = time.perf_counter()

import argparse  # noqa: E402 (the clock above times the imports)
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import lightning as L  # noqa: E402
import torch  # noqa: E402
from torchmetrics.text import CharErrorRate, WordErrorRate  # noqa: E402

from project.engine.cli import main  # noqa: E402
from project.engine.data.ordering import augmentation_seed  # noqa: E402
from project.engine.recipes import base_config, preset_path  # noqa: E402
from project.tasks.speech_recognition.vocabulary import Vocabulary  # noqa: E402

IMPORTS_S = time.perf_counter() - START
RECIPE = Path(__file__).resolve().parents[1] / "configs" / "fsdd_ctc.yaml"


def build(seed: int, args: argparse.Namespace, log_dir: str):
    presets = [f"--config={preset_path(name, str(RECIPE))}" for name in args.preset]
    overrides = [
        f"--config={base_config()}",  # `run=False` reads no default config
        f"--config={RECIPE}",
        *presets,
        f"--data.source.init_args.root={args.root}",
        "--data.source.init_args.download=false",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        "--trainer.enable_model_summary=false",  # printing the table is not training
        f"--seed_everything={seed}",
        *([f"--trainer.max_epochs={args.epochs}"] if args.epochs else []),
        *([f"--data.source.init_args.train_utterances={args.train_utterances}"] if args.train_utterances else []),
        *args.extra,
    ]
    return main(overrides, run=False)


class Decoded:
    """The utterances, made once: later DataModules take the decoded sets instead of making them again."""

    def __init__(self) -> None:
        self.sets: dict | None = None
        self.seconds = 0.0

    def attach(self, cli) -> None:
        data = cli.datamodule
        if self.sets is None:
            start = time.perf_counter()
            data.prepare_data()
            data.setup("fit")
            data.setup("test")
            self.seconds = time.perf_counter() - start
            self.sets = {k: getattr(data, k) for k in ("train_set", "val_set", "test_set")}
        for name, dataset in self.sets.items():
            setattr(data, name, dataset)
        data.setup("fit")  # the batch size per device; the sets are kept


def error_rates(model: L.LightningModule, data, loader, device: torch.device) -> tuple[float, float]:
    """(WER, CER) of greedy decoding over the batches of `loader`, eval mode (restored after)."""
    was_training = model.training
    model.eval()
    wer, cer = WordErrorRate(), CharErrorRate()
    with torch.no_grad():
        for (waves, lengths), (tokens, token_lengths) in loader:
            logits, frames = model.net(*data.eval_transform(waves.to(device), lengths.to(device)))
            hypotheses, references = model.transcribe(logits, frames), model.texts((tokens, token_lengths))
            wer.update(hypotheses, references)
            cer.update(hypotheses, references)
    model.train(was_training)
    return float(wer.compute()), float(cer.compute())


def template_run(seed: int, args: argparse.Namespace, log_dir: str, decoded: Decoded) -> dict:
    cli = build(seed, args, log_dir)
    decoded.attach(cli)
    start, cpu = time.perf_counter(), time.process_time()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    fit_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    device = cli.model.device
    val = float(cli.trainer.callback_metrics["val/wer"])
    test_wer, test_cer = error_rates(cli.model, cli.datamodule, cli.datamodule.test_dataloader(), device)
    return {"seed": seed, "fit_s": fit_s, "cpu_s": cpu_s, "steps": cli.trainer.global_step, "val_wer": val,
            "test_wer": test_wer, "test_cer": test_cer}  # fmt: skip


def plain_run(seed: int, args: argparse.Namespace, log_dir: str, decoded: Decoded) -> dict:
    """fsdd_ctc.yaml's work without Lightning (see the module's docstring)."""
    cli = build(seed, args, log_dir)
    decoded.attach(cli)
    L.seed_everything(seed, verbose=False)
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    model.vocabulary = Vocabulary(data.classes)  # what the model's `setup` reads from the data
    device = torch.device("cpu")
    start, cpu = time.perf_counter(), time.process_time()
    model.to(device)
    train, val = data.train_dataloader(), data.val_dataloader()  # no trainer attached: one process, rank 0
    optimizer = model.optimizer(model.parameters())
    scheduler = model.scheduler(optimizer, total_steps=trainer.max_epochs * len(train))
    step = 0
    for epoch in range(trainer.max_epochs):
        model.train()
        train.sampler.set_epoch(epoch)
        for (waves, lengths), transcripts in train:
            step += 1
            # What `augmentation_generator` draws on rank 0 for this batch of a Lightning fit: it is
            # called before Lightning counts the batch, so the k-th batch (from 1) draws with k - 1
            generator = torch.Generator(device).manual_seed(augmentation_seed(data.seed, 0, step - 1))
            inputs = data.train_transform(waves.to(device), lengths.to(device), generator)
            logits, frames = model.net(*inputs)
            loss = model.ctc_loss(logits, frames, tuple(t.to(device) for t in transcripts))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.gradient_clip_val)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        val_wer, _ = error_rates(model, data, val, device)
    fit_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    test_wer, test_cer = error_rates(model, data, data.test_dataloader(), device)
    return {"seed": seed, "fit_s": fit_s, "cpu_s": cpu_s, "steps": step, "val_wer": val_wer, "test_wer": test_wer,
            "test_cer": test_cer}  # fmt: skip


def summary(values: list[float], fmt: str = ".3f") -> str:
    return (
        f"median {statistics.median(values):{fmt}} (min {min(values):{fmt}}, max {max(values):{fmt}}, n={len(values)})"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", type=Path, help="folder holding FSDD's recordings/ (read only)")
    p.add_argument("--preset", action="append", default=[], help="a preset over the recipe, e.g. quick")
    p.add_argument("--runs", type=int, default=5, help="pairs (seeds 0..runs-1)")
    p.add_argument("--epochs", type=int, help="override max_epochs (the one-cycle schedule follows)")
    p.add_argument("--train-utterances", type=int, help="override the training utterances (smoke tests)")
    p.add_argument("--extra", action="append", default=[], help="extra CLI override for both sides")
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
        "runs": {"template": [], "plain": []},
    }
    print(f"device: {results['device']}")
    decoded = Decoded()
    sides = {"template": template_run, "plain": plain_run}
    with tempfile.TemporaryDirectory() as log_dir:
        start = time.perf_counter()
        decoded.attach(build(0, args, log_dir))
        results["startup_and_data_s"] = time.perf_counter() - start
        results["data_s"] = decoded.seconds
        print("warm-up: one epoch of each")
        warm = argparse.Namespace(**{**vars(args), "epochs": 1})
        for run in sides.values():
            run(0, warm, log_dir, decoded)
        for seed in range(args.runs):
            order = list(sides) if seed % 2 == 0 else list(sides)[::-1]
            for name in order:
                results["runs"][name].append(sides[name](seed, args, log_dir, decoded))
            template, plain = results["runs"]["template"][-1], results["runs"]["plain"][-1]
            print(f"  pair {seed}: template {template['fit_s']:.1f} s, {template['cpu_s']:.1f} s of CPU (test WER "
                  f"{template['test_wer']:.4f}), plain {plain['fit_s']:.1f} s, {plain['cpu_s']:.1f} s of CPU (test WER "
                  f"{plain['test_wer']:.4f}), ratio {template['fit_s'] / plain['fit_s']:.3f}, of CPU "
                  f"{template['cpu_s'] / plain['cpu_s']:.3f}")  # fmt: skip
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def print_table(results: dict) -> None:
    template, plain = results["runs"]["template"], results["runs"]["plain"]
    ratios = [a["fit_s"] / b["fit_s"] for a, b in zip(template, plain, strict=True)]
    cpu_ratios = [a["cpu_s"] / b["cpu_s"] for a, b in zip(template, plain, strict=True)]
    rows = [
        ("device", results["device"]),
        ("imports (project, Lightning, torch), s", f"{results['imports_s']:.2f}"),
        ("making the utterances (FSDD decoded, joined), s", f"{results['data_s']:.2f}"),
        (f"template: fit, s ({template[0]['steps']} steps)", summary([r["fit_s"] for r in template], ".1f")),
        (f"plain loop: fit, s ({plain[0]['steps']} steps)", summary([r["fit_s"] for r in plain], ".1f")),
        ("template: test WER", summary([r["test_wer"] for r in template], ".4f")),
        ("plain loop: test WER", summary([r["test_wer"] for r in plain], ".4f")),
        ("template: test CER", summary([r["test_cer"] for r in template], ".4f")),
        ("template / plain loop, whole fit", summary(ratios)),
        ("template / plain loop, the process's CPU time", summary(cpu_ratios)),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"| {key.ljust(width)} | {value} |")


if __name__ == "__main__":
    main_benchmark()
