"""A run's folder: the config a fit saved there is its record, and later commands on the run use it.

A fit writes `config.yaml` beside its checkpoints and TensorBoard events. `validate`/`test`/`predict`
given just a checkpoint read that config back (`with_run_config`), and commands that log into the same
folder save their own config next to it instead of being refused (`SaveRunConfig`).
"""

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.trainer.states import TrainerFn

from project.internals import hpc_resume_path, logger_version_unset, set_logger_version

EVALUATION_COMMANDS = ("validate", "test", "predict")


class SaveRunConfig(SaveConfigCallback):
    """Lightning's config saving, for commands that log into an existing run's folder.

    A fit writes `config.yaml`, the run's record, which evaluations read back (`with_run_config`).
    A resume, or a validate/test/predict whose logger names the same version (e.g.
    `--trainer.logger.init_args.version baseline`), writes `resume_config.yaml` or `<command>_config.yaml`
    beside it; Lightning's own callback would stop such a command. A new fit into an existing run's
    folder is still refused: it would mix two runs' checkpoints and curves.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        command = TrainerFn(stage).value  # Lightning passes the enum: "test", not "TrainerFn.TESTING"
        # trainer.ckpt_path is only set after this hook: a resume is a --ckpt_path, or a SLURM requeue's checkpoint
        requeued = SLURMEnvironment.detect() and hpc_resume_path(trainer) is not None
        continuing = command != "fit" or self.config.get("ckpt_path") is not None or requeued
        if continuing and not self.already_saved:
            log_dir = trainer.log_dir  # the same on every rank (broadcast)
            taken = trainer.is_global_zero and os.path.isfile(os.path.join(log_dir, self.config_filename))
            if trainer.strategy.broadcast(taken):
                self.config_filename = "resume_config.yaml" if command == "fit" else f"{command}_config.yaml"
                self.overwrite = True  # a repeated evaluation replaces its own record, never the fit's
        super().setup(trainer, pl_module, stage)


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


def with_run_config(args: list[str]) -> list[str]:
    """validate/test/predict given `--ckpt_path` but no `--config` use the config.yaml that the fit
    saved in the checkpoint's run folder, so the checkpoint alone is enough to evaluate it.

    This looks at the raw arguments because the run's config must be the first config file, loaded
    before any command-line key, and LightningCLI reads its default config files when it builds the
    parser, before any value is parsed; there is no parser hook to add a config file found from a
    parsed value.
    """
    if (
        not args
        or args[0] not in EVALUATION_COMMANDS
        or any(a in ("-c", "--config") or a.startswith("--config=") for a in args)
    ):
        return args
    ckpt = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--ckpt_path"), None)
    ckpt = ckpt or next((a.split("=", 1)[1] for a in args if a.startswith("--ckpt_path=")), None)
    run_config = Path(ckpt).parent.parent / "config.yaml" if ckpt else None
    if run_config is None or not run_config.is_file():
        return args
    print(f"Using the run's config {run_config} (pass --config to use another)")
    return [args[0], "--config", str(run_config), *args[1:]]
