"""Stop signals (Ctrl-C's SIGINT, SIGTERM, SLURM's requeue signal): one step's whole state saved, and the shell's
exit status.

While training steps run, the first SIGINT or SIGTERM is recorded here (one process asks Lightning at once to
stop after the step in progress); after each step every DDP rank agrees whether one of them received one, and
all stop after the same step (`project.engine.callbacks.stopping`), so the checkpoint holds one step's weights,
optimizer, loader position and RNG. A second Ctrl-C stops at once and saves nothing; a repeated SIGTERM changes
nothing. Outside the steps a signal stops at once with `Stopped`, and the command exits with 128 + the signal's
number (130, 143), as a shell expects. A process forked from this one (a DataLoader worker) ignores the
signals: the main process decides.
"""

import os
import signal
import threading
from types import FrameType
from typing import Any

from lightning.pytorch.utilities import rank_zero_info

from project.engine.internals import request_stop_after_this_step

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_owner = os.getpid()
_training = False  # whether training steps are running (a signal then waits for the end of the step)
_alone: Any = None  # the trainer of a one-process fit, whose signal needs no agreement
_received: list[int] = []  # stop signals this process received, in order
_pending: int | None = None  # a stop signal received during the steps, not yet acted on
_requeue_pending = False  # SLURM's requeue signal received during the steps, not yet acted on
_stopped_by: int | None = None  # the signal the processes agreed to stop for (received here or by another rank)


class Stopped(BaseException):
    """A stop signal outside the training steps (or a second Ctrl-C); a BaseException, as KeyboardInterrupt is, so
    that no `except Exception` swallows it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def exit_status(signum: int) -> int:
    """The status a shell gives a process stopped by `signum`: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


def received() -> int | None:
    """The first stop signal this process received, or None."""
    return _received[0] if _received else None


def stop_signal() -> int | None:
    """The signal this run stops for: the one every rank agreed on, else the first this process received."""
    return _stopped_by or received()


def forget() -> None:
    """Forget received signals (a new command in the same process, as tests run them)."""
    global _pending, _requeue_pending, _stopped_by
    _received.clear()
    _pending, _requeue_pending, _stopped_by = None, False, None


def _handle(signum: int, frame: FrameType | None) -> None:
    global _pending
    if os.getpid() != _owner:  # a forked DataLoader worker: Ctrl-C reaches it too; the main process decides
        if signum == signal.SIGTERM:
            _worker_sigterm(signum, frame)  # the next one ends it (see `ignore_in_worker`)
        return
    first = not _received
    _received.append(signum)
    if _training and first:
        _pending = signum
        if _alone is not None and not _alone.validating:  # the loop stops after the step in progress
            request_stop_after_this_step(_alone)
        rank_zero_info(
            f"Received {signal.Signals(signum).name}: stopping after this step and saving it "
            "(press Ctrl-C again to stop at once without saving)"
        )
        return
    if _training and signum != signal.SIGINT:
        return  # stopping already: a repeated SIGTERM asks nothing new (a scheduler that insists sends SIGKILL)
    raise Stopped(signum)


def hold_requeue(signum: int, frame: FrameType | None) -> None:
    """SLURM's requeue signal during the steps: acted on by every rank after the same step."""
    global _requeue_pending
    if os.getpid() == _owner:
        _requeue_pending = True


def pending() -> tuple[int, bool]:
    """(the stop signal received and not yet acted on, or 0; whether a requeue was asked for)."""
    return _pending or 0, _requeue_pending


def agreed(signum: int) -> None:
    """Every rank stops for `signum` after this step (received here or by another rank)."""
    global _pending, _requeue_pending, _stopped_by
    _stopped_by = signum
    _pending, _requeue_pending = None, False


def ignore_in_worker(worker_id: int = 0) -> None:
    """A DataLoader's `worker_init_fn`: the worker leaves Ctrl-C and a SIGTERM to the main process (a terminal and
    SLURM signal every process), which stops between two steps; a worker killed by one would fail the step in
    progress. A second SIGTERM ends the worker: that is how the main process ends a worker that does not stop
    (torch's `terminate`, then Python's at exit), which would otherwise keep the main process waiting. Workers
    started by spawn do not inherit `_handle`, so they need this."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _worker_sigterm)


def _worker_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the next one ends the worker


def main_thread() -> bool:
    """Signal handlers can only be set from the main thread."""
    return threading.current_thread() is threading.main_thread()


def install() -> dict[int, Any]:
    """Handle SIGINT and SIGTERM here; returns the handlers replaced (none outside the main thread)."""
    global _owner
    if not main_thread():
        return {}
    _owner = os.getpid()
    # An ignored signal stays ignored: a shell starts background jobs with SIGINT ignored, so that Ctrl-C
    # in the terminal does not reach them
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    for s in previous:
        signal.signal(s, _handle)
    return previous


def restore(previous: dict[int, Any]) -> None:
    if not main_thread():
        return
    for s, handler in previous.items():
        if handler is not None:
            signal.signal(s, handler)


def training_steps(running: bool, trainer: Any = None) -> None:
    """From now on a stop signal waits for the end of the step (`running`), or stops at once; a fit's steps
    start with nothing pending (a previous fit in this process may have stopped). `trainer`: a one-process
    fit's, which a signal asks at once to stop after the step in progress (no other process to agree with;
    during validation, it waits for the validation's end)."""
    global _training, _alone, _pending, _requeue_pending, _stopped_by
    if running:
        _pending, _requeue_pending, _stopped_by = None, False, None
    _training = running
    _alone = trainer if running else None


def signal_name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum else "SIGTERM"
