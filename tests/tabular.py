"""A tabular data module whose sizes are known only once it has read its file, and an MLP sized by them:
the shape of a fork's own data and network, for the tests of `project/engine/sizes.py`."""

from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset


def write_table(path: Path, rows: int = 96, features: int = 5, classes: int = 3, seed: int = 0) -> Path:
    """A CSV of `features` float columns and a last `label` column; the label is the largest of the
    first `classes` columns, so an MLP learns it in a few steps."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=generator)
    y = x[:, :classes].argmax(1)
    lines = [",".join([*(f"f{i}" for i in range(features)), "label"])]
    lines += [",".join([*(f"{v:.5f}" for v in row.tolist()), str(int(label))]) for row, label in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


class TableDataModule(L.LightningDataModule):
    def __init__(self, path: str, batch_size: int = 16):
        super().__init__()
        self.save_hyperparameters()
        self.path = Path(path)
        self.batch_size = batch_size

    def setup(self, stage: str) -> None:
        rows = [line.split(",") for line in self.path.read_text().splitlines()[1:]]
        x = torch.tensor([[float(v) for v in row[:-1]] for row in rows])  # (N, F)
        y = torch.tensor([int(row[-1]) for row in rows])
        self.in_features, self.num_classes = x.shape[1], int(y.max()) + 1
        n_val = len(y) // 4
        self.train_set, self.val_set = TensorDataset(x[n_val:], y[n_val:]), TensorDataset(x[:n_val], y[:n_val])

    @property
    def sizes(self) -> dict[str, int]:
        return {"in_features": self.in_features, "num_classes": self.num_classes}  # AttributeError before setup

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)

    test_dataloader = val_dataloader


class MLP(nn.Module):
    """(B, in_features) -> (B, num_classes); both sizes come from the data."""

    def __init__(self, in_features: int = 1, num_classes: int = 2, hidden: int = 32):
        super().__init__()
        self.in_features = in_features
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
