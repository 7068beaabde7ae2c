"""`fit --ckpt_path X` continues X's run as it was made: a config that changes what the run computes is
refused, naming the key and how to start a new run from X's weights instead, and the fit logs into X's
run folder."""

import json
import os
import re
import shlex
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info

from project.engine.checkpoints import local_path
from project.engine.config_yaml import load_run_config, read_config_text
from project.engine.errors import CheckpointError, ConfigError
from project.engine.fingerprint import FINGERPRINT_KEY, data_arguments, difference
from project.engine.parser import cpu_precision
from project.engine.run_config import RUN_CONFIG_FILE_KEY, stored_run_config
from project.engine.runs import PATH_ARGUMENTS, newest_last_checkpoint, run_folder_of, run_name
from project.engine.sizes import net_defaults
from project.engine.trust import resolve

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
READS = (
    "num_workers",
    "pin_memory",
    "persistent_workers",
    "prefetch_factor",
    "on_device",
    "download",
    "compile",
    "cache_dir",  # where LitData keeps downloaded chunks
    "storage_options",  # how object storage is reached (endpoint, credentials)
)
# Callbacks that only watch a fit (save, log, draw, time, predict): a resume may add, drop or change them. Any
# other callback may act on what the run computes, so it must be as the run was made. A callback class of
# its own says it only watches with a class attribute `observes_only = True` (the TensorBoard views do).
OBSERVERS = (
    "lightning.pytorch.callbacks.Checkpoint",
    "lightning.pytorch.callbacks.LearningRateMonitor",
    "lightning.pytorch.callbacks.DeviceStatsMonitor",
    "lightning.pytorch.callbacks.ModelSummary",
    "lightning.pytorch.callbacks.ProgressBar",
    "lightning.pytorch.callbacks.BasePredictionWriter",
    "lightning.pytorch.callbacks.ThroughputMonitor",
    "lightning.pytorch.callbacks.Timer",
)


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
    """`fit --ckpt_path X`: refuse, in one line, a resume that would not continue X's run as it was made: a
    changed key of COMPUTES, a callback that acts on the training added or left out, X's run folder's config.yaml
    edited since, a stop already reached, a one-cycle schedule cut short, other data than the run's. Then log
    into X's run folder. The run's config is its folder's config.yaml, else the one stored in X."""
    local = local_path(config.ckpt_path)
    if local is None or not local.is_file():
        return  # reported for what it is when Lightning loads it
    folder = run_folder_of(local)
    saved = torch.load(local, map_location="cpu", weights_only=True, mmap=True)
    record = folder / "config.yaml" if folder else None
    made = load_run_config(read_config_text(record), str(record)) if record else stored_run_config(local)
    if folder is not None:
        refuse_edited_record(folder, made, saved, local)
    if made:
        refuse_changes(made, config, local, folder)
        refuse_callback_changes(made, config, local, folder)
        refuse_schedule_change(made, config, saved, local, folder)
    refuse_reached_stop(config, saved, local, folder, made)
    refuse_other_data(config, saved, local, folder, made)
    if folder is not None and _same_logger(made or {}, config):
        continue_in(config.trainer, folder)
    if folder is not None:
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


def _refuse(
    what: str,
    why: str,
    ckpt: Path,
    folder: Path | None,
    made: dict[str, Any] | None,
    given: str = "",
    fix: str = "resume without it",
) -> None:
    """The one line a refused resume ends in: what was given, why a resume cannot take it, and the command that
    starts a new run from the checkpoint's weights instead (a new run folder: the run's own holds that run)."""
    recipe = f"--config {shlex.quote(str(folder / 'config.yaml'))}" if folder else "--config <the run's recipe>"
    command = " ".join(
        part
        for part in (
            f"python -m project.cli fit {recipe}",
            _new_run_folder(made or {}),
            given,
            "--trainer.callbacks+=project.engine.callbacks.StartFromWeights",
            f"--trainer.callbacks.checkpoint={shlex.quote(str(ckpt))}",
        )
        if part
    )
    raise ConfigError(
        f"{what}: {why}. A resume continues a run as it was made: {fix}, or start a new run from this "
        f"checkpoint's weights: {command}"
    )


