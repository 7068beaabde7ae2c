"""Reliability: nothing a crash, a signal, a bad file or a hostile download does may cost a run.

Sections: exact resume; interrupts (Ctrl-C, SIGTERM, SLURM requeue) and atomic checkpoint writes;
NaN/inf loss; unsafe checkpoints; config errors; and a catalogue of bad inputs, each of which must
be refused with an error that names the file (one test each; tests/conftest.py prints the tally).
"""

import errno
import functools
import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import unittest.mock
import zipfile
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from project.engine.callbacks import CheckpointFiles, FiniteLossGuard, NonFiniteLossError, StepSeededRandomness
from project.engine.checkpoints import AtomicCheckpointIO, UnsafeCheckpointError, check_checkpoint_is_safe
from project.engine.cli import main
from project.engine.data import ImageDataModule, ImageFolder
from project.engine.data.audio import read_audio
from project.engine.data.download import DownloadError, RemoteArchive, download_archive, extract_archive
from project.engine.runs import claim_run_folders, run_folder
from project.tasks.classification import metrics
from project.tasks.classification.module import Classifier
from tests.archive_format import add_to_tar
from tests.catalogue import BadInput, Refused, cases, check, cli
from tests.image_tree import truncate, write_image_tree
from tests.recipes import TINY, image_folder_args, needs_recipe, tiny_args
from tests.stops import interrupt_at
from tests.test_audio_model import tiny_fsdd_args
from tests.test_download import write_cve_2025_4517_archive
from tests.wav_format import write_fsdd, write_speech_commands

try:  # our examples; gone in a fork that removed them (python -m project.fork remove-examples)
    from project.examples.fsdd import FSDD
    from project.examples.speech_commands import SpeechCommands
    from project.examples.speech_commands.source import WORDS as SPEECH_COMMANDS_WORDS
except ImportError:
    FSDD = SpeechCommands = SPEECH_COMMANDS_WORDS = None

ROOT = Path(__file__).resolve().parents[1]
# The tiny recipe: 100 synthetic training samples, 20 held out: 80 / batch 16 = 5 steps an epoch, 15 in 3 epochs
STEPS_PER_EPOCH, EPOCHS = 5, 3


def resume_args(log_dir: Path, *extra: str) -> list[str]:
    return [*tiny_args(log_dir, epochs=EPOCHS), "--trainer.deterministic=true", *extra]


def _last_ckpt(log_dir: Path) -> Path:
    found = sorted(log_dir.rglob("last.ckpt"))
    assert len(found) == 1, f"expected one last.ckpt under {log_dir}, found {found}"
    return found[0]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("full")
    cli = main(["fit", *resume_args(log_dir)])
    return cli, torch.load(_last_ckpt(log_dir), map_location="cpu", weights_only=True)


def _interrupt_and_resume(step: int, tmp_path: Path, *extra: str):
    return _resume_after_interrupt(lambda log_dir: resume_args(log_dir, *extra), step, tmp_path)


def _resume_after_interrupt(args: Callable[[Path], list[str]], step: int, tmp_path: Path):
    """Fit with `args(log_dir)`, press Ctrl-C after training step `step`, then resume from last.ckpt."""
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as stopped:  # Lightning turns Ctrl-C into exit status 1
            main(["fit", *args(tmp_path / "part"), interrupt_at(step)])
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores further Ctrl-C while it shuts down
    assert stopped.value.code == 1
    last = _last_ckpt(tmp_path / "part")
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == step, "the interrupt must save the step it stopped at"
    return main(["fit", *args(tmp_path / "resumed"), f"--ckpt_path={last}"])


