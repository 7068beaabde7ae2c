"""The training step: any network that maps a batch to class logits, with its loss, metrics and optimizer."""

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from project.engine.errors import ConfigError
from project.engine.sizes import NetSpec, SizeMismatchError, build_net, data_sizes
from project.tasks.classification import metrics
from project.tasks.classification.checks import (
    check_resumed_schedule,
    check_state_fits,
    misfit_error,
    needs_total_steps,
    scheduler_over_the_run,
    shapes,
)

Inputs = Tensor | tuple[Tensor, ...]


class Classifier(L.LightningModule):
    """Cross-entropy classification around an injected `net`.

    Batches are `(inputs, labels)`; a tuple of `inputs` is passed to `net` as separate arguments: audio sends
    `(waveforms, lengths)` so the net can ignore the padding.

    Args:
        net: maps inputs to (B, num_classes) logits; chosen in YAML by class_path. The CLI hands it over
            unbuilt and it is built once the data's sizes are known, filling its constructor arguments of
            the same names (project/engine/sizes.py); a built module is used as it is.
        num_classes: sizes the metrics; by default the data's class count, read at `setup`.
        optimizer: built from the config, e.g. `class_path: torch.optim.SGD`; None is AdamW at its defaults
            (configs/base.yaml states the CLI's).
        scheduler: optional; one that takes `total_steps` and is not given it (OneCycleLR) gets the run's
            length and is stepped every batch; any other is stepped every epoch.
        label_smoothing: spreads this much target mass over all classes; a mild regulariser.
        compile: wrap `net` in torch.compile for the forward and backward passes.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int | None = None,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        label_smoothing: float = 0.0,
        compile: bool = False,
    ):
        super().__init__()
        if num_classes is not None and num_classes < 2:
            raise ConfigError(f"model.num_classes={num_classes}: a classifier needs at least 2 classes")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(
                f"model.label_smoothing={label_smoothing} is outside [0, 1): it is the share of the target "
                "spread over all classes; 0.1 is usual, 0 turns it off"
            )
        # The CLI passes net's class_path/init_args here, so a checkpoint alone rebuilds the model
        self.save_hyperparameters()
        self.optimizer = optimizer
        self.scheduler = scheduler
        self._compile_net = compile
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self._inputs_checked = False
        self._input_shapes: str | None = None  # of the first batch, e.g. "(B, 3, 32, 32)"
        self._net_spec = None if net is None or isinstance(net, nn.Module) else net
        if isinstance(net, nn.Module):
            self._set_net(net)
        if num_classes is not None:
            self._set_metrics(num_classes)

    def defer_net(self, net: NetSpec | Callable[..., nn.Module]) -> None:
        """Build `net` at `setup` (or `build`), with the data's sizes, in place of the current one."""
        self._net_spec = net
        if hasattr(self, "net"):
            del self.net

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        self.build(data_sizes(datamodule) if datamodule is not None else {}, f"the data ({type(datamodule).__name__})")

    def build(self, sizes: dict, source: str = "the data") -> None:
        """Build what waits for the data's sizes: the net (see `net`) and the metrics. Idempotent."""
        if self._net_spec is not None and not hasattr(self, "net"):
            self._set_net(build_net(self._net_spec, sizes, source))
            if isinstance(self._net_spec, NetSpec):  # the checkpoint rebuilds the net without the data
                self.hparams["net"] = self._net_spec.config()
        found = sizes.get("num_classes")
        if self.hparams.num_classes is None:
            if found is None:
                raise SizeMismatchError(
                    f"model.num_classes is not set and {source} gives no num_classes; "
                    "set model.num_classes, or give the data module a `num_classes` or `sizes`."
                )
            self.hparams["num_classes"] = found
            self._set_metrics(found)
        elif found is not None and found != self.hparams.num_classes:
            raise SizeMismatchError(
                f"The model has {self.hparams.num_classes} classes but {source} has "
                f"{found}: a checkpoint's network does not fit data with another class count. Evaluate it on the "
                "data it was trained on, or remove model.num_classes."
            )

    def _set_net(self, net: nn.Module) -> None:
        self.net = net
        if self._compile_net:
            # In-place Module.compile keeps net's state-dict keys plain (no `_orig_mod.` prefixes),
            # so checkpoints load with or without compilation.
            self.net.compile()

    def _set_metrics(self, num_classes: int) -> None:
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
                "returns n normalised training images, as ImageDataModule does."
            )
        init_from_data(sample)

    def forward(self, x: Inputs) -> Tensor:
        try:
            out = self.net(*x) if isinstance(x, tuple | list) else self.net(x)
        except (RuntimeError, TypeError, ValueError) as err:
            if self._inputs_checked:
                raise
            # The first batch after building or loading the net: a net that fails on it was made for other data
            try:
                ckpt_path = self.trainer.ckpt_path
            except RuntimeError:  # not attached to a trainer: called directly
                ckpt_path = None
            built_with = getattr(self._net_spec, "init_args", None)
            misfit = misfit_error(err, self.net, built_with, x, ckpt_path, self._input_shapes)
            if misfit is None:
                raise
            raise misfit from err
        if not self._inputs_checked:
            self._inputs_checked = True
            self._input_shapes = self._input_shapes or shapes(x)
        return out

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._input_shapes:  # to say what data the network was made for if given other data
            checkpoint["input_shapes"] = self._input_shapes

    def training_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss_fn(logits, y)
        # `update`, not a call: a call also computes this batch's accuracy, which only a per-step log would
        # read; the metric is computed and logged once, at the epoch's end (`on_train_epoch_end`)
        self.train_acc.update(logits, y)
        # Logged as a tensor: Lightning reads it back only every `log_every_n_steps`, so no host sync per step
        self.log(metrics.TRAIN_LOSS, loss, on_step=True, on_epoch=True)
        return loss

    # The accuracies are logged once an epoch: each `self.log` costs Lightning's bookkeeping a step
    def on_train_epoch_end(self) -> None:
        self.log(metrics.TRAIN_ACC, self.train_acc, on_step=False, on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        self.log(metrics.VAL_ACC, self.val_acc, on_epoch=True, prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self.log(metrics.TEST_ACC, self.test_acc, on_epoch=True, prog_bar=True)

    def validation_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate(batch, self.val_acc, metrics.VAL_LOSS)

    def test_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate(batch, self.test_acc, metrics.TEST_LOSS)

    def predict_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> Tensor:
        """Class probabilities (B, num_classes)."""
        return self(batch[0]).float().softmax(dim=-1)

    def _evaluate(self, batch: tuple[Inputs, Tensor], accuracy: MulticlassAccuracy, loss: str) -> dict[str, Tensor]:
        x, y = batch
        logits = self(x)
        accuracy.update(logits, y)  # computed and logged once, at the epoch's end, as in training_step
        self.log(loss, self.loss_fn(logits, y), on_epoch=True, sync_dist=True)
        # For the report callbacks (project/engine/callbacks/): left on the device, read only at the epoch's end
        return {"preds": logits.argmax(dim=-1), "probs": logits.detach().float().softmax(dim=-1)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_state_fits(self.state_dict(), checkpoint.get("state_dict", {}))
        self._inputs_checked = False
        self._input_shapes = checkpoint.get("input_shapes")

    def on_train_start(self) -> None:
        check_resumed_schedule(self.trainer)

    def configure_optimizers(self):
        try:
            optimizer = (self.optimizer or torch.optim.AdamW)(self.parameters())
        except ValueError as err:  # torch checks the hyperparameters: `Invalid momentum value: -1.0`
            raise ConfigError(f"model.optimizer refused its arguments: {err}") from err
        if self.scheduler is None:
            return optimizer
        if needs_total_steps(self.scheduler):  # stepped every batch over the run's length
            scheduler, interval = scheduler_over_the_run(self.scheduler, optimizer, self.trainer), "step"
        else:
            scheduler, interval = self.scheduler(optimizer), "epoch"
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval, "name": metrics.LR},
        }
