"""Fits of 2 CPU processes (DDP over gloo) stopped by a signal where a test wants it, as a cluster stops them:
tests/test_ddp_stops.py and tests/test_clusters.py.

A fit runs `python -m project.cli fit` in a session of its own, so a signal to "every process" reaches what a
terminal's Ctrl-C or SLURM's `scancel` reaches: both ranks and their DataLoader workers. Every wait has a
deadline: a hang fails the test with the output so far and every process's Python stacks (faulthandler, on
SIGABRT), and the whole session is killed.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 240  # seconds a fit of these tests may take, hangs included, on a busy 2-core machine


class SignalAt(L.Callback):
    """At the start of training step `step` (in the middle of the step, where most of a real run's time falls),
    rank `rank` (-1: every rank) sends `signum` to itself (`to: "self"`), to every process of the fit's session
    (`to: "all"`, as Ctrl-C or SLURM's scancel do) or to its parent (`to: "parent"`: torchrun's agent, as a
    scheduler signals torchrun). Each rank writes the step it ended at to `<record>/rank<N>` (when given)."""

    observes_only = True  # it stops a run and changes nothing a run computes: a resume may leave it out

    def __init__(self, signum: int, step: int, rank: int = 0, to: str = "self", record: str | None = None):
        self.signum, self.step, self.rank, self.to, self.record = signum, step, rank, to, record
        self.sent = False

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.step and self.rank in (-1, trainer.global_rank) and not self.sent:
            self.sent = True
            if self.to == "all":
                os.killpg(os.getpgid(0), self.signum)
            else:
                os.kill(os.getppid() if self.to == "parent" else os.getpid(), self.signum)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._write(trainer, type(exception).__name__)

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer, "finished")

    def _write(self, trainer, how: str) -> None:
        if self.record:
            Path(self.record, f"rank{trainer.global_rank}").write_text(f"{trainer.global_step} {how}")


def ended(record: Path, ranks: int = 2) -> list[str]:
    """What each rank wrote at its end (`SignalAt`): "<global step> <exception or finished>"."""
    return [(record / f"rank{r}").read_text() if (record / f"rank{r}").is_file() else "nothing" for r in range(ranks)]


def signal_at(signum: int, step: int, rank: int = 0, to: str = "self", record: Path | None = None) -> str:
    init = f'{{"signum": {int(signum)}, "step": {step}, "rank": {rank}, "to": "{to}", "record": "{record or ""}"}}'
    return f'--trainer.callbacks+={{"class_path": "{__name__}.SignalAt", "init_args": {init}}}'


def ddp_args(devices: int = 2) -> list[str]:
    return [
        "--trainer.accelerator=cpu",
        f"--trainer.devices={devices}",
        *(["--trainer.strategy=ddp"] if devices > 1 else []),
        "--trainer.deterministic=true",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(command: list[str], *, env: dict[str, str] | None = None, deadline: float = DEADLINE) -> tuple[int, str]:
    """Run `command` in a session of its own; (exit status, output). Fails the test, naming the processes still
    there, when it or anything it started outlives `deadline`; kills them all in any case."""
    environment = {**os.environ, "MASTER_PORT": str(free_port()), "PYTHONUNBUFFERED": "1", **(env or {})}
    environment["PYTHONFAULTHANDLER"] = "1"  # a SIGABRT prints every thread's stack: where a hang waits
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=deadline)
        left = _wait_for_session(proc.pid, time.monotonic() + 30)
        assert not left, f"processes outlived the fit: {left}\n{output[-4000:]}"
        return proc.returncode, output
    except subprocess.TimeoutExpired:
        left = _session(proc.pid)
        _dump_stacks(left)
        output = _kill_session(proc)
        raise AssertionError(f"hung: still running after {deadline} s ({left})\n{output[-12000:]}") from None
    finally:
        _kill_session(proc)


def _session(sid: int) -> list[str]:
    """`pid command` of every process in session `sid`."""
    out = subprocess.run(["ps", "-e", "-o", "sid=,pid=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in out.splitlines()]
    return [f"{r[1]} {r[2][:80]}" for r in rows if len(r) == 3 and r[0] == str(sid)]


def _wait_for_session(sid: int, until: float) -> list[str]:
    while (left := _session(sid)) and time.monotonic() < until:
        time.sleep(0.2)
    return left


def _dump_stacks(processes: list[str]) -> None:
    """SIGABRT to each of `processes` ("pid command"): faulthandler writes its threads' stacks to the output."""
    for line in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
            os.kill(int(line.split()[0]), signal.SIGABRT)
    if processes:
        time.sleep(2)  # faulthandler writes before the session is killed


def _kill_session(proc: subprocess.Popen) -> str:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        return proc.communicate(timeout=10)[0] or ""
    except (subprocess.TimeoutExpired, ValueError):
        return ""


def fit(args: list[str], **kwargs) -> tuple[int, str]:
    return run([sys.executable, "-m", "project.cli", "fit", *args], **kwargs)


def last_checkpoint(log_dir: Path) -> Path:
    found = sorted(log_dir.rglob("last.ckpt"))
    assert len(found) == 1, found
    return found[0]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def differences(full: dict, resumed: dict) -> list[str]:
    """What differs between two checkpoints' weights, optimizer and schedule."""
    differ = [k for k, v in full["state_dict"].items() if not torch.equal(v, resumed["state_dict"][k])]
    for i, (a, b) in enumerate(zip(full["optimizer_states"], resumed["optimizer_states"], strict=True)):
        for key, state in a["state"].items():
            differ += [f"optimizer {i} {key}.{k}" for k in state if not torch.equal(state[k], b["state"][key][k])]
    if full["lr_schedulers"] != resumed["lr_schedulers"]:
        differ.append("lr_schedulers")
    return differ
