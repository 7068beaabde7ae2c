"""Peak resident memory of each shipped recipe's fit on a CPU, and what its data takes in memory.

    python benchmarks/memory.py --cifar10 CIFAR_DIR --fsdd FSDD_ROOT
    python benchmarks/memory.py --fsdd FSDD_ROOT --recipes fsdd --steps 1  # a smoke test

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cifar10", type=Path, help="folder holding cifar-10-batches-py/")
    p.add_argument("--fsdd", type=Path, help="folder holding FSDD's recordings/")
    p.add_argument("--speech-commands", type=Path, help="Speech Commands root, as its recipe's source.root")
    p.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES))
    p.add_argument("--steps", type=int, default=3, help="training steps of each fit")
    p.add_argument("--extra", action="append", default=[], help="extra CLI override for every recipe")
    return p.parse_args(argv)


def main_benchmark(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    args = parse_args(argv)
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
