"""Per-class views of every evaluation, for any data: a table of precision, recall and F1 per class (TEXT tab)
and a picture of every class's precision-recall curve (IMAGES tab). Counts accumulate on the device in
fixed-size torchmetrics states (no host sync per batch), summed over ranks once at the epoch's end."""

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassF1Score, MulticlassPrecision, MulticlassRecall, MulticlassStatScores

from project.engine.callbacks import figures
from project.engine.callbacks.writers import TensorBoardView, tensorboards
from project.engine.sizes import class_names
from project.tasks.classification import metrics


class BinnedCounts(Metric):
    """One-vs-rest counts per class at `thresholds` evenly spaced probabilities, as TensorBoard's PR-curve plugin
    takes them: fixed-size (T, C) states. Not torchmetrics' binned `MulticlassPrecisionRecallCurve`: its
    `bincount` under `trainer.deterministic` builds a (B·C·T, 4·C·T) table per batch (half a gigabyte for 16
    clips of 10 classes at 101 thresholds)."""

    full_state_update = False

    def __init__(self, num_classes: int, thresholds: int = 101):
        super().__init__()
        self.register_buffer("thresholds", torch.linspace(0, 1, thresholds), persistent=False)
        for name in ("tp", "fp"):  # (T, C): predicted positive at each threshold, rightly or not
            self.add_state(name, torch.zeros(thresholds, num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("positives", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: Tensor, labels: Tensor) -> None:
        target = nn.functional.one_hot(labels, probs.shape[1]).bool()  # (B, C)
        called = probs.float()[None] >= self.thresholds[:, None, None]  # (T, B, C)
        self.tp += (called & target).sum(dim=1)
        self.fp += (called & ~target).sum(dim=1)
        self.positives += target.sum(dim=0)
        self.total += len(labels)

    def compute(self) -> dict[str, Tensor]:
        fn = self.positives - self.tp
        return {"tp": self.tp, "fp": self.fp, "fn": fn, "tn": self.total - self.tp - self.fp - fn}


class PerClassMetrics(TensorBoardView):
    """Logs, after each validation epoch (`val/per_class`, `val/pr_curves`) and the test (`test/...`), a table of
    precision, recall, F1 and support per class, and a picture of each class's precision-recall curve.

    Args:
        pr_curves: also log the curves.
        thresholds: points on each curve (probabilities 0..1, evenly spaced).
        pr_curve_tab: also log each class's curve to the PR CURVES tab (`val/pr_curve/<class>`), without
            axis labels.
        min_interval: seconds of a fit between two pictures of the curves; the last one skipped is drawn
            when the fit ends. 0 draws every validation.
    """

    needs = ("preds", "probs")
    needs_hparams = ("num_classes",)

    def __init__(
        self, pr_curves: bool = True, thresholds: int = 101, pr_curve_tab: bool = False, min_interval: float = 60.0
    ):
        self.pr_curves = pr_curves
        self.thresholds = thresholds
        self.pr_curve_tab = pr_curve_tab
        self.min_interval = min_interval

    def _start(self, pl_module: L.LightningModule) -> None:
        if not self.active:
            return
        if not hasattr(self, "scores"):
            n = pl_module.hparams.num_classes
            # validate_args=False: the checks look at the values (a host sync per batch)
            common = {"num_classes": n, "average": None, "validate_args": False}
            # One collection: the four share one set of counts, updated once per batch (compute groups)
            self.scores = MetricCollection(
                {
                    "precision": MulticlassPrecision(**common),
                    "recall": MulticlassRecall(**common),
                    "f1": MulticlassF1Score(**common),
                    "stats": MulticlassStatScores(**common),  # (C, 5): tp, fp, tn, fn, support
                },
                # Named, not found: finding them compares the states, a host sync at the first batch
                compute_groups=[["precision", "recall", "f1", "stats"]],
            )
            self.curve = BinnedCounts(n, self.thresholds) if self.pr_curves or self.pr_curve_tab else None
        for metric in (self.scores, self.curve):
            if metric is not None:
                metric.to(pl_module.device).reset()

    def _update(self, outputs: dict, labels: Tensor) -> None:
        if self.active:
            self.scores.update(outputs["preds"], labels)
            if self.curve is not None:
                self.curve.update(outputs["probs"], labels)

    def _write(self, trainer: L.Trainer, table_tag: str, picture_tag: str, curve_prefix: str) -> None:
        if not self.active:
            return
        results = {k: v.cpu() for k, v in self.scores.compute().items()}  # every rank joins the sums over ranks
        curve = self.curve.compute() if self.curve is not None else None
        if trainer.sanity_checking or not self.writes(trainer):
            return
        names, step = class_names(trainer.datamodule, len(results["precision"])), trainer.global_step
        scores = (results["precision"], results["recall"], results["f1"], results["stats"][:, 4])
        for writer in tensorboards(trainer):
            writer.add_text(table_tag, per_class_table(names, *scores), step)
        if curve is None:
            return
        tp, fp, fn, tn = (curve[key].cpu().double() for key in ("tp", "fp", "fn", "tn"))  # (T, C)
        precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp(min=1), 1.0)
        recall = tp / (tp + fn).clamp(min=1)
        for c, name in enumerate(names if self.pr_curve_tab else []):
            for writer in tensorboards(trainer):
                one = (tp[:, c], fp[:, c], tn[:, c], fn[:, c], precision[:, c], recall[:, c])
                writer.add_pr_curve_raw(f"{curve_prefix}{name}", *one, step, num_thresholds=self.thresholds)

        def draw() -> None:
            image = figures.pr_curves(precision, recall, names)
            for writer in tensorboards(trainer):
                writer.add_image(picture_tag, image, step)

        if self.pr_curves:
            self.draw_when_due(trainer, draw)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update(outputs, batch[1])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, metrics.VAL_PER_CLASS, metrics.VAL_PR_CURVES, metrics.VAL_PR_CURVE)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update(outputs, batch[1])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, metrics.TEST_PER_CLASS, metrics.TEST_PR_CURVES, metrics.TEST_PR_CURVE)


def per_class_table(names: list[str], precision: Tensor, recall: Tensor, f1: Tensor, support: Tensor) -> str:
    """A markdown table, one row per class, and the macro averages beneath it."""
    lines = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for row in zip(names, precision.tolist(), recall.tolist(), f1.tolist(), support.tolist(), strict=True):
        name, p, r, f, n = row
        lines.append(f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} | {int(n)} |")
    mean = f"{precision.mean():.3f} precision, {recall.mean():.3f} recall, {f1.mean():.3f} F1"
    return "\n".join(lines) + f"\n\nMacro average (classes weighted equally): {mean}."
