"""`predict` writes a CSV: one row per sample with the predicted class, its probability and every class's,
named as the DataModule names classes and samples; where labels are known, the label too, and the accuracy."""

import csv
import io
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from project.engine.internals import flatten_batch_indices
from project.engine.sizes import class_names, predict_names


class PredictionCSV(BasePredictionWriter):
    """Args:
        output: the CSV to write; by default `predictions.csv` in the run's log folder. Under DDP each
            rank writes its share to `<stem>.rank<r>.csv`.

    A label below 0 means unknown (a folder of new files). Labels stay on the device until the epoch's end:
    no extra host sync per batch.
    """

    def __init__(self, output: str | Path | None = None):
        super().__init__(write_interval="epoch")
        self.output = Path(output) if output is not None else None
        self.written: Path | None = None
        self.accuracy: float | None = None  # over the samples with a known label; None if there were none
        self._labels: list[Tensor] = []

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._labels = []

    def on_predict_batch_end(
        self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int, dataloader_idx=0
    ) -> None:
        labels = batch[1] if isinstance(batch, tuple | list) and len(batch) == 2 else None
        if isinstance(labels, Tensor) and labels.ndim == 1:
            self._labels.append(labels.detach())
        super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions, batch_indices):
        probs = torch.cat([p.float().cpu() for p in predictions])  # (N, C)
        indices = flatten_batch_indices(batch_indices)
        if len(indices) != len(probs):  # a loader Lightning cannot take indices from (LitData's): in served order
            indices = list(range(len(probs)))
        labels = torch.cat(self._labels).cpu() if self._labels else None
        if labels is not None and (len(labels) != len(probs) or not (labels >= 0).any()):
            labels = None  # not one label per prediction, or none known: nothing to compare
        classes = class_names(trainer.datamodule, probs.shape[1])
        sample_names = predict_names(trainer.datamodule)
        path = self.output or Path(trainer.log_dir or ".") / "predictions.csv"
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        # fast_dev_run writes nothing unless asked to: the rows are still made, so their code is checked
        keep = self.output is not None or not trainer.fast_dev_run
        if keep:
            path.parent.mkdir(parents=True, exist_ok=True)
        best_p, best = probs.max(dim=1)
        with open(path, "w", newline="") if keep else io.StringIO() as f:
            writer = csv.writer(f)
            label_column = ["label"] if labels is not None else []
            writer.writerow(["sample", *label_column, "predicted", "probability", *(f"p_{name}" for name in classes)])
            for row, index in enumerate(indices):
                name = sample_names[index] if sample_names is not None else index
                label = [_class_name(classes, int(labels[row]))] if labels is not None else []
                probabilities = (f"{p:.6f}" for p in probs[row].tolist())
                writer.writerow([name, *label, classes[best[row]], f"{best_p[row]:.6f}", *probabilities])
        self.written = path if keep else None
        where = f"written to {path}" if keep else "made (fast_dev_run: not written; --predictions.output names a file)"
        message = f"Predictions for {len(indices)} samples {where}"
        if labels is not None:
            known = labels >= 0
            self.accuracy = (best[known] == labels[known]).float().mean().item()
            message += f"; accuracy {self.accuracy:.4f} on the {int(known.sum())} with a known label"
        print(message)


def _class_name(classes: list, label: int) -> str:
    """The class's name, or an empty cell for an unknown label."""
    return str(classes[label]) if 0 <= label < len(classes) else ""
