"""The training step: any network that maps a batch to class logits, with its loss, metrics and optimizer."""

import inspect

import lightning as L
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from project import metrics

Inputs = Tensor | tuple[Tensor, ...]


class Classifier(L.LightningModule):
    """Cross-entropy classification around an injected `net`.

    Batches are `(inputs, labels)`. `inputs` is a tensor, or a tuple of tensors passed to `net` as
    separate arguments: audio sends `(waveforms, lengths)` so the net can ignore the padding.

    Args:
        net: maps inputs to (B, num_classes) logits; chosen in YAML by class_path.
        num_classes: linked from the DataModule by the CLI; sizes the metrics.
        optimizer: built from the config, e.g. `class_path: torch.optim.SGD`.
        scheduler: optional; a scheduler that takes `total_steps` and is not given one (OneCycleLR)
            gets the run's length from the trainer and is stepped every batch; any other is stepped
            every epoch.
        label_smoothing: spreads this much target mass over all classes; a mild regulariser.
        compile: wrap `net` in torch.compile for the forward and backward passes.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: OptimizerCallable,
        scheduler: LRSchedulerCallable | None = None,
        label_smoothing: float = 0.0,
        compile: bool = False,
    ):
        super().__init__()
        # The CLI passes net's class_path/init_args here, so a checkpoint alone rebuilds the model
        self.save_hyperparameters()
        self.net = net
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        if compile:
            # In-place Module.compile keeps net's state-dict keys plain (no `_orig_mod.` prefixes),
            # so checkpoints load with or without compilation.
            self.net.compile()
        # validate_args=False: the checks count the distinct labels of every batch (torch.unique), a
        # host sync per step; labels out of range still fail loudly in the loss.
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)

    def on_fit_start(self) -> None:
        # A net with a layer computed from the data (airbench's whitening conv) gets training images
        # once, before the first step; a resumed run keeps the layer from its checkpoint.
        init_from_data = getattr(self.net, "init_from_data", None)
        if init_from_data is None or self.trainer.ckpt_path is not None:
            return
        sample = getattr(self.trainer.datamodule, "sample_train_images", None)
        if sample is None:
            raise TypeError(
                f"{type(self.net).__name__} initialises from training images, but the data "
                f"({type(self.trainer.datamodule).__name__}) has no `sample_train_images(n)`. Add one that "
                "returns n normalised training images, as CIFAR10DataModule does."
            )
        init_from_data(sample)

    def forward(self, x: Inputs) -> Tensor:
        return self.net(*x) if isinstance(x, tuple | list) else self.net(x)

    def training_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss_fn(logits, y)
        self.train_acc(logits, y)
        # Logged as tensors: Lightning reads them back only every `log_every_n_steps`, so no host sync per step
        self.log(metrics.TRAIN_LOSS, loss, on_step=True, on_epoch=True)
        self.log(metrics.TRAIN_ACC, self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate(batch, self.val_acc, metrics.VAL_LOSS, metrics.VAL_ACC)

    def test_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate(batch, self.test_acc, metrics.TEST_LOSS, metrics.TEST_ACC)

    def predict_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> Tensor:
        """Class probabilities (B, num_classes)."""
        return self(batch[0]).float().softmax(dim=-1)

    def _evaluate(
        self, batch: tuple[Inputs, Tensor], accuracy: MulticlassAccuracy, loss_name: str, acc_name: str
    ) -> dict[str, Tensor]:
        x, y = batch
        logits = self(x)
        accuracy(logits, y)
        self.log(loss_name, self.loss_fn(logits, y), on_epoch=True, sync_dist=True)
        self.log(acc_name, accuracy, on_epoch=True, prog_bar=True)
        return {"preds": logits.argmax(dim=-1)}  # for callbacks (project/callbacks/reports.py)

    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters())
        if self.scheduler is None:
            return optimizer
        if _needs_total_steps(self.scheduler):
            scheduler = self.scheduler(optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler(optimizer), "interval": "epoch"},
        }


def _needs_total_steps(scheduler: LRSchedulerCallable) -> bool:
    """True for a schedule shaped by the run's length (OneCycleLR) whose length was left unset."""
    given = getattr(scheduler, "keywords", {})  # the arguments jsonargparse (or functools.partial) bound
    if "total_steps" in given:
        return given["total_steps"] is None
    param = inspect.signature(scheduler).parameters.get("total_steps")
    return param is not None and param.default is None
