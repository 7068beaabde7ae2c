"""What agreeing on a stop costs each training step under DDP: the project's background all-reduce on a gloo group
(`project.engine.callbacks.agreement.StopAgreement`) against Lightning 2.6's own per-step broadcast of rank 0's
flag read back with `.item()` (`_TrainingEpochLoop._broadcast_sigterm_tensor`, which the project turns off).

    python benchmarks/stop_agreement.py                 # 2 CPU processes, gloo, 2,000 steps
    python benchmarks/stop_agreement.py --steps 500 --work-ms 5

Each of `--world` processes runs `--steps` "steps" of `--work-ms` milliseconds of busy work and an all-reduce
of `--grad-mb` MB (a stand-in for forward, backward and DDP's gradient all-reduce, which keeps the ranks in
step), with the project's agreement or Lightning's broadcast after each, and times each call
on rank 0: the median and mean time a step spends in it, in microseconds, over `--repeats` alternating runs.
On a GPU, Lightning's broadcast also waits for the step's kernels (`.item()`); the agreement never touches
the device.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


class _Trainer:  # what StopAgreement reads of a trainer
    def __init__(self, world: int):
        self.world_size = world
        self.strategy = None


def worker(rank: int, world: int, port: int, args: argparse.Namespace, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from project.engine.callbacks.agreement import StopAgreement

    def lightning_broadcast() -> None:
        flag = torch.tensor([0])
        dist.broadcast(flag, src=0)
        flag.item()

    agreement = StopAgreement(_Trainer(world))
    grads = torch.zeros(int(args.grad_mb * 1e6 / 4))
    variants = {"agreement": lambda: agreement.after_step(0, False), "lightning": lightning_broadcast}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, after_step in variants.items():
            dist.barrier()
            for _ in range(args.steps):
                busy(args.work_ms)
                dist.all_reduce(grads)
                start = time.perf_counter()
                after_step()
                times[name].append(time.perf_counter() - start)
            agreement.close()
    if rank == 0:
        results.update({name: (statistics.median(t), statistics.fmean(t)) for name, t in times.items()})
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--work-ms", type=float, default=2.0, help="busy milliseconds standing for a step")
    parser.add_argument("--grad-mb", type=float, default=1.0, help="MB of gradients all-reduced each step")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(args.world, port, args, results), nprocs=args.world)
        print(f"| after each step ({args.world} CPU processes, gloo, {args.work_ms:g} ms steps) | median | mean |")
        print("| --- | --- | --- |")
        for name, label in (
            ("agreement", "the project's agreement (background all-reduce)"),
            ("lightning", "Lightning 2.6's broadcast + `.item()` (turned off)"),
        ):
            median, mean = results[name]
            print(f"| {label} | {median * 1e6:.0f} us | {mean * 1e6:.0f} us |")


if __name__ == "__main__":
    main()
