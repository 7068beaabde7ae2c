"""One trial: a normal `fit` through the CLI with the sampled values as overrides, in
`<save_dir>/<study>/trial_<number>`. Optuna's Lightning integration reports the monitored metric and prunes
(optuna-integration's, built on `lightning.pytorch`: one on `pytorch_lightning` is not a callback here)."""

import gc
import os
import signal
import socket
from pathlib import Path

import lightning as L
import optuna
import torch
from optuna_integration import PyTorchLightningPruningCallback

from project.engine import best, signals
from project.engine.checkpoints import is_running
from project.engine.cli import main
from project.engine.multirun import InterruptWatch
from project.engine.runs import run_folder
from project.engine.sweep.space import Param, cli_args

# A trial killed with its process (or interrupted) is run again with the same values, at most this
# often: a trial that brings its process down every time (e.g. the kernel's OOM killer) is then
# recorded as failed instead of being retried at every resume.
MAX_RETRIES = 2


def this_process() -> dict[str, object]:
    """This process, told apart from a later one that reuses its id by its start time."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}


def is_dead_here(process: object) -> bool:
    """Whether `process` (a trial's `this_process()`) ran on this host and is no longer running."""
    if not isinstance(process, dict) or process.get("host") != socket.gethostname():
        return False  # another machine's: its heartbeat tells
    pid = process.get("pid")
    if not isinstance(pid, int):
        return False
    if not is_running(pid):
        return True
    return process.get("started") is not None and _start_time(pid) != process.get("started")


def _start_time(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (Linux), or None where /proc does not say."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def retry_callback() -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    """Queues a trial's values to run again, marking the new trial as a re-run of it."""
    return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)


class TrialFailed(RuntimeError):
    pass


class TrialRecorder(InterruptWatch):
    """Notes what the study needs from a trial's fit: its run folder, the best value of the monitored metric, and
    whether the user interrupted it."""

    def __init__(self, trial: optuna.Trial, monitor: str, mode: str):
        self.trial = trial
        self.monitor, self.better = monitor, best.better(mode)
        self.best: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.trial.set_user_attr("run_dir", str(run_folder(trainer).resolve()))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        value = float(value)  # one read-back per validation, as the pruning callback's own
        if value == value:  # not NaN
            self.best = value if self.best is None else self.better(self.best, value)


def run_trial(trial: optuna.Trial, base_args: list[str], space: list[Param], monitor: str, mode: str) -> float:
    """Fit one trial; returns its best value of `monitor` (better: `mode`, the recipe's checkpoint's). Raises on
    failure (Optuna records the trial as failed and the study goes on), `optuna.TrialPruned` when pruned,
    KeyboardInterrupt when interrupted."""
    params = {param.key: param.suggest(trial) for param in space}
    trial.set_user_attr("run_dir", None)  # a retry starts with its predecessor's attributes
    # Who runs it: a later start of the sweep on this host re-runs it at once if this process is gone
    trial.set_user_attr("process", this_process())
    args = [*base_args, *cli_args(params), f"--trainer.logger.init_args.version=trial_{trial.number}"]
    recorder = TrialRecorder(trial, monitor, mode)
    pruning = PyTorchLightningPruningCallback(trial, monitor=monitor)
    sigint = signal.getsignal(signal.SIGINT)
    try:
        main(args, callbacks=[recorder, pruning])
    except SystemExit as exit:
        if recorder.interrupted:
            raise _interrupted(trial) from None
        error = f"the CLI rejected this trial's values (exit code {exit.code}; its message is printed above)"
        trial.set_user_attr("error", error)
        raise TrialFailed(error) from None
    except (KeyboardInterrupt, signals.Stopped):  # outside the fit (while the data or model were set up)
        raise _interrupted(trial) from None
    except optuna.TrialPruned:
        raise
    except Exception as err:
        trial.set_user_attr("error", f"{type(err).__name__}: {err}")
        raise
    finally:
        # Lightning ignores further Ctrl-C after an interrupt; the next trial should not
        signal.signal(signal.SIGINT, sigint)
        gc.collect()  # the trainer, model and loaders of this trial
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # after an out-of-memory error, give the next trial the whole GPU
    if recorder.best is None:
        error = f"the fit logged no {monitor} (the recipe's checkpoint.monitor): it must validate at least once"
        trial.set_user_attr("error", error)
        raise TrialFailed(error)
    return recorder.best


def _interrupted(trial: optuna.Trial) -> KeyboardInterrupt:
    """Queue the interrupted trial's values to run again (as a killed process's trial is, through the
    heartbeat), so resuming the sweep loses no trial."""
    frozen = next(t for t in trial.study.get_trials() if t.number == trial.number)
    retry_callback()(trial.study, frozen)
    return KeyboardInterrupt()
