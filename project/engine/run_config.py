"""A run's config is its record: a fit saves it beside its checkpoints (config.yaml) and inside them, and
later commands read it back (`implicit_config`, `resume_config`), checked against project/engine/trust.py."""

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.trainer.states import TrainerFn

from project.engine.checkpoints import check_checkpoint_path, local_path
from project.engine.config_yaml import load_config_file, load_config_text
from project.engine.errors import CheckpointError, ConfigError
from project.engine.internals import checkpoint_hparams_config, hpc_resume_path
from project.engine.runs import record_folder, run_folder_of
from project.engine.trust import check_trusted

RUN_CONFIG_KEY = "run_config"  # a checkpoint's copy of its run's config.yaml (`SaveRunConfig`)


class IncompleteCheckpointError(CheckpointError):
    """A checkpoint that does not say how to rebuild its run."""


def implicit_config(ckpt: str) -> str | None:
    """The run's config for a checkpoint, as YAML text: the run folder's config.yaml, else the
    checkpoint's own hyperparameters. Checked against TRUSTED_PACKAGES."""
    local = local_path(ckpt)
    if local is None:  # a remote checkpoint: read its hyperparameters only when it is local
        return None
    run_config = local.parent.parent / "config.yaml"
    config, sources = {}, []
    if local.parent.name == "checkpoints" and run_config.is_file():
        config = load_config_file(run_config) or {}
        if not isinstance(config, dict):
            raise ConfigError(f"{run_config} holds a {type(config).__name__}, not a run's config: pass --config RECIPE")
        sources.append(str(run_config))
    elif local.is_file() and (stored := stored_run_config(local)) is not None:
        # a checkpoint copied away from its run folder brings its run's config: run name, views, trainer
        config = stored
        sources.append(f"the run config stored in {local}")
    if local.is_file():  # the network and data the checkpoint was trained with outrank the run's config
        config.update(checkpoint_config(local, required=not sources))
        sources.append(f"the hyperparameters stored in {local}")
    if not sources:
        return None
    source = " and ".join(sources)
    print(f"Rebuilding the run from {source} (pass --config to use another)")
    check_trusted(config, source)
    return yaml.safe_dump(config)


def resume_config(ckpt: str) -> str | None:
    """`fit --ckpt_path X`'s config, as YAML text: the whole config of X's run (its folder's config.yaml, else
    the one stored in X); None for a checkpoint that has neither."""
    local = local_path(ckpt)
    if local is None or not local.is_file():
        return None
    folder = run_folder_of(local)
    if folder is not None:
        config, source = load_config_file(folder / "config.yaml") or {}, str(folder / "config.yaml")
    else:
        config, source = stored_run_config(local), f"the run config stored in {local}"
        if config is None:
            return None
    check_trusted(config, source)
    print(f"Resuming the run of {source} (pass --config to train another config from this checkpoint)")
    return yaml.safe_dump(config)


def stored_run_config(ckpt: Path) -> dict[str, Any] | None:
    """The whole run config a fit stored in its checkpoints (`SaveRunConfig`), or None."""
    check_checkpoint_path(ckpt)
    text = torch.load(ckpt, map_location="cpu", weights_only=True).get(RUN_CONFIG_KEY)
    return (load_config_text(text, f"the run config stored in {ckpt}") or None) if isinstance(text, str) else None


def checkpoint_config(path: Path, required: bool = True) -> dict[str, Any]:
    """`model` and `data` config sections from a checkpoint's stored hyperparameters; with `required`,
    a checkpoint lacking either is refused."""
    check_checkpoint_path(path)  # safe, and a Lightning checkpoint at all
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    missing = [k for k in ("hyper_parameters", "datamodule_hyper_parameters") if not ckpt.get(k)]
    if missing and required:
        raise IncompleteCheckpointError(
            f"{path} does not say how to rebuild its run: it has no {' and no '.join(missing)}. Pass the recipe "
            "it was trained with: --config <recipe.yaml> (plus any keys you changed for that run)."
        )
    sections = {"model": "hyper_parameters", "data": "datamodule_hyper_parameters"}
    return {key: checkpoint_hparams_config(ckpt[stored]) for key, stored in sections.items() if ckpt.get(stored)}


class SaveRunConfig(SaveConfigCallback):
    """Lightning's config saving, also for commands that log into an existing run's folder: an evaluation logged
    into a sub-run of the run (`test/`, project/engine/runs.py) writes its `config.yaml` there; a resume, or an
    evaluation whose logger names the same version, writes `resume_config.yaml` or `<command>_config.yaml`
    beside the run's `config.yaml`, where Lightning's own callback would stop. A new fit into an existing
    run's folder is still refused: it would mix two runs' checkpoints and curves."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        command = TrainerFn(stage).value  # Lightning passes the enum: "test", not "TrainerFn.TESTING"
        # trainer.ckpt_path is only set after this hook: a resume is a --ckpt_path, or a SLURM requeue's checkpoint
        requeued = SLURMEnvironment.detect() and hpc_resume_path(trainer) is not None
        continuing = command != "fit" or self.config.get("ckpt_path") is not None or requeued
        folder = trainer.strategy.broadcast(str(record_folder(trainer, command)) if trainer.is_global_zero else None)
        path = os.path.join(folder, self.config_filename)
        taken = trainer.strategy.broadcast(trainer.is_global_zero and os.path.isfile(path))
        if taken and continuing:
            self.config_filename = "resume_config.yaml" if command == "fit" else f"{command}_config.yaml"
            path = os.path.join(folder, self.config_filename)  # a repeated evaluation replaces its own record
        elif taken:
            raise ConfigError(
                f"{path} exists: a run already logs into {folder}. Name another run (trainer.logger's name or "
                "version), resume this one with --ckpt_path, or delete the folder."
            )
        config = self.config.clone()
        if "ckpt_path" in config and config["ckpt_path"] is None:
            # A record passed back later as `--config` after `--ckpt_path X` would reset X to null and
            # evaluate untrained weights without a word; a run started from scratch records nothing here.
            del config["ckpt_path"]
        # The config was validated when it was parsed; validating it again took two thirds of the
        # write (0.2 s of 0.3 s on a 2-core CPU), time every fit would spend before its first step
        text = self.parser.dump(config, skip_unset=False, skip_validation=True)
        if trainer.is_global_zero:
            os.makedirs(folder, exist_ok=True)
            if self.multifile:  # jsonargparse writes each config file the parse read beside it
                self.parser.save(config, path, skip_unset=False, overwrite=True, multifile=True, skip_validation=True)
            else:
                Path(path).write_text(text)
        if command == "fit":
            self._run_config = text  # the checkpoints' own copy of config.yaml
        self.already_saved = trainer.strategy.broadcast(True)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # A checkpoint copied away from its folder still rebuilds its whole run (`implicit_config`)
        if getattr(self, "_run_config", None):
            checkpoint[RUN_CONFIG_KEY] = self._run_config