def _assert_same_run(resumed, uninterrupted, steps: int = STEPS_PER_EPOCH * EPOCHS) -> None:
    cli, full = uninterrupted
    ckpt = torch.load(_last_ckpt(run_folder(resumed.trainer)), map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == full["global_step"] == steps
    differ = [k for k in full["state_dict"] if not torch.equal(full["state_dict"][k], ckpt["state_dict"][k])]
    assert not differ, f"weights differ after resume: {differ}"
    states = zip(
        full["optimizer_states"][0]["state"].values(), ckpt["optimizer_states"][0]["state"].values(), strict=True
    )
    for a, b in states:
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "optimizer state differs"
    assert full["lr_schedulers"] == ckpt["lr_schedulers"]
    expected, got = cli.trainer.callback_metrics, resumed.trainer.callback_metrics
    for name in (metrics.VAL_ACC, metrics.VAL_LOSS, metrics.TRAIN_LOSS + "_epoch", metrics.TRAIN_ACC):
        assert torch.equal(expected[name], got[name]), f"{name}: {expected[name]} vs {got[name]}"


def test_ctrl_c_mid_epoch_then_resume_is_bit_exact(uninterrupted, tmp_path):
    """Interrupted at step 7 (batch 3 of epoch 2 of 3) and resumed: the same weights, optimizer state,
    schedule and metrics as the run that was never interrupted."""
    resumed = _interrupt_and_resume(7, tmp_path)
    _assert_same_run(resumed, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("step", [2, STEPS_PER_EPOCH])  # inside the first epoch; its last batch, before validation
def test_resume_is_bit_exact_at_other_steps(step, uninterrupted, tmp_path):
    _assert_same_run(_interrupt_and_resume(step, tmp_path), uninterrupted)


@pytest.mark.slow
def test_resume_is_bit_exact_with_the_device_loader(tmp_path):
    """`data.on_device=true` batches from a copy of the set on the device (DeviceLoader): exact too."""
    full = main(["fit", *resume_args(tmp_path / "full", "--data.on_device=true")])
    last = torch.load(_last_ckpt(tmp_path / "full"), map_location="cpu", weights_only=True)
    resumed = _interrupt_and_resume(7, tmp_path, "--data.on_device=true")
    _assert_same_run(resumed, (full, last))


def _fsdd_resume_args(root: Path, log_dir: Path) -> list[str]:
    """The FSDD recipe shrunk, with everything random left on: dropout between and after the GRU
    layers, SpecAugment's masks, speed, shift and gain; 48 training clips / 16 = 3 steps an epoch."""
    return [
        *tiny_fsdd_args(root, log_dir, epochs=EPOCHS),
        "--data.speed=0.1", "--data.max_shift=0.05", "--data.gain_db=6",
        "--model.net.init_args.num_layers=2",
        "--model.net.init_args.dropout=0.3",
        "--model.net.init_args.freq_masks=2",
        "--model.net.init_args.time_masks=2",
        "--trainer.deterministic=true",
    ]  # fmt: skip


@pytest.mark.slow  # three FSDD fits; exact resume of the tiny table and of image folders stays quick
@needs_recipe("fsdd")
def test_fsdd_resume_with_dropout_and_specaugment_is_bit_exact(tmp_path):
    """Stopped inside the second epoch; every weight differed when dropout drew from an unsaved RNG."""
    root = write_fsdd(tmp_path / "fsdd", speakers=("george", "theo"), takes=8)
    args = functools.partial(_fsdd_resume_args, root)
    full = main(["fit", *args(tmp_path / "full")])
    last = torch.load(_last_ckpt(tmp_path / "full"), map_location="cpu", weights_only=True)
    _assert_same_run(_resume_after_interrupt(args, 4, tmp_path), (full, last), steps=3 * EPOCHS)


@pytest.mark.slow  # the same resume as the table's above, through a ResNet on images
def test_image_folder_resume_is_bit_exact(tmp_path):
    """3 classes x 10 images, a quarter held out: 22 / batch 6 = 3 steps an epoch; stopped inside the second."""
    root = write_image_tree(tmp_path / "images", per_class=10)
    args = functools.partial(image_folder_args, root, epochs=EPOCHS)
    full = main(["fit", *args(tmp_path / "full")])
    last = torch.load(_last_ckpt(tmp_path / "full"), map_location="cpu", weights_only=True)
    _assert_same_run(_resume_after_interrupt(args, 4, tmp_path), (full, last), steps=3 * EPOCHS)


def test_cli_wires_in_the_reliability_pieces(uninterrupted):
    trainer = uninterrupted[0].trainer
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert any(isinstance(c, FiniteLossGuard) for c in trainer.callbacks)
    assert any(isinstance(c, StepSeededRandomness) for c in trainer.callbacks), "dropout must resume exactly"
    assert any(c.save_on_exception for c in trainer.checkpoint_callbacks), "interrupts must leave a checkpoint"


@pytest.mark.slow
def test_sigterm_mid_fit_leaves_a_resumable_checkpoint(tmp_path):
    """A real `python -m project.cli fit` process gets SIGTERM (what `kill`, a scheduler or a spot
    reclaim sends) after its first epoch; it must stop at the next batch and save where it stopped."""
    steps_per_epoch = 80 // 8
    args = [*tiny_args(tmp_path / "logs", epochs=1000), "--data.batch_size=8", "--data.val_size=20"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "project.cli", "fit", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not list((tmp_path / "logs").rglob("last.ckpt")):
            assert proc.poll() is None, f"fit ended early:\n{proc.communicate()[0][-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint after the first epoch within 5 minutes"
            time.sleep(0.2)
        time.sleep(1.0)  # into the second epoch
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    last = _last_ckpt(tmp_path / "logs")
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert proc.returncode == 143, f"an interrupted fit must not look finished to `fit && test`:\n{output[-3000:]}"
    assert "Received SIGTERM" in output, output[-3000:]
    assert steps_per_epoch <= saved["global_step"] < 1000 * steps_per_epoch
    assert "SIGTERMException was raised" not in output and "Traceback" not in output, output[-3000:]
    # One line, unless the step it stopped at had just been saved at an epoch's end
    clean = (
        f"Interrupted (stopped by SIGTERM); saved {last}. Resume it with:\n"
        f"  python -m project.cli fit --ckpt_path {last}"
    )
    assert clean in output or saved["global_step"] % steps_per_epoch == 0, output[-3000:]


@pytest.mark.slow
def test_slurm_requeue_saves_requeues_and_resumes(tmp_path, monkeypatch):
    """Under SLURM, Lightning's SLURMEnvironment plugin handles the pre-emption signal: it saves an
    hpc checkpoint and calls `scontrol requeue`; the requeued job finds the checkpoint and resumes."""
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "requeued"}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}")
    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "train", "SLURM_PROCID": "0"}
    for name, value in {**slurm, "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)

    class PreemptAt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:
                os.kill(os.getpid(), signal.SIGUSR1)  # what `#SBATCH --signal=SIGUSR1@90` sends

    # default_root_dir is where Lightning keeps hpc_ckpt_N.ckpt between requeues
    args = [*resume_args(tmp_path / "logs"), f"--trainer.default_root_dir={tmp_path}"]
    handlers = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGTERM)}
    try:
        cli = main([*args, "--trainer.max_steps=8"], run=False)
        cli.trainer.callbacks.append(PreemptAt())
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert (tmp_path / "requeued").read_text().split() == ["requeue", "4242"]
    hpc = list(Path(cli.trainer.default_root_dir).glob("hpc_ckpt_*.ckpt"))
    # The signal came after step 3's end hooks of StopBetweenSteps had run: held to the end of step 4, whole
    saved = torch.load(hpc[0], weights_only=True)
    assert saved["global_step"] == 4
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches_done"] == 4 % STEPS_PER_EPOCH
    # The requeued job: the same command, no --ckpt_path; Lightning picks up the hpc checkpoint itself
    again = main([*args, "--trainer.max_steps=8"], run=False)
    again.trainer.fit(again.model, datamodule=again.datamodule)
    assert again.trainer.ckpt_path == str(hpc[0])
    assert again.trainer.global_step == 8


