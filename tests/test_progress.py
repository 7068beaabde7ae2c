"""Progress off a terminal and the early estimate of a fit's length, on a tiny model of the test's own."""

import io
import logging

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from project.callbacks import FitTimeEstimate, LineProgress, plain_progress_when_not_a_terminal


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
    train = [line for line in lines if line.startswith("epoch 1/2 batch")]
    assert train, lines
    assert "train/loss" in train[-1] and "it/s" in train[-1] and "ETA 0:00:00" in train[-1], train[-1]
    assert "batch 16/16 step 32" in train[-1]
    assert any(line.startswith("epoch 1 validation: val/loss") for line in lines), lines
    assert not any("\r" in line for line in lines), "no carriage returns: the output may be a file"


def test_line_progress_prints_nothing_between_its_intervals(capsys):
    _fit([LineProgress(every_n_seconds=3600)])
    lines = capsys.readouterr().out.splitlines()
    assert not [line for line in lines if " batch " in line], lines


def test_fit_time_estimate_measures_after_the_first_steps(caplog):
    estimate = FitTimeEstimate(after_steps=3)
    with caplog.at_level(logging.INFO):
        _fit([estimate], epochs=3)
    assert estimate.estimate_s is not None and 0 <= estimate.estimate_s < 60
    assert "Expected training time left on this machine" in caplog.text
    assert "44 steps" in caplog.text  # 48 steps in all; measured from step 1 to step 4


@pytest.mark.parametrize("is_terminal", [True, False])
def test_the_default_rich_bar_gives_way_to_lines_off_a_terminal(monkeypatch, is_terminal):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    monkeypatch.setattr("sys.stdout.isatty", lambda: is_terminal)
    trainer = L.Trainer(accelerator="cpu", logger=False, callbacks=[RichProgressBar()])
    plain_progress_when_not_a_terminal(trainer)
    expected = RichProgressBar if is_terminal else LineProgress
    assert type(trainer.progress_bar_callback) is expected


def test_a_bar_the_user_chose_is_kept_off_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    trainer = L.Trainer(accelerator="cpu", logger=False, callbacks=[TQDMProgressBar(refresh_rate=100)])
    plain_progress_when_not_a_terminal(trainer)
    assert type(trainer.progress_bar_callback) is TQDMProgressBar


def test_bad_intervals_are_refused():
    with pytest.raises(ValueError, match="every_n_seconds must be positive"):
        LineProgress(every_n_seconds=0)
    with pytest.raises(ValueError, match="after_steps must be at least 1"):
        FitTimeEstimate(after_steps=0)
