import functools
import http.server
import os
import signal
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


def pytest_sessionfinish(session) -> None:
    """A pytest-xdist worker hands its share of the catalogue's tally to the main process."""
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
    """The whole bad-input catalogue's totals (tests/catalogue.py), over every file that holds cases."""
    from tests.catalogue import TALLY

    if TALLY["tried"]:
        terminalreporter.write_line(
            f"[reliability] all catalogues: bad inputs tried: {TALLY['tried']}, "
            f"refused with a clear error: {TALLY['refused']}"
        )
