"""Progress off a terminal and the early estimate of a fit's length, on a tiny model of the test's own."""

import io
import logging
import sys

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from project.engine.callbacks import FitTimeEstimate, LineProgress, TerminalProgress, readable_progress
from project.engine.callbacks.progress import log_above_the_bar
from project.engine.recipes import presets_in


class TinyRegression(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.layer(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader() -> DataLoader:
    x = torch.randn(64, 4)
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=4)


def _fit(callbacks: list, epochs: int = 2) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(TinyRegression(), train_dataloaders=_loader(), val_dataloaders=_loader())
    return trainer


def test_line_progress_prints_plain_lines_with_loss_rate_and_eta(capsys):
    _fit([LineProgress(every_n_seconds=1e-9)])
    lines = capsys.readouterr().out.splitlines()
    # numbered from 0 out of the last epoch's number, as the rich bar and the checkpoint names
    train = [line for line in lines if line.startswith("epoch 1/1 batch")]
    assert train, lines
    assert "train/loss" in train[-1] and "it/s" in train[-1] and "ETA 0:00:00" in train[-1], train[-1]
    assert "batch 16/16 step 32" in train[-1]
    assert any(line.startswith("epoch 1 validation: val/loss") for line in lines), lines
    assert not any("\r" in line for line in lines), "no carriage returns: the output may be a file"


def test_line_progress_prints_nothing_between_its_intervals(capsys):
    _fit([LineProgress(every_n_seconds=3600)])
    lines = capsys.readouterr().out.splitlines()
    assert not [line for line in lines if " batch " in line], lines


def test_fit_time_estimate_measures_after_the_first_steps(capsys):
    estimate = FitTimeEstimate(after_steps=3)
    _fit([estimate], epochs=3)
    assert estimate.estimate_s is not None and 0 <= estimate.estimate_s < 60
    out = capsys.readouterr().out
    assert "Expected training time left on this machine" in out
    assert "44 steps" in out  # 48 steps in all; measured from step 1 to step 4


def _long_estimate(presets=(), load=None, short_preset="quick", monkeypatch=None, resumed=False) -> str:
    monkeypatch.setattr("project.engine.callbacks.progress.machine_load", lambda: load)
    estimate = FitTimeEstimate(presets=presets, short_preset=short_preset)
    estimate.estimate_s = 3600.0
    return "\n".join(estimate.report(on_cpu=True, per_step=1.0, remaining=3600, resumed=resumed))


def test_a_long_estimate_on_a_cpu_names_the_short_preset(monkeypatch):
    text = _long_estimate(monkeypatch=monkeypatch)
    assert "Ctrl-C" in text and "--preset quick" in text and "busy" not in text


def test_a_run_already_on_the_short_preset_is_never_told_to_stop(monkeypatch):
    assert "Ctrl-C" not in _long_estimate(presets=["quick"], monkeypatch=monkeypatch)
    busy = _long_estimate(presets=["csv", "quick"], load=(9.0, 2), monkeypatch=monkeypatch)
    assert "Ctrl-C" not in busy and "This machine is busy (load 9.0 on 2 cores)" in busy


def test_a_resume_is_never_told_to_add_a_preset(monkeypatch):
    """Its presets are in its run's config, not on the command line, and a resume keeps its recipe anyway."""
    assert "Ctrl-C" not in _long_estimate(resumed=True, monkeypatch=monkeypatch)


def test_without_a_short_preset_the_hint_names_keys(monkeypatch):
    text = _long_estimate(short_preset=None, monkeypatch=monkeypatch)
    assert "--trainer.max_epochs 2" in text and "--preset" not in text


def test_the_estimate_goes_through_the_bar_so_it_is_never_glued_to_it():
    printed = []

    class Bar(LineProgress):
        def print(self, *args, **kwargs):
            printed.append(" ".join(args))

    _fit([Bar(every_n_seconds=3600), FitTimeEstimate(after_steps=2)])
    assert any(line.startswith("Expected training time left") for line in printed), printed


def test_the_terminal_bar_shows_an_integer_version_and_stops_before_the_summary(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import CSVLogger

    monkeypatch.setattr("sys.stdout", io.StringIO())
    seen = {}

    class Summary(L.Callback):
        def on_fit_end(self, trainer, pl_module):
            bar = trainer.progress_bar_callback
            seen["v_num"] = bar.get_metrics(trainer, pl_module)["v_num"]
            seen["live"] = bar.progress.live.is_started

    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=CSVLogger(tmp_path, version=4),
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[TerminalProgress(), Summary()],
    )
    trainer.fit(TinyRegression(), train_dataloaders=_loader(), val_dataloaders=_loader())
    assert seen == {"v_num": "4", "live": False}, "4, not 4.000; nothing is drawn after the summary"


@pytest.mark.parametrize(("version", "shown"), [("version_0", "0"), ("trial_12", "trial_12")])
def test_the_terminal_bar_shows_a_named_version_whole(version, shown, tmp_path, monkeypatch):
    """A resume names its run's folder (`version_0`): Lightning would show its last 4 characters, `on_0`."""
    from lightning.pytorch.loggers import CSVLogger

    monkeypatch.setattr("sys.stdout", io.StringIO())
    trainer = L.Trainer(accelerator="cpu", logger=CSVLogger(tmp_path, version=version), callbacks=[TerminalProgress()])
    assert trainer.progress_bar_callback.get_metrics(trainer, TinyRegression())["v_num"] == shown


def test_notices_logged_during_a_live_bar_go_above_it(monkeypatch):
    """Rich's live bar swaps `sys.stderr` for a proxy that prints above the bar; Lightning's log handler, which also
    prints Ctrl-C's notice, must write to that proxy, not to the stream it found at import (onto the bar's line)."""
    logger = logging.getLogger("lightning.pytorch")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    try:
        log_above_the_bar()
        during_the_bar = io.StringIO()
        monkeypatch.setattr("sys.stderr", during_the_bar)
        logger.warning("Received SIGINT: stopping after this step")
        assert "Received SIGINT" in during_the_bar.getvalue()
    finally:
        logger.removeHandler(handler)


def test_the_presets_of_a_command_line_are_known_by_name(tmp_path):
    own = tmp_path / "presets" / "quick"
    own.mkdir(parents=True)
    (own / "mine.yaml").write_text("{}")
    (tmp_path / "presets" / "csv.yaml").write_text("{}")
    args = ["fit", "--config", "r.yaml", "--config", str(own / "mine.yaml"), f"--config={tmp_path}/presets/csv.yaml"]
    assert presets_in(args) == ["quick", "csv"]


@pytest.mark.parametrize("is_terminal", [True, False])
def test_the_default_rich_bar_gives_way_to_lines_off_a_terminal(monkeypatch, is_terminal):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    monkeypatch.setattr("sys.stdout.isatty", lambda: is_terminal)
    trainer = L.Trainer(accelerator="cpu", logger=False, callbacks=[RichProgressBar()])
    readable_progress(trainer)
    expected = TerminalProgress if is_terminal else LineProgress
    assert type(trainer.progress_bar_callback) is expected


def test_a_bar_the_user_chose_is_kept_off_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    trainer = L.Trainer(accelerator="cpu", logger=False, callbacks=[TQDMProgressBar(refresh_rate=100)])
    readable_progress(trainer)
    assert type(trainer.progress_bar_callback) is TQDMProgressBar


def test_bad_intervals_are_refused():
    with pytest.raises(ValueError, match="every_n_seconds must be positive"):
        LineProgress(every_n_seconds=0)
    with pytest.raises(ValueError, match="after_steps must be at least 1"):
        FitTimeEstimate(after_steps=0)
