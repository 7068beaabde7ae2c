"""A plain LightningDataModule, the one a Lightning user already has, trains, tests, predicts and resumes
through the CLI; what it lacks of the data module protocol (project/engine/sizes.py) is named once, in one line."""

import csv
import logging

import lightning as L
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from project.engine.cli import main
from tests.recipes import run_dir, tiny_args


class PlainData(L.LightningDataModule):
    """Three classes of 8 features, nothing but Lightning's hooks (docs/make-it-yours.md)."""

    def __init__(self, samples: int = 96, batch_size: int = 16):
        super().__init__()
        self.samples, self.batch_size = samples, batch_size

    def setup(self, stage: str) -> None:
        generator = torch.Generator().manual_seed(0)
        labels = torch.randint(0, 3, (self.samples,), generator=generator)
        centres = torch.nn.functional.one_hot(labels, 8).float() * 3
        features = centres + torch.randn(self.samples, 8, generator=generator)
        self.train, self.val = TensorDataset(features[:64], labels[:64]), TensorDataset(features[64:], labels[64:])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.batch_size)

    test_dataloader = predict_dataloader = val_dataloader


CONFIG = yaml.safe_dump(
    {
        "data": {"class_path": "tests.test_plain_datamodule.PlainData", "init_args": {"samples": 96}},
        # a plain data module hands no sizes: the config gives the class count
        "model": {"num_classes": 3, "net": {"init_args": {"num_classes": 3}}, "scheduler": None},
    }
)


def test_a_plain_datamodule_fits_tests_predicts_and_resumes(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    logs = tmp_path / "logs"
    fit = main(["fit", *tiny_args(logs, epochs=2), "--config", CONFIG])
    assert fit.trainer.current_epoch == 2
    last = run_dir(logs) / "checkpoints" / "last.ckpt"
    tested = main(["test", *tiny_args(logs, epochs=2), "--config", CONFIG, f"--ckpt_path={last}"])
    assert "test/acc" in tested.trainer.callback_metrics
    output = tmp_path / "predictions.csv"
    main(["predict", *tiny_args(logs), "--config", CONFIG, f"--ckpt_path={last}", f"--predictions.output={output}"])
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == 32 and rows[0]["sample"] == "0" and rows[0]["predicted"] in {"0", "1", "2"}
    resumed = main(["fit", *tiny_args(logs, epochs=3), "--config", CONFIG, f"--ckpt_path={last}"])
    assert resumed.trainer.current_epoch == 3
    lacking = [r.getMessage() for r in caplog.records if "PlainData has no `classes`" in r.getMessage()]
    assert len(lacking) == 1, "named once, in one line"
    assert "\n" not in lacking[0]
