"""Interrupts: a signal that arrives in the middle of a training step saves that step's whole state, and a
run resumed from it ends bit-identical to one never interrupted (per signal, per kind of data)."""

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from project.engine import signals
from project.engine.cli import main
from project.engine.errors import run_command
from tests.recipes import image_folder_args, tiny_args

EPOCHS = 3


class SignalAt(L.Callback):
    """Sends this process `signum` once step `step` has its batch and is running: the middle of a step,
    where most of a real run's time (and so most Ctrl-C presses) falls."""

    observes_only = True  # a stop, as a signal from outside: the resume that follows leaves it out

    def __init__(self, signum: int, step: int):
        self.signum, self.step = signum, step

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def _last(log_dir: Path) -> Path:
    found = sorted(log_dir.rglob("last.ckpt"))
    assert len(found) == 1, found
    return found[0]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _fit_stopped_by(signum: int, step: int, args: list[str]) -> None:
    init = f'{{"signum": {signum}, "step": {step}}}'
    callback = f'--trainer.callbacks+={{"class_path": "{__name__}.SignalAt", "init_args": {init}}}'
    handlers = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    signals.forget()
    try:
        with pytest.raises(SIGTERMException):  # what Lightning raises to stop between two steps
            main(["fit", *args, callback])
        assert signals.received() == signum
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
        signals.forget()


