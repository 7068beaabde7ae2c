"""A run's folder: the config a fit saved there is its record, and later commands on the run use it.

A fit writes `config.yaml` beside its checkpoints, whatever the logger (or none). `validate`/`test`/
`predict` given just a checkpoint read that config back (project/recipes.py), and commands that log
into the same folder save their own config next to it instead of being refused (`SaveRunConfig`).
"""

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.trainer.states import TrainerFn

from project.internals import hpc_resume_path, logger_version_unset, set_logger_version


class SaveRunConfig(SaveConfigCallback):
    """Lightning's config saving, for commands that log into an existing run's folder.

    A fit writes `config.yaml`, the run's record, which evaluations read back (project/recipes.py).
    A resume, or a validate/test/predict whose logger names the same version (e.g.
    `--trainer.logger.init_args.version baseline`), writes `resume_config.yaml` or `<command>_config.yaml`
    beside it; Lightning's own callback would stop such a command. A new fit into an existing run's
    folder is still refused: it would mix two runs' checkpoints and curves.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        command = TrainerFn(stage).value  # Lightning passes the enum: "test", not "TrainerFn.TESTING"
        # trainer.ckpt_path is only set after this hook: a resume is a --ckpt_path, or a SLURM requeue's checkpoint
        requeued = SLURMEnvironment.detect() and hpc_resume_path(trainer) is not None
        continuing = command != "fit" or self.config.get("ckpt_path") is not None or requeued
        folder = trainer.strategy.broadcast(str(run_folder(trainer)) if trainer.is_global_zero else None)
        path = os.path.join(folder, self.config_filename)
        taken = trainer.strategy.broadcast(trainer.is_global_zero and os.path.isfile(path))
        if taken and continuing:
            self.config_filename = "resume_config.yaml" if command == "fit" else f"{command}_config.yaml"
            path = os.path.join(folder, self.config_filename)  # a repeated evaluation replaces its own record
        elif taken:
            raise RuntimeError(
                f"{path} exists: a run already logs into {folder}. Name another run (trainer.logger's name or "
                "version), resume this one with --ckpt_path, or delete the folder."
            )
        if trainer.is_global_zero:
            os.makedirs(folder, exist_ok=True)
            config = self.config.clone()
            if "ckpt_path" in config and config["ckpt_path"] is None:
                # A record passed back later as `--config` after `--ckpt_path X` would reset X to null and
                # evaluate untrained weights without a word; a run started from scratch records nothing here.
                del config["ckpt_path"]
            # The config was validated when it was parsed; validating it again took two thirds of the
            # write (0.2 s of 0.3 s on a 2-core CPU), time every fit would spend before its first step
            self.parser.save(
                config, path, skip_none=False, overwrite=True, multifile=self.multifile, skip_validation=True
            )
        self.already_saved = trainer.strategy.broadcast(True)


def claim_run_folders(trainer: L.Trainer) -> None:
    """Give each logger that picks its own `version_N` (TensorBoard, CSV) the first free one, claimed by
    creating its folder, which fails if another process created it first: two runs started at the same
    moment never share a folder. Lightning's loggers pick the version by listing the folders, which
    two runs can do at the same instant. Rank 0 claims; the others never write a run's files."""
    if trainer.global_rank != 0:
        return
    for logger in trainer.loggers:
        root = getattr(logger, "root_dir", None)
        if root is None or "://" in str(root) or not logger_version_unset(logger):
            continue
        os.makedirs(root, exist_ok=True)
        taken = [n.split("_", 1)[1] for n in os.listdir(root) if n.startswith("version_")]
        version = max((int(v) for v in taken if v.isdigit()), default=-1) + 1
        while True:
            try:
                os.mkdir(os.path.join(root, f"version_{version}"))
                break
            except FileExistsError:
                version += 1
        set_logger_version(logger, version)


def run_folder(trainer: L.Trainer) -> Path:
    """The run's folder, the parent of its checkpoints/ for every logger (as ModelCheckpoint places them):
    save_dir/name/version for TensorBoard and CSV, mlruns/<experiment>/<run> for MLflow, the trainer's
    default_root_dir without a logger."""
    if not trainer.loggers:
        return Path(trainer.default_root_dir)
    logger = trainer.loggers[0]
    save_dir = logger.save_dir or trainer.default_root_dir
    version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
    return Path(save_dir) / str(logger.name) / version


def newest_last_checkpoint(runs: Path) -> Path | None:
    """The most recently written `<run>/checkpoints/last.ckpt` among the runs in `runs`, or None."""
    found = [p for p in runs.glob("*/checkpoints/last.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def next_version_folder(runs: Path) -> Path:
    """`runs/version_N` with N one above the highest there, as TensorBoard and CSV loggers number runs."""
    numbers = [int(p.name.split("_", 1)[1]) for p in runs.glob("version_*") if p.name.split("_", 1)[1].isdigit()]
    return runs / f"version_{max(numbers, default=-1) + 1}"
