"""A user's mistake ends in one `error:` line and exit status 2, without a traceback; a bug keeps its
traceback; PROJECT_DEBUG=1 shows the traceback of user errors too (project/engine/errors.py).

The catalogue in tests/test_reliability.py runs every bad input through the same entry point in this
process; here real `python -m project.cli` processes show what a shell sees.
"""

import errno
import os
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from project.engine.errors import (
    DEBUG_ENV,
    SIGTERM_EXIT,
    USER_ERROR_EXIT,
    ConfigError,
    DiskFullError,
    as_user_error,
    run_command,
)
from tests.recipes import tiny_args
from tests.shell import run_commands
from tests.test_bad_inputs import bomb


def _raise(err: BaseException):
    def main():
        raise err

    return main


def test_a_user_error_is_one_line_and_exit_status_2(capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as stopped:
        run_command(_raise(ConfigError("model.x=3 is wrong: use 2")))
    assert stopped.value.code == USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "error: model.x=3 is wrong: use 2"
    assert "Traceback" not in err and DEBUG_ENV in err


def test_a_full_disk_names_the_file(capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    full = OSError(errno.ENOSPC, "No space left on device", "/runs/x/events.out")
    with pytest.raises(SystemExit) as stopped:
        run_command(_raise(full))
    assert stopped.value.code == USER_ERROR_EXIT
    assert "error: No space left on the device holding /runs/x/events.out" in capsys.readouterr().err


def test_the_debug_variable_shows_the_traceback(monkeypatch):
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ConfigError):
        run_command(_raise(ConfigError("bad")))


@pytest.mark.parametrize("bug", [RuntimeError("boom"), KeyError("x"), ValueError("a bug's ValueError")])
def test_a_bug_keeps_its_traceback(bug, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(type(bug)):
        run_command(_raise(bug))


def test_sigterm_exits_143():
    with pytest.raises(SystemExit) as stopped:
        run_command(_raise(SIGTERMException()))
    assert stopped.value.code == SIGTERM_EXIT == 143


class Boom(L.Callback):
    """A bug in a callback: not the user's mistake, so its traceback must show."""

    def setup(self, trainer, pl_module, stage):
        raise RuntimeError("a bug in the project")


# Runs `python -m project.cli` with a full disk: every torch.save fails as a write to a full disk does
FULL_DISK = textwrap.dedent(
    """
    import errno, os, runpy, sys, torch
    sys.path.insert(0, os.getcwd())  # the tests' own recipe (tests/tiny.yaml) names tests.recipes
    def save(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    torch.save = save
    sys.argv = ["project.cli", *sys.argv[1:]]
    runpy.run_module("project.cli", run_name="__main__")
    """
)


def shell_errors(commands: dict[str, tuple[list[str], str]]) -> list[str]:
    """Runs each command (a process each: tests/shell.py) and returns what went wrong: an exit status other
    than 2, a traceback, or an `error:` line that does not say what it must."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop(DEBUG_ENV, None)
    done = run_commands([cmd for cmd, _ in commands.values()], env)
    failures = []
    for (name, (_, expected)), proc in zip(commands.items(), done, strict=True):
        err = proc.stderr
        error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
        if proc.returncode != USER_ERROR_EXIT or "Traceback" in err or len(error_lines) != 1:
            failures.append(f"{name}: exit status {proc.returncode}, stderr:\n{err[-2000:]}")
        elif expected not in error_lines[0]:
            failures.append(f"{name}: {error_lines[0]!r} does not say {expected!r}")
    return failures


CLI = [sys.executable, "-m", "project.cli"]


def _commands(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name: (command line, what stderr's error line must say) for issue 12's user errors that are not
    about one data set (missing and bad data files: tests/test_cifar10_data.py)."""
    tiny = tiny_args(tmp / "logs", epochs=1)
    (tmp / "malformed.yaml").write_text("trainer:\n  max_epochs: 3\n   precision: 32\n")
    (tmp / "empty.yaml").write_text("")
    (tmp / "payload.ckpt").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp / "bomb.yaml").write_text(bomb())
    return {
        "bad config value": ([*CLI, "fit", *tiny, "--trainer.max_epochs=many"], "max_epochs"),
        "malformed YAML": ([*CLI, "fit", *tiny, f"--config={tmp / 'malformed.yaml'}"], "malformed.yaml, line 3"),
        "empty YAML": ([*CLI, "fit", *tiny, f"--config={tmp / 'empty.yaml'}"], "empty.yaml is empty"),
        "refused checkpoint": ([*CLI, "test", *tiny, f"--ckpt_path={tmp / 'payload.ckpt'}"], "payload.ckpt is not"),
        "wrong --ckpt_path": ([*CLI, "test", *tiny, f"--ckpt_path={tmp}"], "is a folder"),
        "bad config value at construction": ([*CLI, "fit", *tiny, "--model.label_smoothing=2"], "label_smoothing"),
        "disk full": ([sys.executable, "-c", FULL_DISK, "fit", *tiny], "No space left on the device holding"),
        # issue 24's
        "abbreviated key": ([*CLI, "fit", *tiny, "--trainer.max_epoch", "3"], "did you mean --trainer.max_epochs"),
        "GPU asked of a machine without one": ([*CLI, "fit", *tiny, "--trainer.accelerator=gpu"], "no usable GPU"),
        "union dump": ([*CLI, "fit", *tiny, "--data.batch_size", "abc"], "data.batch_size=abc is not accepted"),
        "YAML bomb": ([*CLI, "fit", *tiny, f"--config={tmp / 'bomb.yaml'}"], "bomb.yaml: its aliases"),
    }


@pytest.mark.slow
def test_user_errors_from_the_shell_have_no_traceback(tmp_path):
    """Each of issue 12's user errors in a real process: exit status 2, `error: ...`, no traceback."""
    failures = shell_errors(_commands(tmp_path))
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_from_the_shell_a_bug_shows_its_traceback_and_debug_shows_a_user_errors(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    tiny = tiny_args(tmp_path / "logs", epochs=1)
    bug_command = [*CLI, "fit", *tiny, f"--trainer.callbacks+={__name__}.Boom"]
    user_error = [*CLI, "fit", *tiny, "--model.label_smoothing=2"]
    bug, debug = run_commands([bug_command, user_error], env, envs=[None, {**env, DEBUG_ENV: "1"}])
    assert bug.returncode == 1 and "Traceback" in bug.stderr and "a bug in the project" in bug.stderr
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr


def test_disk_full_while_checkpointing_names_the_checkpoint(tmp_path, monkeypatch):
    from project.engine.checkpoints import AtomicCheckpointIO

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(DiskFullError, match=r"No space left on the device holding .*last\.ckpt") as raised:
        AtomicCheckpointIO().save_checkpoint({"w": torch.ones(1)}, tmp_path / "last.ckpt")
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "last.ckpt")
    assert list(tmp_path.iterdir()) == [], "the temporary file must be removed"


@pytest.mark.parametrize(
    ("missing", "extra"),
    [
        (ModuleNotFoundError("No module named 'optuna'", name="optuna"), "sweep"),
        (ModuleNotFoundError("No module named 'litdata.streaming'", name="litdata.streaming"), "stream"),
        # Lightning's MLflow logger names the package only in its message
        (ModuleNotFoundError("Requirement 'mlflow>=1.0.0' not met. HINT: `pip install -U 'mlflow'`"), "mlflow"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(missing, extra):
    error = as_user_error(missing)
    assert isinstance(error, ConfigError) and f"pip install -e '.[{extra}]'" in str(error), error


def test_a_missing_package_that_is_no_extra_is_a_bug():
    assert as_user_error(ModuleNotFoundError("No module named 'nope'", name="nope")) is None
