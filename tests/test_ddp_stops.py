"""Stopping under DDP (2 CPU processes, gloo): a SIGTERM to one rank or to every process (and Ctrl-C's SIGINT to
every process), in the middle of a step, streamed from files, from LitData chunks and in memory. Every rank stops
after the same step, never hangs, and leaves one checkpoint of that step (weights, optimizer, schedule, loader
position of the batches trained, RNG) that resumes bit-exact; a resume on another number of processes is refused
in one line."""

import os
import signal
from pathlib import Path

import pytest
from filelock import FileLock

from tests.ddp import ddp_args, differences, ended, fit, last_checkpoint, load, signal_at
from tests.image_tree import write_image_tree
from tests.recipes import TINY

pytestmark = pytest.mark.slow

EPOCHS = 2
SIGNAL_STEP = 3  # the 4th step of 5 an epoch (the agreement may stop after it or after the next, the epoch's last)


def _memory(log_dir: Path, data: Path) -> list[str]:
    """The tiny table, in memory: 80 training samples, 8 a step on each of 2 ranks: 5 steps an epoch."""
    return [f"--config={TINY}", f"--trainer.logger.init_args.save_dir={log_dir}"]


NET = [
    "--model.net=project.models.ResNet",
    "--model.net.init_args.channels_last=false",
    "--model.net.init_args.widths=[4,4,4,4]",
]


def _images(data: Path) -> list[str]:
    """30 training and 6 validation images at 8x8 (`python -m project.optimize` writes them as chunks)."""
    return [
        "--data=project.engine.data.ImageDataModule",
        "--data.source=project.engine.data.ImageFolder",
        f"--data.source.init_args.root={data / 'images'}",
        "--data.source.init_args.image_size=8",
        "--data.val_size=6",
    ]


def _files(log_dir: Path, data: Path) -> list[str]:
    """The images streamed from their files by one worker per rank, 3 a step on each rank: 5 steps an epoch."""
    return [
        f"--config={TINY}",
        *NET,
        *_images(data),
        "--data.batch_size=6",
        "--data.in_memory=false",
        "--data.num_workers=1",
        f"--trainer.logger.init_args.save_dir={log_dir}",
    ]


def _chunks(log_dir: Path, data: Path) -> list[str]:
    """The same images as LitData chunks, one worker per rank."""
    return [
        f"--config={TINY}",
        *NET,
        "--data=project.engine.data.ImageDataModule",
        "--data.source=project.engine.data.LitDataImages",
        f"--data.source.init_args.input_dir={data / 'chunks'}",
        f"--data.source.init_args.cache_dir={data / 'cache'}",
        "--data.batch_size=6",
        "--data.in_memory=false",
        "--data.num_workers=1",
        f"--trainer.logger.init_args.save_dir={log_dir}",
    ]


SOURCES = {"files": _files, "chunks": _chunks, "memory": _memory}


def _shared(tmp_path_factory, name: str) -> tuple[Path, FileLock]:
    """A folder every pytest-xdist worker of this session shares, and the lock that makes one of them fill it."""
    session = tmp_path_factory.getbasetemp()  # pytest-N, or pytest-N/popen-gwK under pytest-xdist
    root = (session.parent if os.environ.get("PYTEST_XDIST_WORKER") else session) / "ddp_stops"
    root.mkdir(exist_ok=True)
    return root / name, FileLock(str(root / f"{name}.lock"))


@pytest.fixture
def data(tmp_path_factory) -> Path:
    """30 images and their chunks, written once for the session."""
    root, lock = _shared(tmp_path_factory, "data")
    with lock:
        if not (root / "chunks" / "optimized.json").is_file():
            write_image_tree(root / "images", per_class=12, size=(10, 12))
            from project.engine.data.optimize import main as optimize

            optimize([*_images(root), f"--output_dir={root / 'chunks'}", "--num_workers=1"])
    return root


