"""Lightning's learning-rate and batch-size finders from the command line (`--preset lr_find`,
`--preset batch_size`), reporting what they found as the override to type.

Both end the fit once they have an answer: training on with it, the run's config.yaml would not state the
value it trained with, so its checkpoints could not be resumed or evaluated as recorded.
"""

import inspect
import math

import lightning as L
from lightning.pytorch import callbacks
from lightning.pytorch.utilities import rank_zero_warn

from project.engine.callbacks import figures
from project.engine.callbacks.writers import tensorboards

LR_FINDER = "tuner/lr_finder"  # the range test's plot (IMAGES)


def report(trainer: L.Trainer, line: str) -> None:
    if trainer.is_global_zero:
        print(line, flush=True)


def learning_rate_override(pl_module: L.LightningModule, lr: float) -> str:
    """The override that makes `lr` the run's learning rate: a one-cycle schedule's `max_lr` (which sets the
    optimizer's lr at every step), else the optimizer's `lr`."""
    scheduler = getattr(pl_module, "scheduler", None)
    if scheduler is not None:
        given = getattr(scheduler, "keywords", {})
        try:
            takes_max_lr = "max_lr" in given or "max_lr" in inspect.signature(scheduler).parameters
        except (TypeError, ValueError):
            takes_max_lr = False
        if takes_max_lr:
            return f"--model.scheduler.init_args.max_lr {lr:.3g}"
    return f"--model.optimizer.init_args.lr {lr:.3g}"


class LearningRateFinder(callbacks.LearningRateFinder):
    """Lightning's learning-rate range test at the start of `fit`: the loss-against-lr plot goes to TensorBoard
    (`tuner/lr_finder`), the suggestion and its override are printed (a one-cycle schedule's peak, `max_lr`),
    and the fit ends with the weights as they were. Arguments as Lightning's `LearningRateFinder`."""

    def __init__(
        self,
        min_lr: float = 1e-6,
        max_lr: float = 1.0,
        num_training_steps: int = 100,
        mode: str = "exponential",
        early_stop_threshold: float | None = 4.0,
    ):
        # update_attr=False: the Classifier keeps its lr in the optimizer's config, not in an `lr`
        # attribute; the fit ends anyway and the user reruns with the override
        super().__init__(min_lr, max_lr, num_training_steps, mode, early_stop_threshold, update_attr=False)
        self.suggestion: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.lr_find(trainer, pl_module)
        trainer.should_stop = True
        found = self.optimal_lr
        self.suggestion = found.suggestion() if found is not None else None
        if self.suggestion is None:
            rank_zero_warn(
                "LearningRateFinder: no suggestion, the loss did not fall over the range tried (too few steps, or "
                "a range that misses the useful rates). Raise num_training_steps or widen min_lr/max_lr."
            )
            return
        writers = tensorboards(trainer)
        if writers:
            fig = figures.figure(6.0, 4.0)
            found.plot(suggest=True, ax=fig.add_subplot())
            fig.axes[0].set_title(f"Learning-rate range test: suggested lr {self.suggestion:.3g}")
            image = figures.to_image(fig)
            for writer in writers:
                writer.add_image(LR_FINDER, image, trainer.global_step)
        report(
            trainer,
            f"Suggested learning rate: {self.suggestion:.3g}. Train with it by adding: "
            f"{learning_rate_override(pl_module, self.suggestion)}",
        )


class BatchSizeFinder(callbacks.BatchSizeFinder):
    """Lightning's batch-size finder at the start of `fit`: prints the largest batch size that ran and its
    override, and ends the fit. It needs a data module that reads `batch_size` when it builds its loaders.
    On a CPU nothing runs out of memory: it stops at `max_val` or at the training set's size."""

    def __init__(
        self,
        mode: str = "power",
        steps_per_trial: int = 3,
        init_val: int = 2,
        max_trials: int = 25,
        max_val: int = 8192,
        margin: float = 0.05,
    ):
        self.settings = {"mode": mode, "steps_per_trial": steps_per_trial, "init_val": init_val}
        self.settings |= {"max_trials": max_trials, "max_val": max_val, "margin": margin}
        super().__init__(**self.settings)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning tries the doubled size before it compares it with the data set's: a batch larger
        # than the training set has no full batch (the loaders drop the last, short one) and the data
        # module refuses it. So the doubling stops at the last size that fits in the training set.
        train_set = getattr(trainer.datamodule, "train_set", None)
        if train_set is not None and hasattr(train_set, "__len__") and len(train_set) >= self.settings["init_val"]:
            doublings = math.floor(math.log2(len(train_set) / self.settings["init_val"]))
            capped = {"max_trials": min(self.settings["max_trials"], doublings + 1)}
            super().__init__(**self.settings | capped | {"max_val": min(self.settings["max_val"], len(train_set))})
        # The trials' steps would also step the schedule, and a one-cycle schedule refuses to go past
        # the run's length; the trials need no schedule, and the fit ends after them.
        schedules, trainer.strategy.lr_scheduler_configs = trainer.strategy.lr_scheduler_configs, []
        try:
            self.scale_batch_size(trainer, pl_module)
        finally:
            trainer.strategy.lr_scheduler_configs = schedules
        trainer.should_stop = True
        report(
            trainer,
            f"Largest batch size that fits: {self.optimal_batch_size}. Train with it by adding: "
            f"--data.batch_size {self.optimal_batch_size} (a schedule tuned for another batch size may want "
            "its learning rate scaled with it).",
        )
