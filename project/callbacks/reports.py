"""TensorBoard pictures of how the classifier errs: a confusion matrix every validation epoch and a
grid of misclassified test images.

Both read the net's outputs from the Classifier's validation and test steps (`{"preds": (B,),
"probs": (B, C)}`), never the training step. The confusion matrix accumulates on the device
(torchmetrics, no host sync per batch); pictures are drawn at the epoch's end, on global rank 0 only
(project/callbacks/figures.py). Without a TensorBoardLogger both idle.
"""

import lightning as L
import torch
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from project import metrics
from project.callbacks import figures
from project.callbacks.writers import TensorBoardView, class_names, has_tensorboard, tensorboards
from project.errors import ConfigError


class ConfusionMatrixImage(TensorBoardView):
    """Logs the confusion matrix of every validation epoch (`val/confusion_matrix`) and of `test`
    (`test/confusion_matrix`): rows the true class, columns the predicted one, class names on both
    axes, each row shaded by its share, counts in the cells.

    Args:
        normalize: also log `<stage>/confusion_matrix_normalized`, the cells showing each row's shares
            (per-class recall on the diagonal), which reads better when the classes differ in size.
        validation: draw after validation epochs. A run that validates only at its end (a speed
            run) may leave this to `test`: matplotlib takes a few tenths of a second a picture on a
            small CPU, time such a fit would otherwise wait for.
        test: draw after `test`.
        min_interval: seconds of a fit between two validation pictures; a validation sooner than that
            is counted but not drawn, and the last such is drawn when the fit ends. 0 draws every
            validation epoch.
    """

    def __init__(self, normalize: bool = False, validation: bool = True, test: bool = True, min_interval: float = 60.0):
        self.normalize = normalize
        self.validation = validation
        self.test = test
        self.min_interval = min_interval

    def _start(self, pl_module: L.LightningModule) -> None:
        # Here, not in `setup`: a model may learn its class count from the data only in its own setup
        if not hasattr(self, "matrix"):
            self.matrix = MulticlassConfusionMatrix(pl_module.hparams.num_classes, validate_args=False)
        self.matrix.to(pl_module.device).reset()

    def _draw(self, trainer: L.Trainer, tags: tuple[str, str], every_time: bool) -> None:
        counts = self.matrix.compute().cpu()  # every rank joins the sum over ranks
        self.matrix.reset()
        if trainer.sanity_checking or not has_tensorboard(trainer):
            return
        step = trainer.global_step

        def draw() -> None:
            names = class_names(trainer, len(counts))
            views = {tags[0]: figures.confusion_matrix(counts, names)}
            if self.normalize:
                views[tags[1]] = figures.confusion_matrix(counts, names, normalize=True)
            for writer in tensorboards(trainer):
                for tag, image in views.items():
                    writer.add_image(tag, image, step)

        self.draw_when_due(trainer, draw, at_once=every_time)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active and self.validation:
            self._start(pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.active and self.validation:
            self.matrix.update(outputs["preds"], batch[1])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active and self.validation:
            self._draw(trainer, (metrics.VAL_CONFUSION_MATRIX, metrics.VAL_CONFUSION_MATRIX_NORMALIZED), False)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active and self.test:
            self._start(pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.active and self.test:
            self.matrix.update(outputs["preds"], batch[1])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active and self.test:
            self._draw(trainer, (metrics.TEST_CONFUSION_MATRIX, metrics.TEST_CONFUSION_MATRIX_NORMALIZED), True)


def render_confusion_matrix(counts: Tensor, names: list[str], normalize: bool = False) -> Tensor:
    """(C, C) counts -> the (3, H, W) uint8 picture `ConfusionMatrixImage` logs."""
    return torch.from_numpy(figures.confusion_matrix(counts, names, normalize))


class MisclassifiedImages(TensorBoardView):
    """Logs up to `count` misclassified test images as one grid (`test/misclassified`), each captioned
    with its true class and, in red beneath, the predicted class and the probability the model gave
    it. For image inputs (B, C, H, W) only.

    Args:
        count: images in the grid, the first misclassified ones of the test set.
        columns: images a row; three keep the captions readable at TensorBoard's default card width.
    """

    def __init__(self, count: int = 12, columns: int = 3):
        if count < 1 or columns < 1:
            raise ConfigError(f"MisclassifiedImages: count={count}, columns={columns}; both must be at least 1.")
        self.count = count
        self.columns = columns

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.images, self.captions = [], []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        room = self.count - len(self.captions)
        if room <= 0 or not has_tensorboard(trainer):
            return
        images, labels = batch
        if not (isinstance(images, Tensor) and images.ndim == 4):
            raise ConfigError(
                "MisclassifiedImages needs image batches (B, C, H, W); remove it from trainer.callbacks for this data."
            )
        wrong = (outputs["preds"] != labels).nonzero().flatten()[:room].cpu()  # test time: a sync is fine
        if len(wrong) == 0:
            return
        names = class_names(trainer, pl_module.hparams.num_classes)
        preds, labels = outputs["preds"][wrong].cpu(), labels[wrong].cpu()
        confidence = outputs["probs"][wrong].float().amax(dim=-1).cpu()
        self.images.extend(images[wrong.to(images.device)].float().cpu())
        for label, pred, p in zip(labels.tolist(), preds.tolist(), confidence.tolist(), strict=True):
            self.captions.append((names[label], f"{names[pred]} ({p:.2f})"))

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.images:
            return
        legend = "true class; in red, the prediction (its probability)"
        grid = figures.image_grid(self.images, self.captions, self.columns, legend)
        self.images, self.captions = [], []
        for writer in tensorboards(trainer):
            writer.add_image(metrics.TEST_MISCLASSIFIED, grid, trainer.global_step)
