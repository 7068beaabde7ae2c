"""A run's folder: the config a fit saved there is its record, and later commands on the run use it.

A fit writes `config.yaml` beside its checkpoints, whatever the logger (or none). `validate`/`test`/
`predict` given just a checkpoint read that config back (project/recipes.py), and commands that log
into the same folder save their own config next to it instead of being refused (`SaveRunConfig`).
"""

import atexit
import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.trainer.states import TrainerFn

from project.checkpoints import is_running, local_path
from project.config_yaml import load_config_file
from project.errors import ConfigError
from project.internals import hpc_resume_path, logger_version_unset, set_logger_version
from project.recipes import RUN_CONFIG_KEY, run_folder_of, stored_run_config
from project.sizes import net_defaults

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

# Arguments of a data module or source that name files or folders: stored resolved, so that a run's
# config.yaml and its checkpoints work from any folder
PATH_ARGUMENTS = ("root", "train", "val", "test", "predict_dir", "data_dir", "path", "file")


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
            raise ConfigError(
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
                config, path, skip_unset=False, overwrite=True, multifile=self.multifile, skip_validation=True
            )
        if command == "fit":
            self._run_config = self.parser.dump(self.config.clone(), skip_unset=False, skip_validation=True)
        self.already_saved = trainer.strategy.broadcast(True)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # A checkpoint copied away from its folder still rebuilds its whole run (project/recipes.py)
        if getattr(self, "_run_config", None):
            checkpoint[RUN_CONFIG_KEY] = self._run_config


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


def resolve_data_paths(data: Any) -> None:
    """Make every relative path among the data's arguments (PATH_ARGUMENTS, at any depth) absolute, in place."""
    if not hasattr(data, "items"):
        return
    for key, value in list(data.items()):  # a parsed config's items are its leaves, with dotted keys
        if hasattr(value, "items"):
            resolve_data_paths(value)
        elif str(key).rsplit(".", 1)[-1] in PATH_ARGUMENTS and _relative_path(value):
            data[key] = os.path.abspath(value)


def _relative_path(value: Any) -> bool:
    return isinstance(value, str | Path) and bool(str(value)) and "://" not in str(value) and not os.path.isabs(value)


def continue_in(trainer: Any, folder: Path) -> None:
    """Make a resumed fit's parsed `trainer` config log into the run folder it resumes: its TensorBoard or
    CSV logger's save_dir/name/version, or without a logger its default_root_dir. A version the command
    line names, and other loggers (MLflow), are left as they are."""
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


def _same_logger(made: dict[str, Any], config: Any) -> bool:
    """Whether the resumed fit logs where its run did (not elsewhere by the user's choice)."""
    was = _leaves({"logger": (made.get("trainer") or {}).get("logger")})
    now = _leaves({"logger": config.trainer.as_dict().get("logger")})
    keys = ("logger", "logger.class_path", "logger.init_args.save_dir", "logger.init_args.name")
    return all(_same(was.get(k), now.get(k)) for k in keys)


def refuse_changes(made: dict[str, Any], config: Any, ckpt: Path, folder: Path | None) -> None:
    from project.cli import cpu_precision  # the precision the run really had, on a machine without a GPU

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
            f"python -m project.cli fit {recipe} {given} --trainer.callbacks+=project.callbacks.StartFromWeights "
            f"--trainer.callbacks.checkpoint={shlex.quote(str(ckpt))}"
        )


def _with_net_defaults(made: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """`made` with its net's unset arguments at their defaults, as a parsed config has them: a run's
    config.yaml records only the net arguments given (project/sizes.py). Only for the class the command
    line already imported, so nothing of a run folder's config is imported here."""
    net = (made.get("model") or {}).get("net")
    class_path = net.get("class_path") if isinstance(net, dict) else None
    if not class_path or class_path != ((now.get("model") or {}).get("net") or {}).get("class_path"):
        return made
    filled = {**net_defaults(class_path), **(net.get("init_args") or {})}
    return {**made, "model": {**made["model"], "net": {**net, "init_args": filled}}}


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


LOCK_FILE = ".fit.lock"  # in a run folder while a fit writes it: the fit's process id


class RunFolderLock(L.Callback):
    """A fit holds its run folder (`hold_run_folder`) until it ends; one that fails or is stopped before its
    first training step removes the folder it created, so failed starts leave no empty `version_N`."""

    def __init__(self, folder: Path, created: bool):
        self.folder = folder
        self.created = created
        self.stepped = False
        self._discard = False
        atexit.register(self._at_exit)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.stepped = True

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.created and not self.stepped:
            self._discard = True
            shutil.rmtree(self.folder, ignore_errors=True)
        self.release()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.release()

    def release(self) -> None:
        lock = self.folder / LOCK_FILE
        if _lock_holder(lock) == os.getpid():
            lock.unlink(missing_ok=True)

    def _at_exit(self) -> None:
        if self._discard:  # loggers finalized after the exception may have written into it again
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            self.release()


def hold_run_folder(trainer: L.Trainer, resuming: bool) -> None:
    """Claim a fit's run folder for this process before anything is written into it.

    Refused, in one line: a new fit into a run folder that already holds a run (a named version used
    twice), and any fit into a folder another living process on this machine is fitting. A lock file
    whose process is gone (killed) is taken over. Rank 0 only; loggers whose folder is known only once
    they start (MLflow) are not held.
    """
    if trainer.global_rank != 0:
        return
    if trainer.loggers and not isinstance(trainer.loggers[0], TensorBoardLogger | CSVLogger):
        return
    folder = run_folder(trainer).absolute()
    lock = folder / LOCK_FILE
    holder = _lock_holder(lock)
    if holder is not None and holder != os.getpid() and is_running(holder):
        raise ConfigError(
            f"{folder} is being written by another fit (process {holder}, still running): wait for it to end, or "
            "name another run (--trainer.logger.init_args.version NAME)."
        )
    if not resuming and (folder / "config.yaml").is_file():
        raise ConfigError(
            f"{folder} already holds a run (its config.yaml): name another run (--trainer.logger.init_args.version "
            "NAME), resume this one with --ckpt_path, or delete the folder."
        )
    created = not folder.exists() or not any(p.name != LOCK_FILE for p in folder.iterdir())
    folder.mkdir(parents=True, exist_ok=True)
    _write_lock(lock, holder)
    trainer.callbacks.append(RunFolderLock(folder, created))


def _write_lock(lock: Path, stale: int | None) -> None:
    """Create the lock atomically (O_EXCL); a stale one, of a process no longer running, is replaced."""
    if stale is not None:
        lock.unlink(missing_ok=True)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:  # another fit created it between the check and here
        holder = _lock_holder(lock)
        raise ConfigError(
            f"{lock.parent} is being written by another fit (process {holder}): wait for it to end, or name "
            "another run (--trainer.logger.init_args.version NAME)."
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")


def _lock_holder(lock: Path) -> int | None:
    try:
        return int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return True
