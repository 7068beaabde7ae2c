"""A run writes only into its own folder, and a resume continues it as it was made (issue 33): the bad-input
catalogue's cases for resumes and run folders. Each resume is of a copy of one of two runs made once for the file:
a 3-epoch fit of the features recipe on small feature files (15 steps), and a one-cycle fit of 6 epochs stopped at
step 5. A refused resume ends in one line naming the change and the command that starts a new run from the
checkpoint's weights; a handled one must keep every file of the original run as it was."""

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from project.engine import run_lock
from project.engine.cli import main
from tests.catalogue import BadInput, Refused, cases, check, cli
from tests.stops import InterruptAt

ROOT = Path(__file__).resolve().parents[1]
START_AGAIN = r"start a new run from this checkpoint's weights: python -m project\.cli fit .*StartFromWeights"


def _features(path: Path, seed: int = 0, n: int = 100) -> Path:
    """A feature file of `n` samples of 8 features around 3 class directions; the same for the same seed and name."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=generator)
    features = torch.nn.functional.one_hot(labels, 8).float() * 3 + torch.randn(n, 8, generator=generator)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"features": features, "labels": labels}, path)
    return path


def _args(logs: Path, train: Path, test: Path, epochs: int, version: str) -> list[str]:
    return [
        "--config=features",
        f"--data.source.init_args.train={train}",
        f"--data.source.init_args.test={test}",
        "--data.batch_size=16",
        "--model.net.init_args.hidden=[16]",
        "--trainer.callbacks=[]",
        f"--trainer.max_epochs={epochs}",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={logs}",
        f"--trainer.logger.init_args.version={version}",
    ]


class Runs:
    """The two runs, made once for the file when first asked for."""

    def __init__(self, root: Path):
        self.root = root
        self.train, self.test = _features(root / "data" / "train.pt", 0), _features(root / "data" / "test.pt", 1, 60)

    @functools.cached_property
    def base(self) -> Path:
        """The folder of a finished 3-epoch run: 80 training samples in batches of 16, 15 steps."""
        main(["fit", *_args(self.root / "logs", self.train, self.test, 3, "base")])
        return self.root / "logs" / "features" / "base"

    @functools.cached_property
    def cycle(self) -> Path:
        """The folder of a 6-epoch one-cycle run stopped by Ctrl-C at step 5."""
        one_cycle = ["--model.scheduler=torch.optim.lr_scheduler.OneCycleLR", "--model.scheduler.init_args.max_lr=0.01"]
        with pytest.raises(SystemExit):
            main(
                ["fit", *_args(self.root / "logs", self.train, self.test, 6, "cycle"), *one_cycle],
                callbacks=[InterruptAt(5)],
            )
        return self.root / "logs" / "features" / "cycle"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    return Runs(tmp_path_factory.mktemp("runs"))


def _copy(run: Path, t: Path, name: str = "copy") -> Path:
    """A copy of the run folder `run` in the case's folder, as one copies a run to keep or to hand over."""
    return Path(shutil.copytree(run, t / "logs" / "features" / name))


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def _resume(t: Path, run: Path, *extra: str) -> Path:
    """`fit --ckpt_path COPY/checkpoints/last.ckpt EXTRA` on a copy of `run`; returns the copy."""
    copy = _copy(run, t)
    cli("fit", f"--ckpt_path={copy / 'checkpoints' / 'last.ckpt'}", *extra)
    return copy


def _step(ckpt: Path) -> int:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]


def _callback(class_path: str, **init_args: object) -> str:
    import json

    return "--trainer.callbacks+=" + json.dumps({"class_path": class_path, "init_args": init_args})


def _edited(t: Path, run: Path, old: str, new: str) -> None:
    copy = _copy(run, t)
    record = copy / "config.yaml"
    assert old in record.read_text()
    record.write_text(record.read_text().replace(old, new, 1))
    cli("fit", f"--ckpt_path={copy / 'checkpoints' / 'last.ckpt'}", "--trainer.max_epochs=4")


def _other_data(t: Path, runs: Runs, change) -> None:
    """The run's training file copied into the case's folder, changed by `change(path)`, and the resume pointed at
    it (a moved data folder is followed, so only its content is compared)."""
    train = Path(shutil.copy(runs.train, t / "train.pt"))
    change(train)
    _resume(t, runs.base, f"--data.source.init_args.train={train}", "--trainer.max_epochs=4")