def test_checkpoint_write_cut_short_keeps_the_previous_file(tmp_path):
    io_plugin = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io_plugin.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, target)
    good = target.read_bytes()

    class FailsHalfway:  # pickled after the tensors' metadata: the write is already under way
        def __reduce__(self):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        io_plugin.save_checkpoint({"global_step": 2, "w": torch.zeros(3), "z": FailsHalfway()}, target)
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"], "the temporary file must be cleaned up"


@pytest.mark.slow  # a second process, killed mid-write
def test_checkpoint_writer_killed_mid_write_leaves_the_good_file(tmp_path):
    """A process SIGKILLed while writing a large checkpoint: last.ckpt is still the previous, complete one."""
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 1}, target)
    script = (
        "import torch, sys\n"
        "from project.engine.checkpoints import AtomicCheckpointIO\n"
        "big = {'global_step': 2, 'w': torch.ones(16, 1024, 1024)}\n"  # 64 MB
        "while True:\n"
        f"    AtomicCheckpointIO().save_checkpoint(big, {str(target)!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".last.ckpt.tmp") and p.stat().st_size > 0 for p in tmp_path.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert torch.load(target, weights_only=True)["global_step"] in (1, 2), "last.ckpt must always be complete"


def _linear_fit(tmp_path: Path, max_epochs: int, *callbacks: L.Callback, ckpt_path: Path | None = None) -> L.Trainer:
    """A linear classifier on 40 random samples in batches of 8: 5 steps an epoch."""
    data = TensorDataset(torch.randn(40, 4), torch.randint(0, 3, (40,)))
    trainer = L.Trainer(
        max_epochs=max_epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, callbacks=list(callbacks),
    )  # fmt: skip
    model = Classifier(nn.Linear(4, 3), 3, optimizer=functools.partial(torch.optim.SGD, lr=0.1))
    # weights_only=False: the checkpoint's hyperparameters hold this test's nn.Linear
    trainer.fit(model, DataLoader(data, batch_size=8), ckpt_path=ckpt_path, weights_only=False)
    return trainer


def test_leftover_checkpoint_writes_are_removed_at_the_next_start(tmp_path):
    """Writes cut short by a kill leave `.last.ckpt.tmp-PID`: the next fit deletes those of finished
    processes where it resumes from, and every other process's in the folders it writes to."""
    first, second = tmp_path / "first", tmp_path / "second"
    _linear_fit(first, 1, ModelCheckpoint(first, filename="last", monitor=None), CheckpointFiles())
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(finished.stdout), os.getppid()  # pytest's parent is running
    stale, in_use = first / f".last.ckpt.tmp-{dead_pid}", first / f".last.ckpt.tmp-{live_pid}"
    second.mkdir()
    own_leftover = second / f".last.ckpt.tmp-{live_pid}"
    for path in (stale, in_use, own_leftover):
        path.write_bytes(b"half a checkpoint")
    _linear_fit(
        second, 2, ModelCheckpoint(second, filename="last", monitor=None), CheckpointFiles(),
        ckpt_path=first / "last.ckpt",
    )  # fmt: skip
    assert not stale.exists(), "a finished writer's temporary file is left"
    assert in_use.exists(), "a running process's write into another folder was deleted"
    assert not own_leftover.exists(), "the folder this fit writes to still holds a leftover"
    assert sorted(p.name for p in second.iterdir()) == ["last.ckpt"]


@pytest.mark.parametrize("tidy", [True, False])
def test_a_finished_fit_saves_its_last_step(tidy, tmp_path):
    """Saving every 4 steps, a 10-step fit saves steps 4 and 8; the 10th must be saved too."""
    latest = ModelCheckpoint(tmp_path, filename="last", monitor=None, every_n_train_steps=4)
    _linear_fit(tmp_path, 2, latest, *([CheckpointFiles()] if tidy else []))
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"]  # written just now
    assert saved == (10 if tidy else 8), "Lightning alone stops at the last multiple of the interval"


def test_run_folders_are_claimed_atomically(tmp_path):
    """Eight runs start at the same instant in one logs folder: each gets its own version_N (Lightning's
    loggers pick by listing, so they could share one)."""
    barrier = threading.Barrier(8)
    versions = []

    def start(kind: type) -> None:
        trainer = L.Trainer(logger=kind(tmp_path, name="runs"), accelerator="cpu", enable_progress_bar=False)
        barrier.wait()
        claim_run_folders(trainer)
        versions.append(trainer.logger.version)

    threads = [threading.Thread(target=start, args=(kind,)) for kind in [TensorBoardLogger, CSVLogger] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == list(range(8))
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [f"version_{n}" for n in range(8)]


# ---------------------------------------------------------------------------------------------- NaN / inf


class NaNAfter(nn.Module):
    """A linear classifier whose output turns NaN from its `bad_call`-th training forward on."""

    def __init__(self, bad_call: int, num_classes: int = 3):
        super().__init__()
        self.linear = nn.Linear(4, num_classes)
        self.bad_call = bad_call
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
        logits = self.linear(x)
        return logits * float("nan") if self.calls > self.bad_call else logits


def test_nan_loss_stops_the_run_naming_the_batch_and_saves_nothing_after_it(tmp_path):
    data = TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,)))
    model = Classifier(NaNAfter(bad_call=5), 3, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    checkpoints = ModelCheckpoint(
        tmp_path, filename="{step}", every_n_train_steps=1, save_top_k=-1, monitor=None, save_on_exception=True
    )
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[FiniteLossGuard(check_every_n_steps=4), checkpoints],
    )
    with pytest.raises(NonFiniteLossError, match=r"NaN or inf at training batch 5 .*epoch 0"):
        trainer.fit(model, DataLoader(data, batch_size=8))
    saved = sorted(int(re.search(r"step=?(\d+)", p.name).group(1)) for p in tmp_path.glob("*.ckpt"))
    assert saved == [1, 2, 3, 4, 5], f"only steps before the bad batch may be saved, got {saved}"
    for path in tmp_path.glob("*.ckpt"):
        weights = torch.load(path, weights_only=False)["state_dict"]  # written just now; hparams hold the test's net
        assert all(torch.isfinite(w).all() for w in weights.values()), f"{path} holds NaN weights"