def _new_run_folder(made: dict[str, Any]) -> str:
    """The option that makes a run's own config start a new run folder rather than name the run's."""
    logger = (made.get("trainer") or {}).get("logger")
    if isinstance(logger, dict) and isinstance(logger.get("init_args"), dict) and logger["init_args"].get("version"):
        return "--trainer.logger.init_args.version=null"
    if (made.get("trainer") or {}).get("default_root_dir"):
        return "--trainer.default_root_dir=null"
    return ""


def refuse_changes(made: dict[str, Any], config: Any, ckpt: Path, folder: Path | None) -> None:
    now_tree = config.as_dict()
    was, now = _leaves(_with_net_defaults(made, now_tree)), _leaves(now_tree)
    if cpu_precision(config.trainer) is not None:
        now["trainer.precision"] = cpu_precision(config.trainer)
    for key in sorted(was.keys() | now.keys()):
        read = key.rsplit(".", 1)[-1] in PATH_ARGUMENTS or not set(key.split(".")).isdisjoint(READS)
        if not key.startswith(COMPUTES) or read:
            continue
        if key.startswith(COMPUTES) and _same(was.get(key), now.get(key)):
            continue
        shown = key.replace(".init_args.", ".")
        given = shlex.quote(f"--{shown}={_shown(now.get(key))}")
        _refuse(given, f"the run of {ckpt} was made with {shown}={_shown(was.get(key))}", ckpt, folder, made, given)


def refuse_edited_record(folder: Path, made: Any, saved: dict[str, Any], ckpt: Path) -> None:
    """A run folder's config.yaml is the run's record: one edited since the run was made (a value, not a
    comment) would resume another run under the same name."""
    text = saved.get(RUN_CONFIG_FILE_KEY)
    if not isinstance(text, str):
        return  # a checkpoint from before the record was kept
    was, now = _leaves(load_run_config(text, f"the config stored in {ckpt}") or {}), _leaves(made or {})
    changed = [k for k in sorted(was.keys() | now.keys()) if not _same(was.get(k), now.get(k))]
    if not changed:
        return
    key = changed[0]
    more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
    record = folder / "config.yaml"
    raise ConfigError(
        f"{record} was edited since the run was made: {key} is {_shown(now.get(key))} there, but the run was "
        f"made with {_shown(was.get(key))}{more} (its checkpoint {ckpt.name} keeps the original). A run's "
        "config.yaml is its record, and a resume continues the run as it was made: put it back (a resume takes "
        "changes a run allows on the command line), or start a new run from this checkpoint's weights with the "
        f"edited config: python -m project.cli fit --config {shlex.quote(str(record))} "
        f"{_new_run_folder(made or {})} --trainer.callbacks+=project.engine.callbacks.StartFromWeights "
        f"--trainer.callbacks.checkpoint={shlex.quote(str(ckpt))}".replace("  ", " ")
    )


def refuse_callback_changes(made: dict[str, Any], config: Any, ckpt: Path, folder: Path | None) -> None:
    """Callbacks that act on the training (GradientAccumulationScheduler, StochasticWeightAveraging, Lookahead,
    EarlyStopping...) must be those the run was made with; those that only watch it may come and go."""
    was = Counter(_acting((made.get("trainer") or {}).get("callbacks")))
    now = Counter(_acting(config.trainer.as_dict().get("callbacks")))
    for class_path, _ in now - was:
        given = shlex.quote(f"--trainer.callbacks+={class_path}")
        other = any(c == class_path for c, _ in was)
        why = f"the run of {ckpt} was made {'with other arguments for it' if other else 'without it'}"
        _refuse(given, f"{why}; it acts on the training (it does not only watch it)", ckpt, folder, made)
    for class_path, _ in was - now:
        _refuse(
            f"trainer.callbacks without {class_path}",
            f"the run of {ckpt} was made with it; it acts on the training (it does not only watch it)",
            ckpt,
            folder,
            made,
        )


