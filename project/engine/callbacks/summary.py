"""What a person needs when a fit ends: the best checkpoint and its score, what the loggers wrote where, and the
commands that come next; `test` too says where it logged. Also fills TensorBoard's HPARAMS tab."""

import shlex
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn

from project.engine.best import best_name, monitored_checkpoint
from project.engine.callbacks.hparams import log_best, shown_hparams
from project.engine.runs import tensorboard_folder


class RunSummary(L.Callback):
    def __init__(self) -> None:
        self._best_step: int | None = None  # the step of the validation that gave the best score
        self._seen: float | None = None  # the best score when last looked at
        self._validated_at = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        best = monitored_checkpoint(trainer)
        self._seen = _score(best)  # a resumed run's best so far: its step is not known
        self._best_step = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._note_best(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            # the step Lightning logs this validation's metrics at: its loop validates before it counts the
            # batch that just stepped, so one below the global step
            self._validated_at = max(trainer.global_step - 1, 0)
        if trainer.is_global_zero and trainer.state.fn == TrainerFn.VALIDATING:  # the `validate` command
            print("\n".join(["Validation", *evaluated(trainer, "val"), *where_logged(trainer)]))

    def _note_best(self, trainer: L.Trainer) -> None:
        """The checkpoint callback takes the new best after this callback's `on_validation_end`: looked at here,
        at the next validation's start and at the fit's end."""
        score = _score(monitored_checkpoint(trainer))
        if score is not None and score != self._seen:
            self._seen, self._best_step = score, self._validated_at

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._note_best(trainer)
        if trainer.is_global_zero:
            self._report(trainer, pl_module)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            print("\n".join(["Test", *evaluated(trainer, "test"), *where_logged(trainer)]))

    def _report(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        best = monitored_checkpoint(trainer)
        # the run's best monitored value (val/acc -> val/best_acc), beside the hyperparameters in HPARAMS
        final = {best_name(best.monitor): _score(best)} if best is not None and _score(best) is not None else {}
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger) and final:
                # at the best validation's step, else (a resumed run whose best came before) the last one's
                step = self._best_step if self._best_step is not None else trainer.global_step
                log_best(logger, shown_hparams(trainer, pl_module), final, step)
        done = trainer.fit_loop.epoch_progress.current.completed
        lines = ["Run summary", f"  Trained:      {done} epoch{'s' * (done != 1)}, {trainer.global_step} steps"]
        if best is not None and best.best_model_path:
            score = f"{best.best_model_score:.4f}" if best.best_model_score is not None else "n/a"
            lines.append(f"  Best {best.monitor}: {score}")
            lines.append(f"  Checkpoint:   {best.best_model_path}")
            checkpoint = best.best_model_path
        elif (checkpoint := latest_checkpoint(trainer)) is not None:
            why = f"no validation ran, so none is best by {best.monitor}" if best is not None else "the latest"
            lines.append(f"  Checkpoint:   {checkpoint} ({why})")
        if checkpoint:
            lines.append(f"  Test it:      {test_command(checkpoint)}")
            lines.append(f"  Predict:      {test_command(checkpoint, 'predict')}")
        lines += where_logged(trainer)
        profile = profile_file(trainer, "fit")
        if profile is not None:
            lines.append(f"  Profile:      {profile} (written when the command ends)")
        # Plain lines rather than a box: paths and commands must survive copy and paste unwrapped
        print("\n".join(lines))


def _score(best: ModelCheckpoint | None) -> float | None:
    return float(best.best_model_score) if best is not None and best.best_model_score is not None else None


def latest_checkpoint(trainer: L.Trainer) -> str | None:
    """The file a monitor-less checkpoint callback (the CLI's `last_checkpoint`) saved last, or None."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor is None:
            path = callback.last_model_path or callback.best_model_path
            if path and Path(path).is_file():
                return path
    return None


def evaluated(trainer: L.Trainer, prefix: str) -> list[str]:
    """An evaluation's metrics (those under `prefix/`), a line each: the one place they are printed (the CLI turns
    Lightning's table off), so each appears once."""
    shown = sorted((k, v) for k, v in trainer.callback_metrics.items() if k.startswith(f"{prefix}/"))
    column = max((len(k) for k, _ in shown), default=0)
    return [f"  {k + ':':<{max(column + 1, 13)}} {float(v):.4f}" for k, v in shown]


def where_logged(trainer: L.Trainer) -> list[str]:
    """Indented lines saying where the loggers wrote and how to look."""
    if trainer.fast_dev_run:  # its loggers are stand-ins that write nothing
        return ["  fast_dev_run: a check of the code; nothing was logged or saved"]
    if not trainer.loggers:
        return [f"  Logged:       nothing (no logger); files in {trainer.default_root_dir}"]
    return [f"  {line}" for logger in trainer.loggers if (line := logged_to(logger))]


def logged_to(logger: Logger) -> str | None:
    """One line saying what `logger` wrote and how to look at it."""
    if isinstance(logger, TensorBoardLogger):
        return f"TensorBoard:  tensorboard --logdir {tensorboard_folder(logger)}"
    if isinstance(logger, CSVLogger):
        return f"Metrics:      {logger.log_dir}/metrics.csv"
    if type(logger).__name__ == "MLFlowLogger":  # mlflow is optional: no import
        where = f"--backend-store-uri file:{logger.save_dir} " if logger.save_dir else ""
        return f"MLflow:       mlflow ui {where}(experiment {logger.name}, run {logger.version})"
    return f"{type(logger).__name__}: run {logger.version}"


def profile_file(trainer: L.Trainer, stage: str) -> str | None:
    """Where a profiler given a `filename` writes its summary for `stage` (Lightning: `<stage>-<filename>.txt`
    in its dirpath, with `-<local rank>` under several processes), or None."""
    profiler = trainer.profiler
    filename, dirpath = getattr(profiler, "filename", None), getattr(profiler, "dirpath", None)
    if not filename or dirpath is None:
        return None
    rank = f"-{trainer.local_rank}" if trainer.world_size > 1 else ""
    return str(Path(dirpath) / f"{stage}-{filename}{rank}.txt")


def test_command(checkpoint: str, command: str = "test") -> str:
    """`python -m project.cli test` (or `predict`) for a checkpoint; the CLI finds the run's config.yaml beside it."""
    return shlex.join(["python", "-m", "project.cli", command, "--ckpt_path", checkpoint])
