"""A resumed schedule that the run has outgrown is refused before the first step, not hours in."""

import lightning as L

from project.engine.optim import check_resumed_schedule


class ScheduleFitsTheRun(L.Callback):
    """Refuses a resume whose one-cycle schedule (built with the original run's length) is shorter than this run
    (`project.engine.optim.check_resumed_schedule`), for any task."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        check_resumed_schedule(trainer)
