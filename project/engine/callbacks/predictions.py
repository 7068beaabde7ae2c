"""`predict` writes a CSV of the model's predictions: one row per sample, named as the data module names its samples,
with the columns the model's `predict_step` returns (the engine's protocol: docs/make-it-yours.md)."""

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from project.engine.errors import ConfigError
from project.engine.internals import flatten_batch_indices
from project.engine.sizes import predict_names

Columns = dict[str, list[Any]]


class PredictionCSV(BasePredictionWriter):
    """Writes what `predict_step` returns, one row per sample after its name (`sample`):
    - a dict of columns: each a tensor (B,), a list of B values, or a (B, K) tensor that becomes K columns
      `<name>_0` ... `<name>_<K-1>`;
    - a bare tensor: the column `prediction` (or columns `prediction_<k>`).
    A column empty in every row (the labels of a folder of new files) is left out.

    A model may also say what its predictions amount to (`prediction_summary(columns) -> str`, e.g. the accuracy
    on the samples whose label is known): it is printed after where the file went.

    Args:
        output: the CSV to write; by default `predictions.csv` in the run's log folder. Under DDP each
            rank writes its share to `<stem>.rank<r>.csv`.

    Predictions stay where the model left them until the epoch's end: no extra host sync per batch.
    """

    def __init__(self, output: str | Path | None = None):
        super().__init__(write_interval="epoch")
        self.output = Path(output) if output is not None else None
        self.written: Path | None = None
        self.summary: str | None = None

    def on_predict_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int, loader_idx=0) -> None:
        if batch_idx == 0:  # what the model returns is checked on the first batch, not after the whole set
            _columns([outputs], type(pl_module).__name__)

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions, batch_indices):
        columns = _columns(predictions, type(pl_module).__name__)
        count = len(next(iter(columns.values()), []))
        indices = flatten_batch_indices(batch_indices)
        if len(indices) != count:  # a loader Lightning cannot take indices from (LitData's): in served order
            indices = list(range(count))
        sample_names = predict_names(trainer.datamodule)
        path = self.output or Path(trainer.log_dir or ".") / "predictions.csv"
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        # fast_dev_run writes nothing unless asked to: the rows are still made, so their code is checked
        keep = self.output is not None or not trainer.fast_dev_run
        if keep:
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") if keep else io.StringIO() as f:
            writer = csv.writer(f)
            writer.writerow(["sample", *columns])
            for row, index in enumerate(indices):
                name = sample_names[index] if sample_names is not None else index
                writer.writerow([name, *(_cell(values[row]) for values in columns.values())])
        self.written = path if keep else None
        where = f"written to {path}" if keep else "made (fast_dev_run: not written; --predictions.output names a file)"
        summarize = getattr(pl_module, "prediction_summary", None)
        self.summary = summarize(columns) if callable(summarize) else None
        print(f"Predictions for {count} samples {where}" + (f"; {self.summary}" if self.summary else ""))


def _columns(predictions: list[Any], model: str) -> Columns:
    """The batches' outputs as whole columns, in order."""
    columns: Columns = {}
    for output in predictions:
        if isinstance(output, Tensor):
            output = {"prediction": output}
        if not isinstance(output, Mapping):
            raise ConfigError(
                f"{model}.predict_step returned a {type(output).__name__}: the predictions CSV takes a tensor or a "
                "dict of columns (tensors (B,) or (B, K), or lists of B values). Return one, or replace the writer: "
                "--predictions.class_path <your BasePredictionWriter>"
            )
        for key, values in output.items():
            if isinstance(values, Tensor) and values.ndim == 2:
                for k, column in enumerate(values.float().cpu().unbind(1)):
                    columns.setdefault(f"{key}_{k}", []).extend(column.tolist())
            elif isinstance(values, Tensor):
                columns.setdefault(str(key), []).extend(values.reshape(-1).cpu().tolist())
            else:
                columns.setdefault(str(key), []).extend(values)
    lengths = {key: len(values) for key, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"{model}.predict_step returned columns of different lengths: {lengths}")
    # A column with no value in any row (the labels of new files) is left out
    return {key: values for key, values in columns.items() if any(v not in ("", None) for v in values)}


def _cell(value: Any) -> Any:
    return f"{value:.6f}" if isinstance(value, float) else value
