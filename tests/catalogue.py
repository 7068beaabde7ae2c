"""The bad-input catalogue: each case builds one bad input in an empty folder and tries to use it; it
must end in its promised error, whose message names the file, key or value and what is wrong, or, for the
few inputs the project handles without an error (a stale lock, too many workers), be handled as promised.

Cases live beside what they test (tests/test_reliability.py, tests/test_bad_inputs.py; an example's own in
its tests/ folder, deleted with it). Each case is one parametrized test (`cases`), run by `check`; every case
adds to one tally, which `pytest_terminal_summary` in tests/conftest.py prints at the end of the run.
"""

import contextlib
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

TALLY = {"tried": 0, "refused": 0, "handled": 0}


@dataclass
class BadInput:
    name: str
    attempt: Callable[..., object]  # given an empty folder, builds the bad input and tries to use it
    # The error it must end in; None: it must be handled without one (a stale lock taken over, workers lowered,
    # a run's files kept in its folder), which `attempt` checks, raising AssertionError otherwise
    error: type[BaseException] | None
    match: str  # must name the file or folder, and what is wrong ("" for a case handled without an error)
    needs_server: bool = False  # attempt(folder, serve_dir) with the conftest's local HTTP server
    needs_runs: bool = False  # attempt(folder, runs): data and checkpoints of tiny fits, made once per file


class Refused(Exception):
    """The command line stopped with a user error: exit status 2, an `error:` line, no traceback."""


def cli(*args: str) -> None:
    """`python -m project.cli ARGS` as the shell runs it, in this process; raises `Refused` with its
    `error:` message. Any other ending (a traceback, another exit status) fails the case."""
    # Imported here: conftest reads TALLY at the end of every run, which must not cost a torch import
    from project.engine.cli import main
    from project.engine.errors import USER_ERROR_EXIT, run_command

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            run_command(lambda: main(list(args)))
        except SystemExit as stopped:
            code = stopped.code
        else:
            return  # accepted: the catalogue reports it
    text = stderr.getvalue()
    found = re.search(r"^error: (.*)", text, re.MULTILINE | re.DOTALL)
    assert code == USER_ERROR_EXIT and found and "Traceback" not in text, f"exit status {code}, stderr:\n{text}"
    raise Refused(found.group(1))


def cases(bad_inputs: Sequence[BadInput]) -> list:
    """`bad_inputs` as pytest parameters, one test id per bad input."""
    ids = [re.sub(r"[^\w=.+-]+", "-", case.name).strip("-") for case in bad_inputs]
    assert len(set(ids)) == len(ids), "two bad inputs share a name"
    # A case that needs the file's fits waits for them: slow
    marks = [[pytest.mark.slow] * c.needs_runs for c in bad_inputs]
    return [pytest.param(case, id=i, marks=m) for case, i, m in zip(bad_inputs, ids, marks, strict=True)]


def check(case: BadInput, folder: Path, *extras: object) -> None:
    """Build and try one bad input in the empty `folder`; it must end in its promised error with a message
    matching the case's. Counted in TALLY, which tests/conftest.py prints at the end of the run."""
    TALLY["tried"] += 1
    if case.error is None:
        case.attempt(folder, *extras)
        assert not (folder / "ran").exists(), f"{case.name}: a payload ran"
        TALLY["handled"] += 1
        return
    try:
        case.attempt(folder, *extras)
    except case.error as err:
        assert re.search(case.match, str(err), re.DOTALL), f"message {str(err)!r} does not match {case.match!r}"
    except Exception as err:  # a crash of the wrong kind is not a clear error
        raise AssertionError(f"{case.name}: {type(err).__name__} instead of {case.error.__name__}: {err}") from err
    else:
        raise AssertionError(f"{case.name}: accepted without an error")
    finally:
        assert not (folder / "ran").exists(), f"{case.name}: a pickled payload ran"
    TALLY["refused"] += 1


def try_all(cases: Sequence[BadInput], tmp_path: Path, extras: Callable[[BadInput], list] = lambda case: []) -> str:
    """Run every case in one test; return the report line, and fail listing each case that was not refused as
    promised. Prefer one test per case (`cases` and `check`); this is for a catalogue not yet split up."""
    failures = []
    for i, case in enumerate(cases):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        try:
            case.attempt(folder, *extras(case))
        except case.error as err:
            if not re.search(case.match, str(err), re.DOTALL):
                failures.append(f"{case.name}: message {str(err)!r} does not match {case.match!r}")
        except Exception as err:  # a crash of the wrong kind is not a clear error
            failures.append(f"{case.name}: {type(err).__name__}: {err}")
        else:
            failures.append(f"{case.name}: accepted without an error")
        assert not (folder / "ran").exists(), f"{case.name}: a pickled payload ran"
    TALLY["tried"] += len(cases)
    TALLY["refused"] += len(cases) - len(failures)
    report = f"bad inputs tried: {len(cases)}, refused with a clear error: {len(cases) - len(failures)}"
    assert not failures, "\n".join([report, *failures])
    return report