def uninterrupted(source: str, data: Path | None, tmp_path_factory) -> dict:
    """The source's uninterrupted DDP fit, run once for the session, as its last checkpoint (also the reference of
    tests/test_clusters.py, whose 2 processes compute what Lightning's own 2-process launch does)."""
    log_dir, lock = _shared(tmp_path_factory, f"full_{source}")
    with lock:
        if not list(log_dir.rglob("last.ckpt")):
            code, output = fit([*SOURCES[source](log_dir, data), f"--trainer.max_epochs={EPOCHS}", *ddp_args()])
            assert code == 0, output[-4000:]
        return load(last_checkpoint(log_dir))


TERM, INT = signal.SIGTERM, signal.SIGINT
# (source, who receives the signal: one rank, 0 or 1, or every process of the fit as SLURM and Ctrl-C send, signal)
CASES = [("files", "rank0", TERM), ("files", "all", TERM), ("chunks", "rank1", TERM), ("chunks", "all", TERM)]
CASES += [("memory", "rank0", TERM), ("memory", "all", TERM), ("memory", "all", INT)]


@pytest.mark.parametrize(("source", "to", "signum"), CASES, ids=[f"{s}-{t}-{n.name}" for s, t, n in CASES])
def test_a_signal_under_ddp_stops_every_rank_after_one_step_and_resumes_exactly(
    source, to, signum, data, tmp_path, tmp_path_factory
):
    full = uninterrupted(source, data, tmp_path_factory)
    args = [*SOURCES[source](tmp_path / "part", data), f"--trainer.max_epochs={EPOCHS}", *ddp_args()]
    record = tmp_path / "ended"
    record.mkdir()
    rank, whom = (0, "all") if to == "all" else (int(to[-1]), "self")
    code, output = fit([*args, signal_at(signum, SIGNAL_STEP, rank, whom, record)])
    assert code == 128 + signum, output[-4000:]
    last = last_checkpoint(tmp_path / "part")
    saved = load(last)
    step = saved["global_step"]
    assert SIGNAL_STEP < step <= SIGNAL_STEP + 2, output[-3000:]
    assert ended(record) == [f"{step} SIGTERMException"] * 2, output[-3000:]  # every rank, after that step
    assert f"Interrupted (stopped by {signum.name}); saved {last}. Resume it with:" in output, output[-3000:]
    assert f"  python -m project.cli fit --ckpt_path {last}" in output
    assert "Traceback" not in output, output[-4000:]
    loader = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    if source == "chunks":  # LitData counts the samples handed out on this rank: 3 a batch
        assert loader["num_samples_yielded"] == 3 * step, loader
    else:
        assert loader == {"epoch": 0, "batches_done": step}, loader

    resume = [*SOURCES[source](tmp_path / "resumed", data), f"--trainer.max_epochs={EPOCHS}", *ddp_args()]
    # with the callbacks the run was made with (a resume refuses to drop one it cannot read), past its step now
    code, output = fit([*resume, signal_at(signum, SIGNAL_STEP, rank, whom), f"--ckpt_path={last}"])
    assert code == 0, output[-4000:]
    resumed = load(last_checkpoint(tmp_path / "resumed"))
    assert resumed["global_step"] == full["global_step"]
    assert not differences(full, resumed)


@pytest.mark.parametrize("source", list(SOURCES))
def test_a_resume_on_another_number_of_processes_is_refused(source, data, tmp_path):
    """A 2-process run resumed on 1: each rank's share of a batch, its augmentation and BatchNorm's statistics
    depend on the number of processes, so it would not continue the run: refused in one line, nothing trained."""
    stop = signal_at(signal.SIGTERM, 1)  # a run stopped after step 2 of 10
    args = [*SOURCES[source](tmp_path / "part", data), f"--trainer.max_epochs={EPOCHS}", *ddp_args(), stop]
    code, output = fit(args)
    assert code == 128 + signal.SIGTERM, output[-4000:]
    last = last_checkpoint(tmp_path / "part")
    one = [*SOURCES[source](tmp_path / "one", data), f"--trainer.max_epochs={EPOCHS}", *ddp_args(1), stop]
    code, output = fit([*one, f"--ckpt_path={last}"])
    assert code == 2, output[-4000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "made on 2 processes" in errors[0] and "--trainer.devices 2" in errors[0], output
    assert "Traceback" not in output
    assert not list((tmp_path / "one").rglob("*.ckpt"))
