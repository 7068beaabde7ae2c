"""The training step: any network that maps a batch to class logits, with its loss, metrics and optimizer."""

import inspect
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics.classification import MulticlassAccuracy

from project import metrics
from project.errors import CheckpointError, ConfigError
from project.sizes import NetSpec, SizeMismatchError, build_net, data_sizes

Inputs = Tensor | tuple[Tensor, ...]


class Classifier(L.LightningModule):
    """Cross-entropy classification around an injected `net`.

    Batches are `(inputs, labels)`. `inputs` is a tensor, or a tuple of tensors passed to `net` as
    separate arguments: audio sends `(waveforms, lengths)` so the net can ignore the padding.

    Args:
        net: maps inputs to (B, num_classes) logits; chosen in YAML by class_path. The CLI hands it over
            unbuilt (a `NetSpec`) and it is built at `setup`, when the data's sizes fill its constructor
            arguments of the same names (project/sizes.py); a built module is used as it is.
            The CLI builds it at once when the data knows its sizes before `setup`.
        num_classes: sizes the metrics; by default the data's class count, read at `setup`.
        optimizer: built from the config, e.g. `class_path: torch.optim.SGD`; None is AdamW at its defaults
            (configs/base.yaml states the CLI's).
        scheduler: optional; a scheduler that takes `total_steps` and is not given one (OneCycleLR)
            gets the run's length from the trainer and is stepped every batch; any other is stepped
            every epoch.
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
        if not self._inputs_checked:
            return self._first_forward(x)
        return self.net(*x) if isinstance(x, tuple | list) else self.net(x)

    def _first_forward(self, x: Inputs) -> Tensor:
        """The first batch after loading a checkpoint: a net that fails on it was made for other data."""
        try:
            ckpt_path = self.trainer.ckpt_path
        except RuntimeError:  # not attached to a trainer: called directly
            ckpt_path = None
        try:
            out = self.net(*x) if isinstance(x, tuple | list) else self.net(x)
        except (RuntimeError, TypeError, ValueError) as err:
            if isinstance(err, torch.OutOfMemoryError):
                raise
            if ckpt_path is None:
                if not _is_shape_error(err):
                    raise
                built = getattr(self._net_spec, "init_args", None)
                raise SizeMismatchError(
                    f"model.net ({type(self.net).__name__}"
                    + (f", built with {_size_args(built)}" if built else "")
                    + f") does not fit the data's inputs of shape {_shapes(x)}: {err}. Give the net the data's sizes "
                    "(name its constructor arguments like the data module's `sizes`, project/sizes.py) or fix "
                    "model.net.init_args."
                ) from err
            trained_on = f" (it was trained on inputs of shape {self._input_shapes})" if self._input_shapes else ""
            raise CheckpointError(
                f"The checkpoint's network does not fit this data: {ckpt_path} holds a "
                f"{type(self.net).__name__}{trained_on}, which fails on this data's inputs of shape "
                f"{_shapes(x)}: {err}. Evaluate a checkpoint with the data it was trained on (without "
                "--config, the run's own config.yaml is used)."
            ) from err
        self._inputs_checked = True
        self._input_shapes = self._input_shapes or _shapes(x)
        return out

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._input_shapes:  # to say what data the network was made for if given other data
            checkpoint["input_shapes"] = self._input_shapes

    def training_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
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

    def predict_step(self, batch: tuple[Inputs, Tensor], batch_idx: int) -> Tensor:
        """Class probabilities (B, num_classes)."""
        return self(batch[0]).float().softmax(dim=-1)

    def _evaluate(
        self, batch: tuple[Inputs, Tensor], accuracy: MulticlassAccuracy, loss_name: str, acc_name: str
    ) -> dict[str, Tensor]:
        x, y = batch
        logits = self(x)
        accuracy.update(logits, y)  # computed once at the epoch's end, as in training_step
        self.log(loss_name, self.loss_fn(logits, y), on_epoch=True, sync_dist=True)
        self.log(acc_name, accuracy, on_epoch=True, prog_bar=True)
        # For the report callbacks (project/callbacks/): left on the device, read only at the epoch's end
        return {"preds": logits.argmax(dim=-1), "probs": logits.detach().float().softmax(dim=-1)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        own = self.state_dict()
        theirs = checkpoint.get("state_dict", {})
        wrong = [f"{k}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in theirs.items()
                 if k in own and hasattr(v, "shape") and v.shape != own[k].shape]  # fmt: skip
        missing = [k for k in own if k not in theirs]
        if wrong or missing:
            raise CheckpointError(
                "The checkpoint's network does not fit the model built from the config: "
                + "; ".join(wrong[:3] + [f"{k}: missing from the checkpoint" for k in missing[:3]])
                + ". Use the config of the run that wrote the checkpoint (without --config, the run folder's "
                "config.yaml is used), without overrides of model.net."
            )
        self._inputs_checked = False
        self._input_shapes = checkpoint.get("input_shapes")

    def on_train_start(self) -> None:
        # A resumed one-cycle schedule keeps the length it was built with; a longer run would fail
        # when it runs past that length, perhaps hours in. Refuse before the first step instead.
        total = self.trainer.estimated_stepping_batches
        for config in self.trainer.lr_scheduler_configs:
            length = getattr(config.scheduler, "total_steps", None)
            if config.interval == "step" and isinstance(length, int) and length < total:
                raise ConfigError(
                    f"This run has {int(total)} training steps, but the {type(config.scheduler).__name__} "
                    f"schedule resumed from {self.trainer.ckpt_path} spans {length}: a one-cycle schedule "
                    "cannot be stretched. Resume with the trainer.max_epochs/max_steps of the original "
                    "run, or start a new fit (without --ckpt_path) for a longer schedule."
                )

    def configure_optimizers(self):
        try:
            optimizer = (self.optimizer or torch.optim.AdamW)(self.parameters())
        except ValueError as err:  # torch checks the hyperparameters: `Invalid momentum value: -1.0`
            raise ConfigError(f"model.optimizer refused its arguments: {err}") from err
        if self.scheduler is None:
            return optimizer
        if _needs_total_steps(self.scheduler):
            scheduler = self._scheduler_over_the_run(optimizer)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler(optimizer), "interval": "epoch"},
        }

    def _scheduler_over_the_run(self, optimizer: torch.optim.Optimizer) -> LRScheduler:
        """The scheduler given the run's length in steps, with an error saying what to change if the
        run is too short for it (OneCycleLR fails with ZeroDivisionError or its own ValueError)."""
        trainer = self.trainer
        total = trainer.estimated_stepping_batches
        if total < 1:
            batch_size = getattr(trainer.datamodule, "hparams", {}).get("batch_size")
            raise ConfigError(
                "model.scheduler needs the run's length, but this fit has no training steps "
                f"(trainer.limit_train_batches={trainer.limit_train_batches}, max_epochs={trainer.max_epochs}, "
                f"max_steps={trainer.max_steps}, data.batch_size={batch_size}). A batch size larger than the "
                "training set gives no full batch: lower it, or raise the number of epochs, steps or batches."
            )
        try:
            return self.scheduler(optimizer, total_steps=int(total))
        except (ZeroDivisionError, ValueError) as err:
            raise ConfigError(
                f"model.scheduler cannot be laid over this run's {int(total)} training steps ({type(err).__name__}: "
                f"{err}). Train for more steps (trainer.max_epochs, max_steps, limit_train_batches), or "
                "change the schedule's init_args (e.g. a pct_start that gives the warm-up at least 2 steps)."
            ) from err


def _shapes(x: Inputs) -> str:
    """The inputs' shapes with the batch size left out, e.g. "(B, 3, 32, 32)" or "(B, T), (B,)"."""
    tensors = x if isinstance(x, tuple | list) else (x,)
    return ", ".join(
        "(" + ", ".join(["B", *map(str, t.shape[1:])]) + ("," if t.dim() == 1 else "") + ")"
        if isinstance(t, Tensor) and t.dim() > 0
        else type(t).__name__
        for t in tensors
    )


def _is_shape_error(err: Exception) -> bool:
    """An error torch raises for a tensor of the wrong shape (a net made for other inputs), not a bug."""
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        s in text for s in ("shapes cannot be multiplied", "size mismatch", "Expected", "channels", "must match")
    )


def _size_args(init_args: dict[str, Any]) -> str:
    """The net's arguments that set a size, e.g. "in_features=16"."""
    shown = {k: v for k, v in init_args.items() if isinstance(v, int) and not isinstance(v, bool)}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "its defaults"


def _needs_total_steps(scheduler: LRSchedulerCallable) -> bool:
    """True for a schedule shaped by the run's length (OneCycleLR) whose length was left unset."""
    given = getattr(scheduler, "keywords", {})  # the arguments jsonargparse (or functools.partial) bound
    if "total_steps" in given:
        return given["total_steps"] is None
    param = inspect.signature(scheduler).parameters.get("total_steps")
    return param is not None and param.default is None
