"""A user's mistake ends in one clear line and a non-zero exit; a bug ends in its traceback.

Raise `UserError` (or a subclass) for anything the user can fix: the entry point (`run_command`) prints it
as `error: <message>` and exits with status 2, no traceback (`PROJECT_DEBUG=1` shows it). The subclasses
also derive from the built-in exception that direct callers expect, so `except ValueError` keeps working.
"""

import errno
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

DEBUG_ENV = "PROJECT_DEBUG"
USER_ERROR_EXIT = 2  # argparse's status for usage errors
SIGTERM_EXIT = 128 + signal.SIGTERM  # 143: the shell's status for a process stopped by SIGTERM

T = TypeVar("T")


class UserError(Exception):
    """Something the user gave (config, data, checkpoint, disk) cannot be used; the message says how to fix it."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work: the message names the key."""


class DataError(UserError, ValueError):
    """Data that is missing, malformed or does not fit the task: the message names the file."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used for this run: the message names the file."""


class DiskFullError(UserError, OSError):
    """The disk filled up while writing `filename`."""

    def __init__(self, path: str | os.PathLike):
        super().__init__(
            errno.ENOSPC,
            f"No space left on the device holding {path}: free some space there, or write the run "
            "elsewhere (--trainer.logger.init_args.save_dir, --trainer.default_root_dir); checkpoints "
            "already written are intact",
            str(path),
        )

    def __str__(self) -> str:
        return self.strerror


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no")


def _chain(err: BaseException) -> Iterator[BaseException]:
    """`err` and the exceptions it was raised from or while handling (each once)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


# The optional packages and the pyproject extra that installs each (`pip install -e ".[sweep]"`)
EXTRAS = {"optuna": "sweep", "optuna_integration": "sweep", "litdata": "stream", "mlflow": "mlflow", "timm": "timm"}


def missing_extra(err: BaseException) -> str | None:
    """For an import of an optional package that failed: what to install, in one line; else None. Lightning's own
    check (its MLflow logger) names the package only in its message."""
    if not isinstance(err, ImportError):
        return None
    name = (getattr(err, "name", None) or "").split(".")[0]
    package = name if name in EXTRAS else next((p for p in EXTRAS if f"'{p}" in str(err)), None)
    if package is None:
        return None
    extra = EXTRAS[package]
    return (
        f"this needs {package}, which the plain install leaves out: pip install -e '.[{extra}]' adds it "
        "(`.[dev]` installs every extra)"
    )


def as_user_error(err: BaseException) -> BaseException | None:
    """The user error `err` stands for, or None when it is a bug: besides `UserError`, a missing file the user
    named, and a full disk anywhere in the chain (the save-on-exception checkpoint fails on the disk again)."""
    for cause in _chain(err):
        if isinstance(cause, UserError):
            return cause
        if (extra := missing_extra(cause)) is not None:
            return ConfigError(extra)
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return DiskFullError(cause.filename or "the run's output folder")
        if isinstance(cause, OSError) and cause.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and cause.filename:
            return ConfigError(
                f"cannot write {cause.filename}: {cause.strerror}. Choose a folder you may write to "
                "(--trainer.logger.init_args.save_dir for the run, --predictions.output for predictions)"
            )
    from lightning.fabric.utilities.exceptions import MisconfigurationException  # here: networks import only torch

    for cause in _chain(err):
        if isinstance(cause, MisconfigurationException):  # Lightning refusing a trainer setting the user gave
            return ConfigError(_misconfiguration(str(cause)))
    if isinstance(err, FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return err
    return None


def _misconfiguration(message: str) -> str:
    if "No supported gpu backend found" in message:
        return (
            "trainer.accelerator=gpu, but this machine has no usable GPU (torch.cuda.is_available() is False): "
            "use --trainer.accelerator auto (the best this machine has) or cpu"
        )
    return f"the trainer refused its config: {message.strip()}"


def run_command(main: Callable[[], T]) -> T:
    """Run the command line's `main`, turning a user error into one line on stderr and a non-zero exit. A command
    stopped by SIGINT or SIGTERM exits with 130 or 143, as a killed process would, so `fit && test` stops."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException  # here: networks import only torch

    from project.engine import signals
    from project.engine.internals import clean_interrupt_messages

    clean_interrupt_messages()
    signals.forget()
    previous = signals.install()
    try:
        result = main()
    except (SIGTERMException, signals.Stopped) as stop:
        # after a checkpoint saved between two steps (SIGTERMException), or at once (Stopped)
        signum = getattr(stop, "signum", None) or signals.received() or signal.SIGTERM
        if isinstance(stop, signals.Stopped):
            print(f"Stopped by {signals.signal_name(signum)}.", file=sys.stderr)
        sys.exit(signals.exit_status(signum))
    except SystemExit:
        if signals.received():
            sys.exit(signals.exit_status(signals.received()))
        raise
    except Exception as err:
        user_error = as_user_error(err)
        if user_error is None or debug_enabled():
            raise
        message = str(user_error)
        if isinstance(user_error, OSError) and not isinstance(user_error, DiskFullError):
            message = f"{user_error.strerror}: {user_error.filename}" if user_error.filename else message
        print(f"error: {message}", file=sys.stderr)
        print(f"(set {DEBUG_ENV}=1 to see the traceback)", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
    finally:
        signals.restore(previous)
    if signals.received():  # a fit that had finished its last step when the signal came
        sys.exit(signals.exit_status(signals.received()))
    return result