def _acting(callbacks: Any) -> list[tuple[str, str]]:
    """(class path, arguments as JSON) of each callback that acts on the training."""
    if isinstance(callbacks, dict):
        callbacks = [callbacks]
    acting = []
    for callback in callbacks if isinstance(callbacks, list) else []:
        class_path = callback.get("class_path") if isinstance(callback, dict) else callback
        if isinstance(class_path, str) and not observes_only(class_path):
            args = callback.get("init_args") if isinstance(callback, dict) else None
            acting.append((class_path, json.dumps(_normal(args or {}), sort_keys=True, default=str)))
    return acting


def observes_only(class_path: str) -> bool:
    """Whether the callback `class_path` only watches a fit (OBSERVERS, or a class that says `observes_only`);
    a class outside the trusted packages is not imported, and counts as acting."""
    callback = resolve(class_path) or _imported(class_path)
    if not isinstance(callback, type):
        return False
    if getattr(callback, "observes_only", False):
        return True
    observers = [resolve(path) for path in OBSERVERS]
    return any(isinstance(o, type) and issubclass(callback, o) for o in observers)


def _imported(class_path: str) -> Any:
    """The class `class_path` names when its module is imported already (nothing is imported here)."""
    module, _, name = class_path.rpartition(".")
    return getattr(sys.modules.get(module), name, None)


def refuse_schedule_change(
    made: dict[str, Any], config: Any, saved: dict[str, Any], ckpt: Path, folder: Path | None
) -> None:
    """A schedule laid over the run's length (OneCycleLR's `total_steps`) cannot be cut short or stretched."""
    spans = [s.get("total_steps") for s in saved.get("lr_schedulers") or [] if isinstance(s, dict)]
    span = next((s for s in spans if isinstance(s, int)), None)
    if span is None:
        return
    trainer = made.get("trainer") or {}
    for key in ("max_epochs", "max_steps"):
        was, now = trainer.get(key), config.trainer.get(key)
        if was is not None and not _same(was, now):
            given = f"--trainer.{key}={_shown(now)}"
            why = (
                f"the run of {ckpt} was made with trainer.{key}={_shown(was)}, and its learning-rate schedule is "
                f"laid over that length ({span} steps): a resume can neither shorten nor stretch it"
            )
            _refuse(given, why, ckpt, folder, made, given)


def refuse_reached_stop(
    config: Any, saved: dict[str, Any], ckpt: Path, folder: Path | None, made: dict[str, Any] | None
) -> None:
    """A stop criterion the run has reached already: the resume would train nothing and report it done."""
    step = saved.get("global_step")
    epochs = _completed_epochs(saved)
    max_steps, max_epochs = config.trainer.get("max_steps"), config.trainer.get("max_epochs")
    if isinstance(step, int) and isinstance(max_steps, int) and 0 <= max_steps <= step:
        reached = f"trainer.max_steps={max_steps}: the run of {ckpt} is at step {step} already"
        raise ConfigError(f"{reached}, so a resume would train nothing. Raise --trainer.max_steps above {step}.")
    if isinstance(epochs, int) and isinstance(max_epochs, int) and 0 <= max_epochs <= epochs:
        reached = f"trainer.max_epochs={max_epochs}: the run of {ckpt} has trained {epochs} epochs already"
        raise ConfigError(f"{reached}, so a resume would train nothing. Raise --trainer.max_epochs above {epochs}.")


def _completed_epochs(saved: dict[str, Any]) -> int | None:
    """The epochs whose training steps are all done (`processed`: `completed` waits for the epoch's end hooks,
    which run after the epoch's last checkpoint is saved)."""
    try:
        return int(saved["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        return None


def refuse_other_data(
    config: Any, saved: dict[str, Any], ckpt: Path, folder: Path | None, made: dict[str, Any] | None
) -> None:
    """Data that differs from the run's (its fingerprint in the checkpoint): the resume would train on other data."""
    stored = saved.get(FINGERPRINT_KEY)
    data = config.get("data")
    if not isinstance(stored, dict) or data is None:
        return
    init_args = data.get("init_args") if hasattr(data, "get") else None
    init_args = init_args.as_dict() if hasattr(init_args, "as_dict") else init_args
    differs = difference(stored, data_arguments(init_args or {}))
    if differs is not None:
        _refuse("The data differs", differs, ckpt, folder, made, fix="put the run's data back")


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
