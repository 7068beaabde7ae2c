"""`predict` writes a CSV: one row per sample with the predicted class, its probability and the
probability of every class, named as the DataModule names its classes and samples."""

import csv
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from project.internals import flatten_batch_indices


class PredictionCSV(BasePredictionWriter):
    """Args:
    output: the CSV to write; by default `predictions.csv` in the run's log folder. Under DDP each
        rank writes its share to `<stem>.rank<r>.csv`.
    """

    def __init__(self, output: str | Path | None = None):
        super().__init__(write_interval="epoch")
        self.output = Path(output) if output is not None else None
        self.written: Path | None = None

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions, batch_indices):
        probs = torch.cat([p.float().cpu() for p in predictions])  # (N, C)
        indices = flatten_batch_indices(batch_indices)
        classes = list(getattr(trainer.datamodule, "classes", range(probs.shape[1])))
        sample_names = getattr(trainer.datamodule, "predict_names", None)
        path = self.output or Path(trainer.log_dir or ".") / "predictions.csv"
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        best_p, best = probs.max(dim=1)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["sample", "predicted", "probability", *(f"p_{name}" for name in classes)])
            for row, index in enumerate(indices):
                name = sample_names[index] if sample_names is not None else index
                probabilities = (f"{p:.6f}" for p in probs[row].tolist())
                writer.writerow([name, classes[best[row]], f"{best_p[row]:.6f}", *probabilities])
        self.written = path
        print(f"Predictions for {len(indices)} samples written to {path}")
