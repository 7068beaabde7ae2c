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
    """Logs the validation confusion matrix as `val/confusion_matrix`: rows the true class, columns the
    predicted one, class names on both axes, each row shaded by its share, counts in the cells.

    Args:
        normalize: also log `val/confusion_matrix_normalized`, the cells showing each row's shares
            (per-class recall on the diagonal), which reads better when the classes differ in size.
    """

    def __init__(self, normalize: bool = False):
        self.normalize = normalize

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.active:
            return
        # Here, not in `setup`: a model may learn its class count from the data only in its own setup
        if not hasattr(self, "matrix"):
            self.matrix = MulticlassConfusionMatrix(pl_module.hparams.num_classes, validate_args=False)
        self.matrix.to(pl_module.device)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.active:
            self.matrix.update(outputs["preds"], batch[1])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.active:
            return
        counts = self.matrix.compute().cpu()  # every rank joins the sum over ranks
        self.matrix.reset()
        if trainer.sanity_checking or not has_tensorboard(trainer):
            return
        names = class_names(trainer, len(counts))
        views = {metrics.VAL_CONFUSION_MATRIX: figures.confusion_matrix(counts, names)}
        if self.normalize:
            views[metrics.VAL_CONFUSION_MATRIX_NORMALIZED] = figures.confusion_matrix(counts, names, normalize=True)
        for writer in tensorboards(trainer):
            for tag, image in views.items():
                writer.add_image(tag, image, trainer.global_step)


def render_confusion_matrix(counts: Tensor, names: list[str], normalize: bool = False) -> Tensor:
    """(C, C) counts -> the (3, H, W) uint8 picture `ConfusionMatrixImage` logs."""
    return torch.from_numpy(figures.confusion_matrix(counts, names, normalize))


class MisclassifiedImages(TensorBoardView):
    """Logs up to `count` misclassified test images as one grid (`test/misclassified`), each titled
    with its true class, the predicted class and the probability the model gave it. For image
    inputs (B, C, H, W) only.
    """

    def __init__(self, count: int = 32):
        self.count = count

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.images, self.titles = [], []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        room = self.count - len(self.titles)
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
            self.titles.append(f"true: {names[label]}\npredicted: {names[pred]} ({p:.2f})")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.images:
            return
        grid = figures.image_grid(self.images, self.titles)
        self.images, self.titles = [], []
        for writer in tensorboards(trainer):
            writer.add_image(metrics.TEST_MISCLASSIFIED, grid, trainer.global_step)