def _same_size_other_bytes(path: Path) -> None:
    """Written again with other samples of the same shapes: the same size, other bytes."""
    size = path.stat().st_size
    _features(path, seed=5)
    assert path.stat().st_size == size


def _held(t: Path, runs: Runs) -> None:
    """Another live process holds the copy's run lock (a fit writing it)."""
    copy = _copy(runs.base, t)
    script = (
        "import sys, time; from pathlib import Path; from project.engine import run_lock; "
        f"run_lock.acquire(Path({str(copy / '.fit.lock')!r})); print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        cli("fit", f"--ckpt_path={copy / 'checkpoints' / 'last.ckpt'}", "--trainer.max_epochs=4")
    finally:
        holder.kill()
        holder.wait()


REFUSED = [
    BadInput(
        "resume adding GradientAccumulationScheduler {0: 4}",
        lambda t, runs: _resume(
            t,
            runs.base,
            "--trainer.max_epochs=6",
            _callback("lightning.pytorch.callbacks.GradientAccumulationScheduler", scheduling={0: 4}),
        ),
        Refused,
        r"^--trainer\.callbacks\+=lightning\.pytorch\.callbacks\.GradientAccumulationScheduler: the run of "
        rf".*copy/checkpoints/last\.ckpt was made without it; it acts on the training .*{START_AGAIN}",
    ),
    BadInput(
        "resume adding StochasticWeightAveraging",
        lambda t, runs: _resume(
            t,
            runs.base,
            "--trainer.max_epochs=6",
            _callback("lightning.pytorch.callbacks.StochasticWeightAveraging", swa_lrs=0.01),
        ),
        Refused,
        r"StochasticWeightAveraging: the run of .* was made without it; it acts on the training",
    ),
    BadInput(
        "resume adding EarlyStopping",
        lambda t, runs: _resume(
            t,
            runs.base,
            "--trainer.max_epochs=6",
            _callback("lightning.pytorch.callbacks.EarlyStopping", monitor="val/loss"),
        ),
        Refused,
        r"EarlyStopping: the run of .* was made without it",
    ),
    BadInput(
        "resume adding the project's Lookahead",
        lambda t, runs: _resume(
            t, runs.base, "--trainer.max_epochs=6", _callback("project.engine.callbacks.Lookahead")
        ),
        Refused,
        r"project\.engine\.callbacks\.Lookahead: the run of .* was made without it",
    ),
    BadInput(
        "run folder config.yaml edited: batch_size 16 -> 8",
        lambda t, runs: _edited(t, runs.base, "    batch_size: 16", "    batch_size: 8"),
        Refused,
        r"^\S*copy/config\.yaml was edited since the run was made: data\.init_args\.batch_size is 8 there, but the "
        r"run was made with 16 .*python -m project\.cli fit --config \S*copy/config\.yaml "
        r"--trainer\.logger\.init_args\.version=null",
    ),
    BadInput(
        "run folder config.yaml edited: the learning rate",
        lambda t, runs: _edited(t, runs.base, "lr: 0.003", "lr: 0.1"),
        Refused,
        r"config\.yaml was edited since the run was made: model\.init_args\.optimizer\.init_args\.lr is 0\.1 there, "
        r"but the run was made with 0\.003",
    ),
    BadInput(
        "resume with max_steps below the step",
        lambda t, runs: _resume(t, runs.base, "--trainer.max_steps=10"),
        Refused,
        r"^trainer\.max_steps=10: the run of .* is at step 15 already, so a resume would train nothing\. Raise "
        r"--trainer\.max_steps above 15\.",
    ),
    BadInput(
        "resume with max_steps at the step",
        lambda t, runs: _resume(t, runs.base, "--trainer.max_steps=15"),
        Refused,
        r"^trainer\.max_steps=15: the run of .* is at step 15 already",
    ),
    BadInput(
        "resume of a finished run as it was",
        lambda t, runs: _resume(t, runs.base),
        Refused,
        r"^trainer\.max_epochs=3: the run of .* has trained 3 epochs already",
    ),
    BadInput(
        "resume of a 6-epoch one-cycle run with max_epochs 4",
        lambda t, runs: _resume(t, runs.cycle, "--trainer.max_epochs=4"),
        Refused,
        r"^--trainer\.max_epochs=4: the run of .* was made with trainer\.max_epochs=6, and its learning-rate schedule "
        rf"is laid over that length \(30 steps\): a resume can neither shorten nor stretch it.*{START_AGAIN}",
    ),
    BadInput(
        "resume of a 6-epoch one-cycle run with max_epochs 9",
        lambda t, runs: _resume(t, runs.cycle, "--trainer.max_epochs=9"),
        Refused,
        r"^--trainer\.max_epochs=9: the run of .* was made with trainer\.max_epochs=6, and its learning-rate schedule",
    ),
    BadInput(
        "resume of a one-cycle run with max_steps",
        lambda t, runs: _resume(t, runs.cycle, "--trainer.max_steps=20"),
        Refused,
        r"^--trainer\.max_steps=20: the run of .* was made with trainer\.max_steps=-1",
    ),
    BadInput(
        "resume on the training file replaced in place (same size, other labels)",
        lambda t, runs: _other_data(t, runs, _same_size_other_bytes),
        Refused,
        r"^The data differs: the files of the data at \S*train\.pt \(data\.init_args\.source\.init_args\.train\) "
        r"were replaced since the run was made \(same names and sizes, other bytes\).*put the run's data back"
        rf".*{START_AGAIN}",
    ),
    BadInput(
        "resume on other samples under the same path",
        lambda t, runs: _other_data(t, runs, lambda path: _features(path, 7, 90)),
        Refused,
        r"^The data differs: the data at \S*train\.pt .* is 1 file of [\d,]+ bytes now, but the run was made with "
        r"1 file of [\d,]+ bytes there",
    ),
    BadInput(
        "resume of a run folder another live process holds",
        _held,
        Refused,
        r"copy is being written by another fit \(process \d+, still running\)",
    ),
]


def _copy_resumed_in_the_copy(t: Path, runs: Runs) -> None:
    """Issue 33's case 2: a copy of `base` resumed for 3 more epochs trains into the copy; the original is untouched,
    and the copy's bookkeeping names its own best checkpoint."""
    before = _snapshot(runs.base)
    copy = _resume(t, runs.base, "--trainer.max_epochs=4")
    assert _snapshot(runs.base) == before, "the resume wrote into the original run folder"
    assert _step(copy / "checkpoints" / "last.ckpt") == 20
    saved = torch.load(copy / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    assert all(str(copy) in str(state.get("dirpath")) for state in saved.values() if "dirpath" in state), saved


def _test_of_a_copy_logging_elsewhere(t: Path, runs: Runs) -> None:
    """A picked-up config whose logger names another folder: `test` writes into the checkpoint's run folder only."""
    before = _snapshot(runs.base)
    copy = _copy(runs.base, t)
    record = copy / "config.yaml"
    record.write_text(record.read_text().replace(f"save_dir: {runs.root / 'logs'}", f"save_dir: {t / 'elsewhere'}"))
    cli("test", f"--ckpt_path={copy / 'checkpoints' / 'last.ckpt'}")
    assert not (t / "elsewhere").exists(), "test wrote outside its run folder"
    assert list(copy.glob("test*/config.yaml")) and _snapshot(runs.base) == before  # its sub-run, test/


def _copied_away_checkpoint_resumed(t: Path, runs: Runs) -> None:
    """A last.ckpt copied away from its folder and resumed is a new run of its own, in a fresh folder."""
    before = _snapshot(runs.base)
    away = Path(shutil.copy(runs.base / "checkpoints" / "last.ckpt", t / "away.ckpt"))
    cwd = os.getcwd()
    os.chdir(t)
    try:
        cli("fit", f"--ckpt_path={away}", "--trainer.max_epochs=4")
    finally:
        os.chdir(cwd)
    assert _snapshot(runs.base) == before, "the resume wrote into the original run folder"
    assert [_step(p) for p in (t / "logs" / "features").glob("version_*/checkpoints/last.ckpt")] == [20]


def _data_copied(t: Path, runs: Runs) -> None:
    """The run's data copied elsewhere (new times, same bytes): the resume goes on."""
    train = Path(shutil.copy(runs.train, t / "train.pt"))
    os.utime(train, ns=(1, 1))
    copy = _resume(t, runs.base, f"--data.source.init_args.train={train}", "--trainer.max_epochs=4")
    assert _step(copy / "checkpoints" / "last.ckpt") == 20


def _watcher_added(t: Path, runs: Runs) -> None:
    """A callback that only watches (a TensorBoard view) may be added on resume."""
    view = "--trainer.callbacks+=project.tasks.classification.ConfusionMatrixImage"
    copy = _resume(t, runs.base, "--trainer.max_epochs=4", view)
    assert _step(copy / "checkpoints" / "last.ckpt") == 20


def _resumed_past_a_lock_file(t: Path, runs: Runs) -> None:
    """Issue 33's case 6: an empty .fit.lock (what a kill or a full disk leaves) keeps no resume out."""
    copy = _copy(runs.base, t)
    (copy / ".fit.lock").write_text("")
    cli("fit", f"--ckpt_path={copy / 'checkpoints' / 'last.ckpt'}", "--trainer.max_epochs=4")
    assert _step(copy / "checkpoints" / "last.ckpt") == 20 and not (copy / ".fit.lock").exists()


HANDLED = [
    BadInput("resume of a copy of a run folder", _copy_resumed_in_the_copy, None, ""),
    BadInput("test of a copy whose config logs elsewhere", _test_of_a_copy_logging_elsewhere, None, ""),
    BadInput("resume of an empty .fit.lock", _resumed_past_a_lock_file, None, ""),
    BadInput("resume of a checkpoint copied away", _copied_away_checkpoint_resumed, None, "", needs_runs=True),
    BadInput("resume on the data copied elsewhere", _data_copied, None, "", needs_runs=True),
    BadInput("resume adding a view", _watcher_added, None, "", needs_runs=True),
]


@pytest.mark.parametrize("case", cases(REFUSED + HANDLED))
def test_a_resume_keeps_its_run_as_it_was_made(case, tmp_path, runs):
    check(case, tmp_path, runs)


def _lock(t: Path, leave) -> None:
    """What a kill, a full disk or a stray hand leaves as a run's lock file: the next fit takes the lock."""
    lock = t / ".fit.lock"
    leave(lock)
    assert run_lock.acquire(lock) is None, "the lock was not free"
    assert lock.is_file() and not lock.is_symlink() and lock.read_text() == f"{os.getpid()}\n"
    run_lock.release(lock)
    assert not os.path.lexists(lock)
    kept = t / "kept.txt"
    assert not kept.exists() or kept.read_text() == "kept", "a link was followed"


STALE_LOCKS = {
    "empty": lambda lock: lock.write_text(""),
    "text": lambda lock: lock.write_text("not a process id\n"),
    "pid 0": lambda lock: lock.write_text("0\n"),
    "pid -1": lambda lock: lock.write_text("-1\n"),
    "pid 2**64": lambda lock: lock.write_text(f"{2**64}\n"),
    "this process's pid": lambda lock: lock.write_text(f"{os.getpid()}\n"),
    "a live process's pid": lambda lock: lock.write_text(f"{os.getppid()}\n"),
    "a folder": lambda lock: lock.mkdir(),
    "a dangling link": lambda lock: lock.symlink_to(lock.parent / "nowhere"),
    "a link to a file": lambda lock: (lock.parent / "kept.txt").write_text("kept") or lock.symlink_to("kept.txt"),
}
LOCKS = [
    BadInput(f".fit.lock: {name}", lambda t, leave=leave: _lock(t, leave), None, "")
    for name, leave in STALE_LOCKS.items()
]


@pytest.mark.parametrize("case", cases(LOCKS))
def test_a_lock_no_process_holds_is_free_whatever_its_file_holds(case, tmp_path):
    check(case, tmp_path)


@pytest.mark.slow  # a process of its own, streaming with 1,000 workers asked for
def test_sigterm_during_the_loaders_start_stops_the_run(tmp_path):
    """Issue 33's case 4: `--data.num_workers 1000` streaming, stopped with SIGTERM to its process group (as
    `timeout` and a terminal's Ctrl-C send) while its loaders start: lowered to the CPUs, it stops with 143 and one
    line, no traceback."""
    import signal
    import time

    from tests.image_tree import write_image_tree
    from tests.recipes import image_folder_args

    args = image_folder_args(write_image_tree(tmp_path / "images", per_class=6), tmp_path / "logs", epochs=100)
    command = [sys.executable, "-m", "project.cli", "fit", *args, "--data.in_memory=false", "--data.num_workers=1000"]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        lines = []
        deadline = time.monotonic() + 300
        while not any("more than the" in line for line in lines):
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines[-30:])
            lines.append(line)
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    output = "".join(lines) + output
    assert proc.returncode == 143, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert f"more than the {len(os.sched_getaffinity(0))} CPUs" in output
