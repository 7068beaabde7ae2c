"""What a person needs when a fit ends: the best checkpoint and its score, what the loggers wrote where, and the
commands that come next; `test` too says where it logged. Also fills TensorBoard's HPARAMS tab."""

import shlex
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from project.engine.best import best_name, monitored_checkpoint


class RunSummary(L.Callback):
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._report(trainer, pl_module)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            print("\n".join(["Test", *where_logged(trainer)]))

    def _report(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        best = monitored_checkpoint(trainer)
        # the run's best monitored value (val/acc -> val/best_acc), beside the hyperparameters in HPARAMS
        final = (
            {best_name(best.monitor): float(best.best_model_score)}
            if best and best.best_model_score is not None
            else {}
        )
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                # keys of Lightning's own bookkeeping (`_instantiator`) are no hyperparameter: no column for them
                shown = {k: v for k, v in pl_module.hparams.items() if not k.startswith("_")}
                logger.log_hyperparams(shown, final)
        done = trainer.fit_loop.epoch_progress.current.completed
        lines = ["Run summary", f"  Trained:      {done} epoch{'s' * (done != 1)}, {trainer.global_step} steps"]
        if best is not None and best.best_model_path:
            score = f"{best.best_model_score:.4f}" if best.best_model_score is not None else "n/a"
            lines.append(f"  Best {best.monitor}: {score}")
            lines.append(f"  Checkpoint:   {best.best_model_path}")
            lines.append(f"  Test it:      {test_command(best.best_model_path)}")
            lines.append(f"  Predict:      {test_command(best.best_model_path, 'predict')}")
        lines += where_logged(trainer)
        profile = profile_file(trainer, "fit")
        if profile is not None:
            lines.append(f"  Profile:      {profile} (written when the command ends)")
        # Plain lines rather than a box: paths and commands must survive copy and paste unwrapped
        print("\n".join(lines))


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
        return f"TensorBoard:  tensorboard --logdir {logger.log_dir}"
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