def _assert_resumes_exactly(
    args: Callable[[Path], list[str]], signum: int, step: int, per_epoch: int, tmp_path: Path
) -> None:
    """Fit `args` (`per_epoch` steps an epoch), once whole and once stopped by `signum` in the middle of
    step `step` (counted from 0) then resumed."""
    main(["fit", *args(tmp_path / "full")])
    full = _load(_last(tmp_path / "full"))
    _fit_stopped_by(signum, step, args(tmp_path / "part"))
    last = _last(tmp_path / "part")
    saved = _load(last)
    # the step in progress when the signal came is finished and saved with the loader position after it
    assert saved["global_step"] == step + 1
    loader = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert loader == {"epoch": (step + 1) // per_epoch, "batches_done": (step + 1) % per_epoch}
    main(["fit", *args(tmp_path / "resumed"), f"--ckpt_path={last}"])
    resumed = _load(_last(tmp_path / "resumed"))
    assert resumed["global_step"] == full["global_step"]
    differ = [k for k, v in full["state_dict"].items() if not torch.equal(v, resumed["state_dict"][k])]
    assert not differ, f"{len(differ)}/{len(full['state_dict'])} tensors differ after resume: {differ[:5]}"
    states = zip(
        full["optimizer_states"][0]["state"].values(), resumed["optimizer_states"][0]["state"].values(), strict=True
    )
    for a, b in states:
        assert all(torch.equal(a[k], b[k]) for k in a), "optimizer state differs"
    assert full["lr_schedulers"] == resumed["lr_schedulers"]


def _table(log_dir: Path) -> list[str]:
    return [*tiny_args(log_dir, epochs=EPOCHS), "--trainer.deterministic=true"]


# Ctrl-C mid-step is quick in tests/test_reliability.py too (test_ctrl_c_mid_epoch_then_resume_is_bit_exact)
@pytest.mark.parametrize(
    "signum", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
def test_table_stopped_mid_step_resumes_exactly(signum, tmp_path):
    """5 steps an epoch; the signal comes in the middle of the 7th step (the second epoch's second)."""
    _assert_resumes_exactly(_table, signum, 6, 5, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_image_folder_stopped_mid_step_resumes_exactly(signum, tmp_path):
    from tests.image_tree import write_image_tree

    root = write_image_tree(tmp_path / "images", per_class=10)  # 22 / 6 = 3 steps an epoch
    _assert_resumes_exactly(functools.partial(image_folder_args, root, epochs=EPOCHS), signum, 4, 3, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_wav_folder_stopped_mid_step_resumes_exactly(signum, tmp_path):
    """Clips of many lengths through the audio DataModule, dropout and SpecAugment on."""
    from tests.recipes import wav_folder_args
    from tests.wav_format import write_wav_folder

    root = write_wav_folder(tmp_path / "sounds", per_class=20)  # 3 x 16 training clips: 3 steps an epoch

    def args(log_dir: Path) -> list[str]:
        return [
            *wav_folder_args(root, log_dir, epochs=EPOCHS),
            "--data.source.init_args.test_fraction=0",
            "--model.net.init_args.dropout=0.3",
            "--model.net.init_args.freq_masks=2",
            "--trainer.deterministic=true",
        ]

    _assert_resumes_exactly(args, signum, 3, 3, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_images_with_the_views_on_stopped_mid_step_resumes_exactly(signum, tmp_path):
    """Images held in memory with the recipes' views drawing every validation: the views read the model's
    outputs and draw no random numbers the run's own depend on."""
    from tests.image_tree import write_image_tree

    root = write_image_tree(tmp_path / "images", per_class=8)  # 18 / 6 = 3 steps an epoch

    def args(log_dir: Path) -> list[str]:
        views = ("ConfusionMatrixImage", "PerClassMetrics")
        return [
            *image_folder_args(root, log_dir, epochs=EPOCHS),
            *(f"--trainer.callbacks+=project.tasks.classification.{view}" for view in views),
        ]

    _assert_resumes_exactly(args, signum, 4, 3, tmp_path)


def test_a_signal_outside_the_steps_stops_at_once_with_the_shells_status(capsys):
    """Ctrl-C while the command line is parsed: no traceback, status 130; SIGTERM: 143."""

    def parse_then_signal(signum: int):
        def command():
            os.kill(os.getpid(), signum)
            raise AssertionError("the signal must stop the command")

        return command

    for signum, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        with pytest.raises(SystemExit) as stopped:
            run_command(parse_then_signal(signum))
        assert stopped.value.code == status
        assert f"Stopped by {signal.Signals(signum).name}." in capsys.readouterr().err


@pytest.mark.slow
def test_slurm_requeue_signal_mid_step_saves_that_step_whole(tmp_path, monkeypatch):
    """SIGUSR1 (`#SBATCH --signal=SIGUSR1@90`) in the middle of a step: Lightning's SLURM plugin saves
    its hpc checkpoint once the step has ended, with the loader position after it."""
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "requeued"}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}")
    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "train", "SLURM_PROCID": "0"}
    for name, value in {**slurm, "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGUSR1, *signals.STOP_SIGNALS)}
    try:
        cli = main(
            [*_table(tmp_path / "logs"), f"--trainer.default_root_dir={tmp_path}", "--trainer.max_steps=8"], run=False
        )
        cli.trainer.callbacks.append(SignalAt(signal.SIGUSR1, 3))
        with pytest.raises(SIGTERMException):  # requeued, the job stops there: SLURM ends it anyway
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    assert (tmp_path / "requeued").read_text().split() == ["requeue", "4242"]
    hpc = _load(next(Path(tmp_path).glob("hpc_ckpt_*.ckpt")))
    assert hpc["global_step"] == 4
    assert hpc["loops"]["fit_loop"]["state_dict"]["combined_loader"][0] == {"epoch": 0, "batches_done": 4}


@pytest.mark.slow
def test_ctrl_c_in_a_real_fit_saves_its_step_and_exits_130(tmp_path):
    """`python -m project.cli fit` given SIGINT (what Ctrl-C sends) mid-run: one line naming the saved
    checkpoint, status 130 (what a shell expects), no traceback; the printed command resumes it."""
    root = Path(__file__).resolve().parents[1]
    args = [*tiny_args(tmp_path / "logs", epochs=1000), "--data.batch_size=8"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "project.cli", "fit", *args],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not list((tmp_path / "logs").rglob("last.ckpt")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, output[-3000:]
    assert "Traceback" not in output and "Received SIGINT" in output, output[-3000:]
    last = _last(tmp_path / "logs")
    saved = _load(last)
    done, step = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches_done"], saved["global_step"]
    # stopped at an epoch's end, the loader has handed out that whole epoch (10 batches)
    assert done == step % 10 or (step % 10 == 0 and done == 10), (done, step)
    assert f"Interrupted (stopped by SIGINT); saved {last}" in output or saved["global_step"] % 10 == 0, output


class FailAt(L.Callback):
    """Raises RuntimeError("boom") in the middle of step `step` (its batch handed out, nothing trained), once:
    the file `once` remembers it for the resumed run, which reads this callback from the run's config."""

    observes_only = True  # it ends a run, and changes nothing a run computes: a resume may leave it out

    def __init__(self, step: int, once: str):
        self.step, self.once = step, once

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.step and not Path(self.once).exists():
            Path(self.once).touch()
            raise RuntimeError("boom")


def test_an_error_in_the_middle_of_a_step_saves_the_steps_trained_and_resumes_exactly(tmp_path, caplog):
    """The loader had handed out step 7's batch: the checkpoint holds step 6 with the loader set back to it,
    says so, and a resume trains step 7 again and ends bit-identical to a fit never stopped."""
    main(["fit", *_table(tmp_path / "full")])
    full = _load(_last(tmp_path / "full"))
    init = f'{{"step": 6, "once": "{tmp_path / "failed"}"}}'
    fail = f'--trainer.callbacks+={{"class_path": "{__name__}.FailAt", "init_args": {init}}}'
    with caplog.at_level("INFO"), pytest.raises(RuntimeError, match="boom"):
        main(["fit", *_table(tmp_path / "part"), fail])
    last = _last(tmp_path / "part")
    message = f"Interrupted (RuntimeError: boom, in the middle of step 7, which a resume runs again); saved {last}. "
    assert f"{message}Resume it with:\n  python -m project.cli fit --ckpt_path {last}" in caplog.messages
    saved = _load(last)
    assert saved["global_step"] == 6
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0] == {"epoch": 1, "batches_done": 1}
    main(["fit", *_table(tmp_path / "resumed"), f"--ckpt_path={last}"])
    resumed = _load(_last(tmp_path / "resumed"))
    assert resumed["global_step"] == full["global_step"]
    assert all(torch.equal(v, resumed["state_dict"][k]) for k, v in full["state_dict"].items())


def test_a_checkpoint_a_loader_cannot_set_back_says_what_it_holds(tmp_path, caplog):
    """A plain DataLoader counts nothing: after an error mid-step the checkpoint's position is one batch past its
    weights, and the line says so instead of offering it as an exact resume."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader

    from project.engine.callbacks import StopBetweenSteps

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch):
            return self.layer(batch).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    save = ModelCheckpoint(tmp_path, filename="last", save_on_exception=True, every_n_epochs=0, save_top_k=1)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StopBetweenSteps(), save, FailAt(2, str(tmp_path / "failed"))],
    )
    handlers = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    try:
        with caplog.at_level("INFO"), pytest.raises(RuntimeError, match="boom"):
            trainer.fit(Tiny(), DataLoader(torch.randn(8, 2), batch_size=2))
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    line = next(m for m in caplog.messages if m.startswith("Interrupted"))
    assert "RuntimeError: boom, in the middle of step 3" in line and "holds the weights of step 2" in line, line
    assert "goes on without training that batch" in line and "resume with" not in line, line


def test_a_stop_at_a_step_saved_already_still_names_its_checkpoint(tmp_path, caplog):
    """last.ckpt every 2 steps: a SIGTERM in step 4 stops after it, which was just saved; the line names the file."""
    init = f'{{"signum": {int(signal.SIGTERM)}, "step": 3}}'
    signal_at = f'--trainer.callbacks+={{"class_path": "{__name__}.SignalAt", "init_args": {init}}}'
    handlers = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    signals.forget()
    try:
        with caplog.at_level("INFO"), pytest.raises(SIGTERMException):
            main(["fit", *_table(tmp_path), "--last_checkpoint.every_n_train_steps=2", signal_at])
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
        signals.forget()
    last = _last(tmp_path)
    assert _load(last)["global_step"] == 4
    resume = f"Resume it with:\n  python -m project.cli fit --ckpt_path {last}"
    assert f"Interrupted (stopped by SIGTERM); saved {last}. {resume}" in caplog.messages


def _worker() -> None:
    from project.engine.signals import ignore_in_worker

    ignore_in_worker()
    time.sleep(60)


def test_a_loader_worker_leaves_one_sigterm_to_the_main_process_and_ends_on_the_next():
    """Ctrl-C and SLURM signal every process: a worker killed by the first would fail the step in progress. The
    next SIGTERM is torch's (or Python's at exit) ending a worker that does not stop: it must end it."""
    import multiprocessing

    worker = multiprocessing.get_context("fork").Process(target=_worker)
    worker.start()
    try:
        time.sleep(1.0)  # worker_init_fn has run
        os.kill(worker.pid, signal.SIGINT)
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(0.5)
        assert worker.is_alive()
        worker.terminate()
        worker.join(10)
        assert worker.exitcode == -signal.SIGTERM
    finally:
        worker.kill()
