"""TensorBoard pictures of how the classifier errs: a confusion matrix every validation epoch and a
grid of misclassified test images. Both need the net's predictions, which the Classifier's
validation and test steps return as `{"preds": (B,)}`; the work runs once per evaluation batch,
never in the training step, and not at all in a run without TensorBoard (another logger, none, or
Lightning's fast_dev_run), which says so in one info line."""

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix
from torchvision.utils import make_grid


def tensorboards(trainer: L.Trainer) -> list:
    """The SummaryWriters of the trainer's TensorBoard loggers (empty off rank 0)."""
    return [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]


def draws(trainer: L.Trainer, callback: L.Callback) -> bool:
    """Whether `callback` has a TensorBoard to draw into. If not it idles, saying so in one info line;
    quietly under fast_dev_run, which announces that it switched logging off."""
    if any(isinstance(logger, TensorBoardLogger) for logger in trainer.loggers):
        return True
    if not trainer.fast_dev_run:
        rank_zero_info(f"{type(callback).__name__} draws into TensorBoard only; this run has none, so it idles.")
    return False


def class_names(trainer: L.Trainer, num_classes: int) -> list[str]:
    names = getattr(trainer.datamodule, "classes", None)
    return list(names) if names is not None else [str(i) for i in range(num_classes)]


class ConfusionMatrixImage(L.Callback):
    """Logs the validation confusion matrix as `val/confusion_matrix`, rows = true class, each row
    shaded by its share (recall), counts written in the cells."""

    active = True

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage in ("fit", "validate"):  # the stages that validate
            self.active = draws(trainer, self)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, not in `setup`: a model may learn its class count from the data only in its own setup
        if self.active and not hasattr(self, "matrix"):
            self.matrix = MulticlassConfusionMatrix(pl_module.hparams.num_classes).to(pl_module.device)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.active:
            self.matrix.to(pl_module.device).update(outputs["preds"], batch[1])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.active:
            return
        counts = self.matrix.compute().cpu()  # every rank joins the sum over ranks
        self.matrix.reset()
        if trainer.sanity_checking:
            return
        image = render_confusion_matrix(counts, class_names(trainer, len(counts)))
        for writer in tensorboards(trainer):
            writer.add_image("val/confusion_matrix", image, trainer.global_step)


def render_confusion_matrix(counts: Tensor, names: list[str], cell: int = 40) -> Tensor:
    """(C, C) counts -> a (3, H, W) uint8 picture with class names and counts."""
    n = len(names)
    font = ImageFont.load_default()
    margin = max(int(font.getlength(name)) for name in names) + 10
    canvas = Image.new("RGB", (margin + n * cell + 1, margin + n * cell + 1), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((5, 5), "true \\ predicted", fill="gray", font=font)
    recall = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    for i in range(n):
        draw.text((5, margin + i * cell + cell // 3), names[i], fill="black", font=font)  # true class, left
        column = Image.new("RGB", (margin, cell), "white")
        ImageDraw.Draw(column).text((5, cell // 3), names[i], fill="black", font=font)
        canvas.paste(column.rotate(90, expand=True), (margin + i * cell, 0))  # predicted class, top
        for j in range(n):
            shade = int(255 * (1 - float(recall[i, j])))
            box = (margin + j * cell, margin + i * cell, margin + (j + 1) * cell, margin + (i + 1) * cell)
            draw.rectangle(box, fill=(shade, shade, 255), outline="gray")
            draw.text(
                (box[0] + 4, box[1] + cell // 3),
                str(int(counts[i, j])),
                font=font,
                fill="white" if shade < 128 else "black",
            )
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1)  # (3, H, W)


class MisclassifiedImages(L.Callback):
    """Logs up to `count` misclassified test images as a grid (`test/misclassified`) with a caption
    listing "true -> predicted" per tile. For image inputs (B, C, H, W) only."""

    def __init__(self, count: int = 64):
        self.count = count
        self.active = True

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "test":
            self.active = draws(trainer, self)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.images, self.captions = [], []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        room = self.count - len(self.captions)
        if room <= 0 or not trainer.is_global_zero or not self.active:
            return
        images, labels = batch
        if not (isinstance(images, Tensor) and images.ndim == 4):
            raise TypeError("MisclassifiedImages needs image batches (B, C, H, W); remove it from this config.")
        wrong = (outputs["preds"] != labels).nonzero().flatten()[:room].cpu()  # test time: a sync is fine
        names = class_names(trainer, pl_module.hparams.num_classes)
        preds, labels = outputs["preds"].cpu(), labels.cpu()
        for i in wrong.tolist():
            image = images[i].float().cpu()
            self.images.append((image - image.min()) / (image.max() - image.min()).clamp(min=1e-6))
            self.captions.append(f"{names[labels[i]]} -> {names[preds[i]]}")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.images:
            return
        grid = make_grid(torch.stack(self.images), nrow=8, padding=2, pad_value=1.0)
        caption = "Row by row, true -> predicted: " + "; ".join(self.captions)
        for writer in tensorboards(trainer):
            writer.add_image("test/misclassified", grid, trainer.global_step)
            writer.add_text("test/misclassified", caption, trainer.global_step)
