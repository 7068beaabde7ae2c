import functools
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

# One thread per process, set before anything imports torch, and inherited by the tests' subprocesses: the
# tests train tiny nets, which a second thread cannot speed up, and two threads on a busy 2-core machine
# spin-wait for each other (a tiny fit took 3x the CPU; BENCHMARKS.md saw up to 50x). Set it to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Ctrl-C as a terminal sends it: a shell starts a background job (`pytest &`, a CI step) with SIGINT
# ignored, which its processes and their children inherit, and the interrupt tests would then test nothing
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPOSITORY = Path(__file__).resolve().parents[1]


def _die_with_the_tests() -> None:
    """Run in each child process the tests start, before it execs: the kernel kills it when the process that
    started it ends, however that ends (Ctrl-C, a pytest-xdist worker killed), so nothing the tests started
    runs on (a killed test's checkpoint writer once looped for 21 minutes)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


if sys.platform == "linux":
    _popen_init = subprocess.Popen.__init__

    def _popen_dying_with_the_tests(self, *args, **kwargs):
        kwargs.setdefault("preexec_fn", _die_with_the_tests)
        _popen_init(self, *args, **kwargs)

    subprocess.Popen.__init__ = _popen_dying_with_the_tests


TOOL_CACHES = (".pytest_cache", ".ruff_cache", "__pycache__")  # pytest's, ruff's and Python's own, not a test's


def _repository_files() -> set[str]:
    """What lies in the repository's root and in its logs/ (where a run without a save_dir of its own goes)."""
    found = {p.name for p in REPOSITORY.iterdir() if p.name not in TOOL_CACHES}
    logs = REPOSITORY / "logs"
    return found | ({str(p.relative_to(REPOSITORY)) for p in logs.rglob("*")} if logs.is_dir() else set())


def _remove(left: set[str]) -> None:
    for name in sorted(left, key=len, reverse=True):
        path = REPOSITORY / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _nothing_left_in_the_repository():
    """A test that leaves files in the repository (runs in its logs/, files at its root) fails, naming them, and
    they are removed. One test at a time only: under pytest-xdist the session's end checks instead."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    before = _repository_files()
    yield
    left = _repository_files() - before
    if left:
        _remove(left)
        pytest.fail(f"the test left {sorted(left)} in the repository; give its runs a save_dir of its own")


# Real data for the optional real-data tests: a folder holding the archives they name (`real_data_file`), e.g.
# `cifar10-jpeg.tar.xz` (the CIFAR-10 images as JPEGs, train/ and test/ class folders, read as an image folder).
# `.ci/run` sets it when such a folder is at hand; without it those tests skip, naming the variable.
TEST_DATA_ENV = "PROJECT_TEST_DATA"


def real_data_file(name: str) -> Path:
    """`name` inside $PROJECT_TEST_DATA; skips the test, naming the variable, when it is not there."""
    folder = os.environ.get(TEST_DATA_ENV)
    if not folder:
        pytest.skip(f"real-data test: set {TEST_DATA_ENV} to a folder holding {name}")
    path = Path(folder) / name
    if not path.is_file():
        pytest.skip(f"real-data test: no {name} in {TEST_DATA_ENV}={folder}")
    return path


def cpu_trainer_args(log_dir: Path, epochs: int) -> list[str]:
    """One CPU process, frequent logging (tiny runs have few steps), no progress bar, logs in `log_dir`."""
    return [
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        f"--trainer.max_epochs={epochs}",
        "--trainer.log_every_n_steps=2",
        "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={log_dir}",
    ]


@pytest.fixture
def serve_dir():
    """Serve a local folder over HTTP on 127.0.0.1 (a stand-in for the official host); returns its base URL.

    A real HTTP server, because torchvision's downloader needs response headers a file:// URL lacks."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.RequestHandlerClass.log_message = lambda *args: None  # keep pytest output clean
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True, scope="session")
def _parsers_built_once():
    """Every in-process `project.cli.main` takes a copy of a parser built once (tests/parser_cache.py)."""
    from tests.parser_cache import parsers_built_once

    with parsers_built_once():
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first: pytest-xdist's workers (taking two tests at a time, pyproject.toml) then finish
    together on the many quick ones, instead of one starting a minute-long test when the other is done."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # a stable sort keeps the rest in order


def pytest_sessionstart(session) -> None:
    session.config._repository_files = _repository_files()


def pytest_sessionfinish(session) -> None:
    """A pytest-xdist worker hands its share of the catalogue's tally to the main process; the main process fails
    a session whose tests left files in the repository, and removes them."""
    before = getattr(session.config, "_repository_files", None)
    if not hasattr(session.config, "workeroutput") and before is not None:
        left = _repository_files() - before
        if left:
            _remove(left)
            session.config._left_in_repository = sorted(left)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if hasattr(session.config, "workeroutput"):
        from tests.catalogue import TALLY

        session.config.workeroutput["bad_inputs"] = dict(TALLY)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist's main process: add a finished worker's share of the tally."""
    from tests.catalogue import TALLY

    for key, count in getattr(node, "workeroutput", {}).get("bad_inputs", {}).items():
        TALLY[key] += count


def pytest_terminal_summary(terminalreporter) -> None:
    """The whole bad-input catalogue's totals (tests/catalogue.py), over every file that holds cases; what the tests
    left in the repository."""
    from tests.catalogue import TALLY

    left = getattr(terminalreporter.config, "_left_in_repository", None)
    if left:
        terminalreporter.write_line(f"FAILED: the tests left {left} in the repository (removed); -n 0 names the test")

    if TALLY["tried"]:
        terminalreporter.write_line(
            f"[reliability] all catalogues: bad inputs tried: {TALLY['tried']}, "
            f"refused with a clear error: {TALLY['refused']}, handled without one: {TALLY.get('handled', 0)}"
        )