def test_finite_losses_pass_the_guard(tmp_path):
    data = TensorDataset(torch.randn(32, 4), torch.randint(0, 3, (32,)))
    model = Classifier(NaNAfter(bad_call=10**9), 3, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False,
        callbacks=[FiniteLossGuard(check_every_n_steps=1)], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, DataLoader(data, batch_size=8))
    assert trainer.global_step == 8


# ------------------------------------------------------------------------------------ unsafe checkpoints


class Payload:
    """What a hostile checkpoint carries: unpickling it would run a command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict", "fit"])
def test_checkpoint_with_a_pickle_payload_is_refused_before_anything_runs(subcommand, tmp_path):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "downloaded.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "extra": Payload(marker)}, evil)
    data_dir = tmp_path / "no-data"
    with pytest.raises(UnsafeCheckpointError, match=r"Refusing to load .*downloaded\.ckpt.*system"):
        main([subcommand, f"--config={TINY}", f"--data.source.init_args.root={data_dir}", f"--ckpt_path={evil}"])
    assert not marker.exists(), "the payload ran"
    assert not data_dir.exists()


def test_truncated_checkpoint_is_refused_clearly(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, path)
    truncate(path)
    with pytest.raises(UnsafeCheckpointError, match=r"last\.ckpt is not a readable PyTorch checkpoint"):
        check_checkpoint_is_safe(path)


# ---------------------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("--model.nonexistent=1", "model.nonexistent"),
        ("--data.init_args.batchsize=4", "batchsize"),
        ("--trainer.max_epochs=many", "max_epochs"),
        ("--data.batch_size=abc", "batch_size"),
    ],
)
def test_config_error_stops_before_data_is_touched(override, named, tmp_path, capsys):
    data_dir = tmp_path / "data"  # the tiny source's `prepare` creates it: touching the data would show
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--config={TINY}", f"--data.source.init_args.root={data_dir}", override])
    assert exit_info.value.code != 0
    assert named in capsys.readouterr().err
    assert not data_dir.exists(), "the data was touched before the config error was reported"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--model.net.init_args.num_classes=5", r"model\.net\.init_args\.num_classes=5 contradicts the data .*=3"),
        ("--model.num_classes=5", r"model\.num_classes=5 contradicts the data .*num_classes=3"),
    ],
)
def test_num_classes_contradicting_the_data_is_an_error(override, message, tmp_path):
    data_dir = tmp_path / "data"
    with pytest.raises(ValueError, match=message):
        main(["fit", f"--config={TINY}", f"--data.source.init_args.root={data_dir}", override])
    assert not data_dir.exists()


# ------------------------------------------------------------------------------- the bad-input catalogue


def _image_setup(tmp: Path, spoil: Callable[[Path], object], **kwargs) -> None:
    tree = write_image_tree(tmp / "images", per_class=4)
    spoil(tree)
    ImageDataModule(ImageFolder(tree, **kwargs), val_size=0.25).setup("fit")


def _tar_with_link(archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("data/escape")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(info)


def _tar_with_hardlink(archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("data/passwd")
        info.type, info.linkname = tarfile.LNKTYPE, "../../escaped-target"
        tar.addfile(info)


def _zip_with(archive: Path, name: str) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(name, b"gotcha")


def _download(tmp: Path, url: str, md5: str = "0" * 32) -> None:
    download_archive(RemoteArchive(url, "archive.tar.gz", md5=md5), tmp / "dl")


def _served_with_wrong_md5(tmp: Path, serve: Callable[[Path], str]) -> None:
    (tmp / "server").mkdir()
    add_to_tar(tmp / "server" / "archive.tar.gz", "ok.txt", b"hello")
    _download(tmp, f"{serve(tmp / 'server')}/archive.tar.gz", md5=hashlib.md5(b"other").hexdigest())


def _extract(tmp: Path, build: Callable[[Path], None], name: str = "archive.tar.gz") -> None:
    archive = tmp / name
    build(archive)
    extract_archive(archive, tmp / "out")


def _read_empty_wav(tmp: Path) -> None:
    soundfile.write(tmp / "empty.wav", np.zeros(0, dtype=np.float32), 8000)
    read_audio(tmp / "empty.wav", 8000)


def _read_text_wav(tmp: Path) -> None:
    (tmp / "fake.wav").write_text("RIFF? no, just text")
    read_audio(tmp / "fake.wav", 8000)


def _read_wav(tmp: Path, name: str, clip: np.ndarray, rate: int = 8000, subtype: str = "FLOAT") -> None:
    soundfile.write(tmp / name, clip, rate, subtype=subtype)
    read_audio(tmp / name, 8000)


def _read_cut_wav(tmp: Path) -> None:
    soundfile.write(tmp / "cut.wav", np.zeros(8000, dtype=np.float32), 8000, subtype="PCM_16")
    truncate(tmp / "cut.wav")  # the header still promises 8,000 samples
    read_audio(tmp / "cut.wav", 8000)


def _predict_on_nan_wav(tmp: Path) -> None:
    root = write_fsdd(tmp / "fsdd", takes=1)
    (tmp / "mine").mkdir()
    soundfile.write(tmp / "mine" / "nan.wav", np.full(4000, np.nan, dtype=np.float32), 8000, subtype="FLOAT")
    main(["predict", *tiny_fsdd_args(root, tmp / "logs", epochs=1), f"--data.predict_dir={tmp / 'mine'}"])


DIR, SYM = tarfile.DIRTYPE, tarfile.SYMTYPE


def _tar_of(archive: Path, *members: tuple[str, bytes, str]) -> None:
    """A tar.gz of (name, type, link target) members with no content."""
    with tarfile.open(archive, "w:gz") as tar:
        for name, kind, target in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)


def _leftover_fsdd_archive(tmp: Path, content: bytes) -> None:
    (tmp / "free-spoken-digit-dataset-1.0.10.tar.gz").write_bytes(content)
    FSDD(tmp, download=False).prepare()


def _truncated_tar_gz() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        payload = np.random.default_rng(0).bytes(50_000)
        info = tarfile.TarInfo("free-spoken-digit-dataset-1.0.10/recordings/0_george_0.wav")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()[:20_000]


def _short_speech_commands(tmp: Path) -> None:
    write_speech_commands(tmp / "speech_commands_v0.02", SPEECH_COMMANDS_WORDS)
    listed = (tmp / "speech_commands_v0.02" / "testing_list.txt").read_text().split()
    (tmp / "speech_commands_v0.02" / listed[0]).unlink()
    SpeechCommands(tmp, download=False, expected_recordings=0).load("train", 16000)


def _spoil_jpeg(tree: Path) -> None:
    truncate(tree / "circle" / "001.jpg")


def _spoil_png(tree: Path) -> None:
    truncate(tree / "square" / "002.png")


BAD_INPUTS = [
    # Images
    BadInput(
        "truncated JPEG",
        lambda t: _image_setup(t, _spoil_jpeg),
        ValueError,
        r"circle/001\.jpg is not a readable image.*truncated",
    ),
    BadInput(
        "truncated PNG", lambda t: _image_setup(t, _spoil_png), ValueError, r"square/002\.png is not a readable image"
    ),
    BadInput(
        "text file named .jpg",
        lambda t: _image_setup(t, lambda d: (d / "circle" / "fake.jpg").write_text("hi")),
        ValueError,
        r"circle/fake\.jpg is not a readable image",
    ),
    BadInput(
        "empty .png",
        lambda t: _image_setup(t, lambda d: (d / "circle" / "empty.png").write_bytes(b"")),
        ValueError,
        r"circle/empty\.png is not a readable image",
    ),
    BadInput(
        "non-image file in a class folder",
        lambda t: _image_setup(t, lambda d: (d / "square" / "labels.csv").write_text("a,b")),
        ValueError,
        r"square/labels\.csv is not an image file.*skip_bad_files",
    ),
    BadInput(
        "empty class folder",
        lambda t: _image_setup(t, lambda d: (d / "zebra").mkdir()),
        ValueError,
        r"Class folder .*zebra holds no images",
    ),
    BadInput(
        "every image of a class unreadable, skipping on",
        lambda t: _image_setup(t, lambda d: [truncate(p) for p in (d / "circle").iterdir()], skip_bad_files=True),
        ValueError,
        r"No readable image is left in .*circle",
    ),
    BadInput(
        "image folder missing",
        lambda t: ImageFolder(t / "nowhere"),
        FileNotFoundError,
        r"nowhere does not exist",
    ),
    BadInput(
        "image folder without class folders",
        lambda t: ImageFolder(t),
        FileNotFoundError,
        r"holds no class folders",
    ),
    BadInput(
        "test folder with an unknown class",
        lambda t: (
            write_image_tree(t / "train"),
            write_image_tree(t / "test", classes=("circle", "hexagon")),
            ImageDataModule(ImageFolder(t)).setup("test"),
        ),
        ValueError,
        r"test has class folders the training set lacks: \['hexagon'\]",
    ),
    # Downloads and archives
    BadInput(
        "download offline",
        lambda t: _download(t, "http://127.0.0.1:9/archive.tar.gz"),
        DownloadError,
        r"Could not download http://127\.0\.0\.1:9/archive\.tar\.gz.*by hand and put it at .*dl/archive\.tar\.gz",
    ),
    BadInput(
        "download with the wrong checksum",
        _served_with_wrong_md5,
        DownloadError,
        r"archive\.tar\.gz .*is corrupt: its MD5 is .*by hand",
        needs_server=True,
    ),
    BadInput(
        "tar member ../escape",
        lambda t: _extract(t, lambda a: add_to_tar(a, "../escaped.txt", b"x")),
        DownloadError,
        r"archive\.tar\.gz tries to write outside",
    ),
    BadInput(
        "tar hard link out of the target",
        lambda t: _extract(t, _tar_with_hardlink),
        DownloadError,
        r"tries to write outside",
    ),
    BadInput(
        "tar symlink out of the target", lambda t: _extract(t, _tar_with_link), DownloadError, r"tries to write outside"
    ),
    BadInput(
        "zip member ../escape",
        lambda t: _extract(t, lambda a: _zip_with(a, "../escaped.txt"), "archive.zip"),
        DownloadError,
        r"archive\.zip tries to write outside.*'\.\./escaped\.txt'",
    ),
    BadInput(
        "tar symlink chain out of the target",
        lambda t: _extract(
            t,
            lambda a: _tar_of(
                a, ("d", tarfile.DIRTYPE, ""), ("d/up", tarfile.SYMTYPE, ".."), ("d/out", tarfile.SYMTYPE, "up/..")
            ),
        ),
        DownloadError,
        r"archive\.tar\.gz tries to write outside .*symlink 'd/out' -> 'up/\.\.'",
    ),
    BadInput(
        "tar built like CVE-2025-4517 (symlinks past PATH_MAX, then a hard link out)",
        lambda t: _extract(t, lambda a: write_cve_2025_4517_archive(a, "escaped-victim"), "archive.tar"),
        DownloadError,
        r"archive\.tar tries to write outside",
    ),
    BadInput(
        "tar member written through a symlink",
        lambda t: _extract(
            t,
            lambda a: _tar_of(
                a, ("d", tarfile.DIRTYPE, ""), ("link", tarfile.SYMTYPE, "d"), ("link/f", tarfile.REGTYPE, "")
            ),
        ),
        DownloadError,
        r"member 'link/f' is written through a link",
    ),
    BadInput(
        "tar with a device file",
        lambda t: _extract(t, lambda a: _tar_of(a, ("dev", tarfile.CHRTYPE, ""))),
        DownloadError,
        r"member 'dev' is a device",
    ),
    BadInput(
        "truncated leftover FSDD archive, download off",
        lambda t: _leftover_fsdd_archive(t, _truncated_tar_gz()),
        DownloadError,
        r"free-spoken-digit-dataset-1\.0\.10\.tar\.gz is there but it is not a whole archive.*Delete .*tar\.gz",
        recipe="fsdd",
    ),
    BadInput(
        "empty leftover FSDD archive, download off",
        lambda t: _leftover_fsdd_archive(t, b""),
        DownloadError,
        r"free-spoken-digit-dataset-1\.0\.10\.tar\.gz is there but it is empty.*Delete",
        recipe="fsdd",
    ),
    BadInput(
        "file:// URL of a missing file",
        lambda t: _download(t, (t / "nowhere.tar.gz").as_uri()),
        DownloadError,
        r"Could not download file://.*nowhere\.tar\.gz: .*No such file.*by hand",
    ),
    BadInput(
        "ftp:// URL",
        lambda t: _download(t, "ftp://example.org/archive.tar.gz"),
        DownloadError,
        r"Could not download ftp://example\.org/archive\.tar\.gz: only http://, https:// and file://",
    ),
    BadInput(
        "FSDD folder short of recordings",
        lambda t: FSDD(write_fsdd(t / "free-spoken-digit-dataset-1.0.10", takes=6).parent, download=False).load(
            "train", 8000
        ),
        ValueError,
        r"recordings holds 120 recordings, not the 3000 of FSDD 1\.0\.10: the folder is incomplete\. Delete ",
        recipe="fsdd",
    ),
    BadInput(
        "Speech Commands folder lacking a listed recording",
        _short_speech_commands,
        FileNotFoundError,
        r"speech_commands_v0\.02 is incomplete: .*lacks 1 that its split lists name \(backward/.*\.wav.*Delete",
        recipe="speech_commands",
    ),
    # Checkpoints
    BadInput(
        "checkpoint carrying code",
        lambda t: (torch.save({"x": Payload(t / "ran")}, t / "x.ckpt"), check_checkpoint_is_safe(t / "x.ckpt")),
        UnsafeCheckpointError,
        r"Refusing to load .*x\.ckpt",
    ),
    BadInput(
        "checkpoint truncated",
        lambda t: (
            torch.save({"w": torch.ones(999)}, t / "x.ckpt"),
            truncate(t / "x.ckpt"),
            check_checkpoint_is_safe(t / "x.ckpt"),
        ),
        UnsafeCheckpointError,
        r"x\.ckpt is not a readable PyTorch checkpoint",
    ),
    # Audio (the reader is project/engine/data/audio.py's; stereo and other rates are converted, not errors)
    BadInput("WAV with no samples", _read_empty_wav, ValueError, r"empty\.wav holds no audio samples"),
    BadInput("text file named .wav", _read_text_wav, ValueError, r"Could not read .*fake\.wav as audio"),
    BadInput(
        "WAV cut short of its header's length",
        _read_cut_wav,
        ValueError,
        r"cut\.wav is truncated: its header promises 16000 bytes",
    ),
    BadInput(
        "WAV declaring 1 Hz",
        lambda t: _read_wav(t, "one_hz.wav", np.zeros(50, dtype=np.float32), rate=1),
        ValueError,
        r"one_hz\.wav declares a sample rate of 1 Hz, outside 1000\.\.768000 Hz",
    ),
    BadInput(
        "WAV with NaN samples",
        lambda t: _read_wav(t, "nan.wav", np.array([0, np.nan, 0.1], dtype=np.float32)),
        ValueError,
        r"nan\.wav holds 1 NaN or infinite samples",
    ),
    BadInput(
        "WAV with infinite samples",
        lambda t: _read_wav(t, "inf.wav", np.array([np.inf, -np.inf, 0.1], dtype=np.float32)),
        ValueError,
        r"inf\.wav holds 2 NaN or infinite samples",
    ),
    BadInput(
        "WAV with samples of 1e30 (float16 storage would overflow)",
        lambda t: _read_wav(t, "huge.wav", np.array([0, 1e30, 0.1], dtype=np.float32)),
        ValueError,
        r"huge\.wav has samples as large as 1e\+30",
    ),
    BadInput("predict on a NaN WAV", _predict_on_nan_wav, ValueError, r"mine/nan\.wav holds 4000 NaN", recipe="fsdd"),
]


# Command-line cases, run as the shell runs them (`cli`): each must end in exit status 2 and one `error:`
# line, besides naming the file, key or value. They use the tiny recipe (tests/recipes.py), so a fork
# that deletes our examples keeps them; the CIFAR-10 source's own are in tests/test_cifar10_data.py.


class TinyRuns:
    """A checkpoint of a 1-epoch fit of the tiny recipe, and FSDD recordings, made once, when first asked for."""

    def __init__(self, root: Path):
        self.root = root

    @functools.cached_property
    def ckpt(self) -> Path:
        main(["fit", *tiny_args(self.root / "tiny-run", epochs=1)])
        return _last_ckpt(self.root / "tiny-run")

    @functools.cached_property
    def fsdd_data(self) -> Path:
        return write_fsdd(self.root / "fsdd", takes=7)  # FSDD's split: takes 5 and 6 train


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> TinyRuns:
    return TinyRuns(tmp_path_factory.mktemp("tiny-runs"))


def _config_file(tmp: Path, name: str, text: str) -> None:
    (tmp / name).write_text(text)
    cli("fit", f"--config={tmp / name}", f"--data.source.init_args.root={tmp / 'data'}")


def _fit_tiny(tmp: Path, *extra: str) -> None:
    """1 epoch of the tiny recipe: 80 training samples in batches of 16, 5 steps."""
    cli("fit", *tiny_args(tmp / "logs", epochs=1), *extra)


def _test_tiny(tmp: Path, *extra: str) -> None:
    cli("test", f"--config={TINY}", f"--data.source.init_args.root={tmp / 'data'}", *extra)


def _without_state_dict(tmp: Path) -> None:
    torch.save({"w": torch.ones(3)}, tmp / "weights.ckpt")
    _test_tiny(tmp, f"--ckpt_path={tmp / 'weights.ckpt'}")


def _disk_full(tmp: Path) -> None:
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with unittest.mock.patch.object(torch, "save", no_space):
        _fit_tiny(tmp)


BAD_INPUTS += [
    BadInput(
        "malformed YAML",
        lambda t: _config_file(t, "bad.yaml", "trainer:\n  max_epochs: [1\n"),
        Refused,
        r"bad\.yaml, line 3.*not valid YAML: while parsing a flow sequence started on line 2",
    ),
    BadInput(
        "tab-indented YAML",
        lambda t: _config_file(t, "tabs.yaml", "trainer:\n\tmax_epochs: 1\n"),
        Refused,
        r"tabs\.yaml, line 2.*not valid YAML.*spaces, never tabs",
    ),
    BadInput("empty YAML", lambda t: _config_file(t, "empty.yaml", ""), Refused, r"config file .*empty\.yaml is empty"),
    BadInput(
        "YAML holding a list",
        lambda t: _config_file(t, "list.yaml", "- trainer\n- model\n"),
        Refused,
        r"list\.yaml holds a list at the top level",
    ),
    BadInput("--config naming no file", lambda t: cli("fit", f"--config={t / 'nope.yaml'}"), Refused, r"nope\.yaml"),
    BadInput(
        "unknown config key",
        lambda t: cli("fit", f"--config={TINY}", "--model.nonexistent=1"),
        Refused,
        r"model\.nonexistent",
    ),
    BadInput(
        "value of the wrong type",
        lambda t: cli("fit", f"--config={TINY}", "--trainer.max_epochs=many"),
        Refused,
        r"max_epochs",
    ),
    BadInput(
        "label_smoothing: 2.0",
        lambda t: _fit_tiny(t, "--model.label_smoothing=2.0"),
        Refused,
        r"model\.label_smoothing=2\.0 is outside \[0, 1\)",
    ),
    BadInput(
        "net num_classes contradicting the data",
        lambda t: _fit_tiny(t, "--model.net.init_args.num_classes=5"),
        Refused,
        r"num_classes=5 contradicts the data \(\w+\), which has num_classes=3",
    ),
    BadInput(
        "batch larger than the data set (one-cycle schedule)",
        lambda t: _fit_tiny(t, "--data.batch_size=128"),
        Refused,
        # The DataModule's check comes first, for every source and schedule
        r"training split has 80 samples, fewer than one batch of 128 per device.*lower data\.batch_size",
    ),
    BadInput(
        "limit_train_batches=0 (one-cycle schedule)",
        lambda t: _fit_tiny(t, "--trainer.limit_train_batches=0"),
        Refused,
        r"no training steps \(trainer\.limit_train_batches=0",
    ),
    BadInput(
        "4-step one-cycle run (ZeroDivisionError inside OneCycleLR)",
        lambda t: _fit_tiny(t, "--trainer.max_epochs=9", "--trainer.max_steps=4"),
        Refused,
        r"model\.scheduler cannot be laid over this run's 4 training steps .*pct_start",
    ),
    BadInput(
        "checkpoint of another data set given to FSDD test",
        lambda t, runs: cli("test", *tiny_fsdd_args(runs.fsdd_data, t, 1), f"--ckpt_path={runs.ckpt}"),
        Refused,
        r"The checkpoint's network does not fit the model built from the config: net\..*missing from the checkpoint",
        needs_runs=True,
        recipe="fsdd",
    ),
    BadInput(
        "--ckpt_path naming a folder",
        lambda t, runs: _test_tiny(t, f"--ckpt_path={runs.ckpt.parent}"),
        Refused,
        r"--ckpt_path .*checkpoints is a folder: name a checkpoint file; it holds .*last\.ckpt",
        needs_runs=True,
    ),
    BadInput(
        "--ckpt_path naming no file",
        lambda t: _test_tiny(t, f"--ckpt_path={t / 'last.ckpt'}"),
        Refused,
        r"--ckpt_path .*last\.ckpt: no such file",
    ),
    BadInput(
        "checkpoint without state_dict",
        _without_state_dict,
        Refused,
        r"weights\.ckpt is not a Lightning checkpoint: it lacks 'state_dict'",
    ),
    BadInput(
        "checkpoint carrying code, through the command line",
        lambda t: (
            torch.save({"state_dict": {}, "x": Payload(t / "ran")}, t / "x.ckpt"),
            _test_tiny(t, f"--ckpt_path={t / 'x.ckpt'}"),
        ),
        Refused,
        r"Refusing to load .*x\.ckpt",
    ),
    BadInput(
        "checkpoint truncated, through the command line",
        lambda t, runs: (
            (t / "cut.ckpt").write_bytes(runs.ckpt.read_bytes()[: runs.ckpt.stat().st_size // 2]),
            _test_tiny(t, f"--ckpt_path={t / 'cut.ckpt'}"),
        ),
        Refused,
        r"cut\.ckpt is not a readable PyTorch checkpoint",
        needs_runs=True,
    ),
    BadInput(
        "one-cycle run resumed with a larger max_epochs",
        lambda t, runs: _fit_tiny(t, "--trainer.max_epochs=3", f"--ckpt_path={runs.ckpt}"),
        Refused,
        r"This run has 15 training steps, but the OneCycleLR schedule resumed from .*last\.ckpt spans 5",
        needs_runs=True,
    ),
    BadInput(
        "disk full while checkpointing",
        _disk_full,
        Refused,
        r"No space left on the device holding .*checkpoints/.*\.ckpt",
    ),
]


@pytest.mark.parametrize("case", cases(BAD_INPUTS))
def test_every_bad_input_is_refused_with_a_clear_error(case, tmp_path, serve_dir, tiny_runs):
    """Each case must raise its error naming the file; none may pass silently or fail some other way."""
    extras = [serve_dir] if case.needs_server else [tiny_runs] if case.needs_runs else []
    check(case, tmp_path, *extras)
    assert not list(tmp_path.rglob("escaped*")), "an archive wrote outside its target"
