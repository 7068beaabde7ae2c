"""Stop signals (Ctrl-C's SIGINT, SIGTERM): one step's whole state saved, and the shell's exit status.

While training steps run, the first SIGINT or SIGTERM asks Lightning to stop after the step in progress,
as its own SIGTERM handling does, so the checkpoint holds one step's weights, optimizer, loader position
and RNG; a KeyboardInterrupt mid-step would save step N's weights with batch N+1 handed out. A second signal
stops at once and saves nothing. Outside the steps a signal stops at once with `Stopped`, and the command
exits with 128 + the signal's number (130, 143), as a shell expects.
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
_trainer: Any = None  # the trainer whose training steps are running, or None
_received: list[int] = []  # stop signals this process received, in order


class Stopped(BaseException):
    """A stop signal outside the training steps (or a second one); a BaseException, as KeyboardInterrupt is, so
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


def forget() -> None:
    """Forget received signals (a new command in the same process, as tests run them)."""
    _received.clear()


def _handle(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _owner:
        return  # a forked DataLoader worker: Ctrl-C reaches the whole process group; the main process decides
    first = not _received
    _received.append(signum)
    if _trainer is not None and first:
        request_stop_after_this_step(_trainer)
        if signum != signal.SIGTERM:  # Lightning announces a SIGTERM itself
            rank_zero_info(
                f"Received {signal.Signals(signum).name}: stopping after this step and saving it "
                "(press Ctrl-C again to stop at once without saving)"
            )
        return
    raise Stopped(signum)


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


def training_steps(trainer: Any) -> None:
    """From now on a stop signal stops `trainer` after its current step (None: at once)."""
    global _trainer
    _trainer = trainer


def signal_name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum else "SIGTERM"
