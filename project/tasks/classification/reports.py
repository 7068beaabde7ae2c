"""TensorBoard pictures of how the classifier errs: a confusion matrix every validation epoch and a grid
of misclassified test images. The matrix accumulates on the device (no host sync per batch)."""

import itertools

import lightning as L
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from project.engine.callbacks import figures
from project.engine.callbacks.writers import TensorBoardView, tensorboards
from project.engine.errors import ConfigError
from project.engine.sizes import class_names
from project.tasks.classification import metrics


class ConfusionMatrixImage(TensorBoardView):
    """Logs the confusion matrix of every validation epoch (`val/confusion_matrix`) and of `test`
    (`test/confusion_matrix`): rows the true class, each shaded by its share, counts in the cells.

    Args:
        normalize: also log `<stage>/confusion_matrix_normalized`, each row's shares (per-class recall on the
            diagonal), which reads better when the classes differ in size.
        validation: draw after validation epochs. A speed run may leave this to `test`: matplotlib takes a
            few tenths of a second a picture on a small CPU.
        test: draw after `test`.
        min_interval: seconds of a fit between two validation pictures; the last one skipped is drawn when
            the fit ends. 0 draws every validation epoch.
    """

    needs = ("preds",)
    needs_hparams = ("num_classes",)

    def __init__(self, normalize: bool = False, validation: bool = True, test: bool = True, min_interval: float = 60.0):
        self.normalize = normalize
        self.validation = validation
        self.test = test
        self.min_interval = min_interval

    def _start(self, pl_module: L.LightningModule) -> None:
        if not hasattr(self, "matrix"):
            self.matrix = MulticlassConfusionMatrix(pl_module.hparams.num_classes, validate_args=False)
        self.matrix.to(pl_module.device).reset()

    def _draw(self, trainer: L.Trainer, tags: tuple[str, str]) -> None:
        counts = self.matrix.compute().cpu()  # every rank joins the sum over ranks
        self.matrix.reset()
        if trainer.sanity_checking or not self.writes(trainer):
            return
        step = trainer.global_step

        def draw() -> None:
            names = class_names(trainer.datamodule, len(counts))
            views = {tags[0]: figures.confusion_matrix(counts, names)}
            if self.normalize:
                views[tags[1]] = figures.confusion_matrix(counts, names, normalize=True)
            for writer in tensorboards(trainer):
                for tag, image in views.items():
                    writer.add_image(tag, image, step)

        self.draw_when_due(trainer, draw)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active and self.validation:
            self._start(pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.active and self.validation:
            self.matrix.update(outputs["preds"], batch[1])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active and self.validation:
            self._draw(trainer, (metrics.VAL_CONFUSION_MATRIX, metrics.VAL_CONFUSION_MATRIX_NORMALIZED))

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active and self.test:
            self._start(pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.active and self.test:
            self.matrix.update(outputs["preds"], batch[1])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active and self.test:
            self._draw(trainer, (metrics.TEST_CONFUSION_MATRIX, metrics.TEST_CONFUSION_MATRIX_NORMALIZED))


class ShownErrors:
    """Up to `count` misclassified samples to show, spread over the true classes: a first error of each class,
    then a second, and so on. `keep(i)` copies sample i off the device; `full`: no later batch changes the choice."""

    def __init__(self, count: int):
        self.count = count
        self.wrong: dict[int, list] = {}

    @property
    def full(self) -> bool:
        return len(self.wrong) >= self.count

    def offer(self, labels: list[int], preds: list[int], keep) -> None:
        for i, (label, pred) in enumerate(zip(labels, preds, strict=True)):
            if label != pred and len(self.wrong.get(label, ())) < self.count:
                self.wrong.setdefault(label, []).append(keep(i))

    def chosen(self) -> list:
        classes = sorted(self.wrong)
        rounds = itertools.zip_longest(*(self.wrong[c] for c in classes))  # a first error of each, then a second
        shown = [(c, item) for row in rounds for c, item in zip(classes, row, strict=True) if item is not None]
        return [item for _, item in sorted(shown[: self.count], key=lambda pair: pair[0])]


class MisclassifiedImages(TensorBoardView):
    """Logs up to `count` misclassified test images as one grid (`test/misclassified`), each captioned with its
    true class and the predicted one with its probability. For image inputs (B, C, H, W) only.

    Args:
        count: images in the grid, from the first errors of the test set (one host sync per test batch
            until each slot has its class).
        columns: images a row; three keep the captions readable at TensorBoard's default card width.
    """

    needs = ("preds", "probs")
    needs_hparams = ("num_classes",)

    def __init__(self, count: int = 12, columns: int = 3):
        if count < 1 or columns < 1:
            raise ConfigError(f"MisclassifiedImages: count={count}, columns={columns}; both must be at least 1.")
        self.count = count
        self.columns = columns

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.samples = ShownErrors(self.count)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.samples.full or not self.writes(trainer):
            return
        images, labels = batch
        if not (isinstance(images, Tensor) and images.ndim == 4):
            raise ConfigError(
                "MisclassifiedImages needs image batches (B, C, H, W); remove it from trainer.callbacks for this data."
            )
        names = class_names(trainer.datamodule, pl_module.hparams.num_classes)
        preds, probs = outputs["preds"].tolist(), outputs["probs"]  # test time: a sync is fine

        def keep(i: int) -> tuple:
            p = float(probs[i].float().max())
            return images[i].float().cpu(), (names[int(labels[i])], f"{names[preds[i]]} ({p:.2f})")

        self.samples.offer(labels.tolist(), preds, keep)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        chosen = self.samples.chosen()
        if not chosen:
            return
        legend = "true class; in red, the prediction (its probability)"
        grid = figures.image_grid(
            [image for image, _ in chosen], [caption for _, caption in chosen], self.columns, legend
        )
        for writer in tensorboards(trainer):
            writer.add_image(metrics.TEST_MISCLASSIFIED, grid, trainer.global_step)
