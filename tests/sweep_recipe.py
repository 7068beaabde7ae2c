"""A recipe of the sweep tests' own: Gaussian blobs and a small MLP, a fit of a few seconds on a CPU."""

import copy
from pathlib import Path

import lightning as L
import torch
import yaml
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset


class Blobs(L.LightningDataModule):
    """`num_classes` Gaussian clusters in `features` dimensions, far enough apart to learn in one epoch."""

    def __init__(self, num_classes: int = 3, features: int = 8, size: int = 256, batch_size: int = 32):
        super().__init__()
        self.num_classes = num_classes
        generator = torch.Generator().manual_seed(0)
        centres = 3 * torch.randn(num_classes, features, generator=generator)
        labels = torch.arange(size) % num_classes
        inputs = centres[labels] + torch.randn(size, features, generator=generator)  # (N, F)
        split = size * 3 // 4
        self.train = TensorDataset(inputs[:split], labels[:split])
        self.val = TensorDataset(inputs[split:], labels[split:])
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.batch_size)


class MLP(nn.Module):
    def __init__(self, num_classes: int, features: int = 8, hidden: int = 16, activation: str = "relu"):
        super().__init__()
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        self.layers = nn.Sequential(nn.Linear(features, hidden), act(), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class Sabotage(L.Callback):
    """Ruins the named trials' fits (by their run folder's version) at their second epoch: `nan` makes
    the weights NaN (the project's NaN guard stops the fit), `interrupt` acts as a Ctrl-C."""

    def __init__(self, nan: str = "", interrupt: str = ""):
        self.nan, self.interrupt = nan, interrupt

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch != 1:
            return
        if trainer.logger.version == self.nan:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))
        if trainer.logger.version == self.interrupt:
            raise KeyboardInterrupt


RECIPE = {
    "seed_everything": 0,
    "trainer": {
        "max_epochs": 3,
        "precision": "32-true",
        "accelerator": "cpu",
        "devices": 1,
        "log_every_n_steps": 2,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "callbacks": [],
        "logger": {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": "logs", "name": "blobs", "default_hp_metric": False},
        },
    },
    "checkpoint": {"monitor": "val/acc", "mode": "max"},  # the sweep's objective too
    "model": {
        "class_path": "project.tasks.classification.Classifier",
        "init_args": {
            "net": {"class_path": f"{__name__}.MLP", "init_args": {"features": 8, "hidden": 16}},
            "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}},
            "scheduler": None,
            "label_smoothing": 0.0,
        },
    },
    "data": {"class_path": f"{__name__}.Blobs", "init_args": {"features": 8, "batch_size": 32}},
}

SPACE = {
    "model.optimizer.init_args.lr": {"type": "float", "low": "1e-2", "high": 0.5, "log": True},
    "model.net.init_args.hidden": {"type": "int", "low": 8, "high": 32, "step": 8},
    "model.net.init_args.activation": {"type": "categorical", "choices": ["relu", "tanh"]},
}


def write_recipe(folder: Path) -> tuple[Path, Path]:
    """The recipe and search space as YAML files in `folder`, logging into `folder / "logs"`."""
    recipe = copy.deepcopy(RECIPE)
    recipe["trainer"]["logger"]["init_args"]["save_dir"] = str(folder / "logs")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    (folder / "space.yaml").write_text(yaml.safe_dump(SPACE, sort_keys=False))
    return folder / "recipe.yaml", folder / "space.yaml"
