"""The training step: any network that maps a batch to class logits, with its loss, metrics and optimizer."""

from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from project.engine import optim
from project.engine.errors import ConfigError
from project.engine.sizes import class_names
from project.tasks.classification import metrics
from project.tasks.classification.checks import misfit_error, shapes

Inputs = Tensor | tuple[Tensor, ...]


class Classifier(L.LightningModule):
    """Cross-entropy classification around an injected `net`.

    Batches are `(inputs, labels)`; a tuple of `inputs` is passed to `net` as separate arguments: audio sends
    `(waveforms, lengths)` so the net can ignore the padding.

    Args:
        net: maps inputs to (B, num_classes) logits; chosen in YAML by class_path. The engine builds it with the
            data's sizes filling its constructor arguments of the same names (project/engine/sizes.py).
        num_classes: sizes the metrics; by default the data's class count.
        optimizer: built from the config, e.g. `class_path: torch.optim.SGD`; None is AdamW at its defaults.
        scheduler: optional; one that takes `total_steps` and is not given it (OneCycleLR) gets the run's
            length and is stepped every batch; any other is stepped every epoch.
        label_smoothing: spreads this much target mass over all classes; a mild regulariser.
        compile: wrap `net` in torch.compile for the forward and backward passes.
    """

    # What the validation and test steps return, for the views that read them (their `needs`)
    step_outputs = ("preds", "probs")

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
        # Through the CLI the net is recorded as its config (class_path, init_args), so a checkpoint alone rebuilds
        # the model; a net built in Python is not a hyperparameter (its weights are in the checkpoint)
        self.save_hyperparameters()
        if isinstance(self.hparams.get("net"), nn.Module):
            del self.hparams["net"]
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self._inputs_checked = self._targets_checked = False
        self._input_shapes: str | None = None  # of the first batch, e.g. "(B, 3, 32, 32)"
        self.net = net
        self._compile, self._compiled = compile, False
        if num_classes is not None:
            self._set_metrics(num_classes)

    def setup(self, stage: str) -> None:
        # A data module that tells its class count only once set up: the engine has filled it in by now
        if not hasattr(self, "val_acc"):
            if self.hparams.num_classes is None:
                raise ConfigError(
                    "model.num_classes is not set and the data names no classes: set model.num_classes, or give the "
                    "data module a `num_classes` or `sizes` (project/engine/sizes.py). Data whose targets are values "
                    'needs a task of its own (docs/make-it-yours.md, "Bring your own task")'
                )
            self._set_metrics(self.hparams.num_classes)
        if self._compile and not self._compiled:
            # In-place Module.compile keeps net's state-dict keys plain (no `_orig_mod.` prefixes),
            # so checkpoints load with or without compilation.
            self.net.compile()
            self._compiled = True

    def _set_metrics(self, num_classes: int) -> None:
        # validate_args=False: the checks count the distinct labels of every batch (torch.unique), a
        # host sync per step; labels out of range still fail loudly in the loss.
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)

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
            built_with = (self.hparams.get("net") or {}).get("init_args") if "net" in self.hparams else None
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

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._inputs_checked = False
        self._input_shapes = checkpoint.get("input_shapes")

    def training_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        self._check_targets(y)
        logits = self(x)
        loss = self.loss_fn(logits, y)
        # `update`, not a call: a call also computes this batch's accuracy, which only a per-step log would
        # read; logged per epoch, the metric is computed once at the epoch's end
        self.train_acc.update(logits, y)
        # Logged as tensors: Lightning reads them back only every `log_every_n_steps`, so no host sync per step
        self.log(metrics.TRAIN_LOSS, loss, on_step=True, on_epoch=True)
        self.log(metrics.TRAIN_ACC, self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate(batch, self.val_acc, metrics.VAL_LOSS, metrics.VAL_ACC)

    def test_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate(batch, self.test_acc, metrics.TEST_LOSS, metrics.TEST_ACC)

    def predict_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> dict[str, Any]:
        """The columns of the predictions CSV: the label where known, the predicted class and its probability,
        and every class's probability (`p_<class>`)."""
        x, y = batch
        probs = self(x).float().softmax(dim=-1)  # (B, num_classes)
        names = class_names(self.trainer.datamodule, probs.shape[1])
        best_p, best = probs.max(dim=1)
        columns: dict[str, Any] = {}
        if isinstance(y, Tensor) and y.ndim == 1:  # -1: an unlabelled file, an empty cell
            columns["label"] = [names[i] if 0 <= i < len(names) else "" for i in y.tolist()]
        columns["predicted"] = [names[i] for i in best.tolist()]
        columns["probability"] = best_p
        columns.update({f"p_{name}": probs[:, i] for i, name in enumerate(names)})
        return columns

    def prediction_summary(self, columns: dict[str, list]) -> str | None:
        """The accuracy on the predicted samples whose label is known (printed by the predictions writer)."""
        labels = columns.get("label") or [""] * len(columns["predicted"])
        known = [(label, predicted) for label, predicted in zip(labels, columns["predicted"], strict=True) if label]
        if not known:
            return None
        accuracy = sum(label == predicted for label, predicted in known) / len(known)
        return f"accuracy {accuracy:.4f} on the {len(known)} with a known label"

    def _check_targets(self, y: Tensor) -> None:
        """Class indices (B,): values or several labels a sample would fail deep in the loss, or train on wrongly
        without a word. Shape and dtype are known without reading the batch back: no host sync."""
        if self._targets_checked:
            return
        if not isinstance(y, Tensor) or y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
            given = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
            raise ConfigError(
                f"Classifier takes class indices (B,) as targets, and this data gives {given}: for values or several "
                'labels a sample, use a task of their own (docs/make-it-yours.md, "Bring your own task")'
            )
        self._targets_checked = True

    def _evaluate(
        self, batch: tuple[Inputs, Tensor], accuracy: MulticlassAccuracy, loss_name: str, acc_name: str
    ) -> dict[str, Tensor]:
        x, y = batch
        self._check_targets(y)
        logits = self(x)
        accuracy.update(logits, y)  # computed once at the epoch's end, as in training_step
        self.log(loss_name, self.loss_fn(logits, y), on_epoch=True, sync_dist=True)
        self.log(acc_name, accuracy, on_epoch=True, prog_bar=True)
        # For the views (step_outputs): left on the device, read only at the epoch's end
        return {"preds": logits.argmax(dim=-1), "probs": logits.detach().float().softmax(dim=-1)}

    def configure_optimizers(self) -> Any:
        return optim.configure(self, self.optimizer, self.scheduler)
