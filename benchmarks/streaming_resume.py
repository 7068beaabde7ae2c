"""Exact mid-epoch resume of a streamed fit on a large folder: Ctrl-C at step 5, resumed, against an uninterrupted fit.

    python benchmarks/streaming_resume.py --folder /tmp/streaming_bench/100000            # streamed from files
    python benchmarks/streaming_resume.py --chunks /tmp/streaming_bench/chunks100000      # from LitData chunks

Both fits run 8 steps of 64 images (a small ResNet, deterministic, 2 workers) inside the first epoch;
prints the fits' times and whether any weight differs after the resume. The folders are the ones
`benchmarks/streaming.py` generates and converts.
"""

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' Ctrl-C at a step (tests/stops.py)
from project.cli import main
from tests.stops import interrupt_at


def fit_args(source: list[str], log_dir: Path) -> list[str]:
    return [
        "--data=project.engine.data.ImageDataModule",
        *source,
        "--data.in_memory=false",
        "--data.num_workers=2",
        "--data.batch_size=64",
        "--data.val_size=0.05",
        "--data.mean=[0.5,0.5,0.5]",
        "--data.std=[0.25,0.25,0.25]",
        "--model.net.init_args.widths=[16,32,64,128]",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.precision=32-true",
        "--trainer.deterministic=true",
        "--trainer.max_steps=8",
        "--trainer.limit_val_batches=2",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false",
        "--trainer.callbacks=[]",
        f"--trainer.logger.init_args.save_dir={log_dir}",
    ]


def last_checkpoint(folder: Path) -> dict:
    return torch.load(next(folder.rglob("last.ckpt")), weights_only=True)


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--folder", help="an image folder, streamed from its files")
    group.add_argument("--chunks", help="a folder written by python -m project.optimize")
    args = parser.parse_args()
    if args.folder:
        source = ["--data.source=project.engine.data.ImageFolder", f"--data.source.init_args.root={args.folder}"]
        source.append("--data.source.init_args.image_size=64")
    else:
        source = ["--data.source=project.engine.data.LitDataImages"]
        source += [f"--data.source.init_args.input_dir={args.chunks}"]
    out = Path(tempfile.mkdtemp(prefix="streaming_resume_"))
    start = time.perf_counter()
    main(["fit", *fit_args(source, out / "full")])
    print(f"uninterrupted fit: {time.perf_counter() - start:.0f} s")
    sigint = signal.getsignal(signal.SIGINT)
    try:
        main(["fit", *fit_args(source, out / "part"), interrupt_at(5)])
    except SystemExit:
        pass  # Lightning turns Ctrl-C into exit status 1, after saving last.ckpt
    finally:
        signal.signal(signal.SIGINT, sigint)
    last = next((out / "part").rglob("last.ckpt"))
    start = time.perf_counter()
    main(["fit", *fit_args(source, out / "resumed"), f"--ckpt_path={last}"])
    print(
        f"resumed from step {torch.load(last, weights_only=True)['global_step']}: {time.perf_counter() - start:.0f} s"
    )
    full, resumed = last_checkpoint(out / "full"), last_checkpoint(out / "resumed")
    differ = [k for k in full["state_dict"] if not torch.equal(full["state_dict"][k], resumed["state_dict"][k])]
    print(f"steps {full['global_step']} and {resumed['global_step']}; weights that differ: {differ or 'none'}")


if __name__ == "__main__":
    main_()
