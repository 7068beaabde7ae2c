"""`fit --ckpt_path X` continues X's run as it was made: a config that changes what the run computes is
refused, naming the key and how to start a new run from X's weights instead, and the fit logs into X's
run folder."""

import json
import os
import re
import shlex
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_info

from project.engine.checkpoints import local_path
from project.engine.config_yaml import load_config_file
from project.engine.errors import CheckpointError, ConfigError
from project.engine.parser import cpu_precision
from project.engine.run_config import stored_run_config
from project.engine.runs import PATH_ARGUMENTS, newest_last_checkpoint, run_folder_of, run_name
from project.engine.sizes import net_defaults

# What a run computes: a resume that changes one of these would not continue the run but make another
# (a different order, split, batch or network from the same step on), so it is refused
COMPUTES = (
    "seed_everything",
    "model",
    "data",
    "trainer.accumulate_grad_batches",
    "trainer.precision",
    "trainer.gradient_clip_val",
    "trainer.gradient_clip_algorithm",
    "trainer.deterministic",
    "trainer.limit_train_batches",
    "trainer.overfit_batches",
)
# ... except how the data is read and where it lies, which do not change what is computed
READS = ("num_workers", "pin_memory", "persistent_workers", "prefetch_factor", "on_device", "download", "compile")


def continue_in(trainer: Any, folder: Path) -> None:
    """Make a resumed fit's parsed `trainer` config log into the run folder it resumes (its TensorBoard or CSV
    logger's, else its default_root_dir), unless the command line names a version; MLflow is left as it is."""
    logger = trainer.get("logger")
    if logger is None or logger is False:
        trainer.default_root_dir = str(folder)
        return
    init = logger.get("init_args") if hasattr(logger, "get") else None
    class_path = str(logger.get("class_path") or "") if hasattr(logger, "get") else ""
    if init is None or not class_path.endswith(("TensorBoardLogger", "CSVLogger")) or init.get("version") is not None:
        return
    init.save_dir, init.name, init.version = str(folder.parent.parent), folder.parent.name, folder.name


def continue_run(config: Any) -> None:
    """`fit --ckpt_path X`: refuse a config that changes what X's run computes (COMPUTES), and log into
    X's run folder. The run's config is its folder's config.yaml, else the one stored in X."""
    local = local_path(config.ckpt_path)
    if local is None or not local.is_file():
        return  # reported for what it is when Lightning loads it
    folder = run_folder_of(local)
    made = load_config_file(folder / "config.yaml") if folder else stored_run_config(local)
    if made:
        refuse_changes(made, config, local, folder)
    if folder is not None and _same_logger(made or {}, config):
        continue_in(config.trainer, folder)
        # Lightning warns of any non-empty checkpoint folder at the start of a fit; a resume's holds its run
        warnings.filterwarnings(
            "ignore",
            rf"Checkpoint directory .*{re.escape(os.sep + folder.name + os.sep)}checkpoints exists and is not empty",
        )


def _same_logger(made: dict[str, Any], config: Any) -> bool:
    """Whether the resumed fit logs where its run did (not elsewhere by the user's choice)."""
    was = _leaves({"logger": (made.get("trainer") or {}).get("logger")})
    now = _leaves({"logger": config.trainer.as_dict().get("logger")})
    keys = ("logger", "logger.class_path", "logger.init_args.save_dir", "logger.init_args.name")
    return all(_same(was.get(k), now.get(k)) for k in keys)


def refuse_changes(made: dict[str, Any], config: Any, ckpt: Path, folder: Path | None) -> None:
    now_tree = config.as_dict()
    was, now = _leaves(_with_net_defaults(made, now_tree)), _leaves(now_tree)
    if cpu_precision(config.trainer) is not None:
        now["trainer.precision"] = cpu_precision(config.trainer)
    for key in sorted(was.keys() | now.keys()):
        if not key.startswith(COMPUTES) or key.rsplit(".", 1)[-1] in (*READS, *PATH_ARGUMENTS):
            continue
        if key.startswith(COMPUTES) and _same(was.get(key), now.get(key)):
            continue
        shown = key.replace(".init_args.", ".")
        given = shlex.quote(f"--{shown}={_shown(now.get(key))}")
        recipe = f"--config {folder / 'config.yaml'}" if folder else "--config <the run's recipe>"
        raise ConfigError(
            f"{given}: the run of {ckpt} was made with {shown}={_shown(was.get(key))}, and a resume continues "
            f"that run as it was made. Resume without it, or start a new run from this checkpoint's weights: "
            f"python -m project.cli fit {recipe} {given} "
            "--trainer.callbacks+=project.engine.callbacks.StartFromWeights "
            f"--trainer.callbacks.checkpoint={shlex.quote(str(ckpt))}"
        )


def _with_net_defaults(made: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """`made` with its model's nets' unset arguments at their defaults, as a parsed config has them (config.yaml
    records only those given). Only for a class the current config names too: it is imported already, and nothing
    of a run folder's config is imported here."""
    model = made.get("model")
    made_args = model.get("init_args") if isinstance(model, dict) else None
    now_args = ((now.get("model") or {}).get("init_args")) or {}
    if not isinstance(made_args, dict):
        return made
    filled_args = dict(made_args)
    for name, net in made_args.items():
        class_path = net.get("class_path") if isinstance(net, dict) else None
        if class_path and class_path == (now_args.get(name) or {}).get("class_path"):
            filled_args[name] = {**net, "init_args": {**net_defaults(class_path), **(net.get("init_args") or {})}}
    return {**made, "model": {**model, "init_args": filled_args}}


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


def _normal(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _same(a: Any, b: Any) -> bool:
    return _normal(a) == _normal(b)


def _shown(value: Any) -> str:
    """A value as the command line takes it: YAML's flow style without spaces ([8,16,16], null)."""
    return json.dumps(_normal(value), separators=(",", ":")) if not isinstance(value, str) else value


def last_of_named_run(config: Any, recipe_run_name: str | None) -> str:
    """`fit --ckpt_path last`: the newest last.ckpt of runs with this logger's name, resumed in its folder."""
    logger = config.trainer.logger
    init = logger.init_args if logger not in (None, False, True) else None
    save_dir = Path(init.save_dir) if init is not None and init.get("save_dir") else Path("logs")
    name = (init.get("name") if init is not None else None) or run_name(config, recipe_run_name)
    found = newest_last_checkpoint(save_dir / name)
    if found is None:
        raise CheckpointError(
            f"--ckpt_path last: no run named {name} under {save_dir} has a last.ckpt to resume. Start one "
            "with `fit` (without --ckpt_path), or name a checkpoint file."
        )
    if init is not None and "version" in init:
        init.version = found.parent.parent.name  # log into the resumed run's own folder
    rank_zero_info(f"Resuming {found}")
    return str(found)
