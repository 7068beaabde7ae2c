"""A run's folder: which one a run writes (`run_folder`), claimed so that two runs never share one, held by
the fit writing it (`hold_run_folder`), and where a run's data paths point from any folder.

Inside a run folder each command logs into a sub-run of its own: the fit into `fit/`, an evaluation of one of
the run's checkpoints into `test/` (`validate/`, `predict/`; `test_2/` for the next), so that
`tensorboard --logdir <run folder>` shows the fit and its evaluations together, each under a readable name.
"""

import atexit
import itertools
import os
import re
import shutil
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from project.engine.checkpoints import is_running, local_path
from project.engine.config_yaml import load_config_file
from project.engine.errors import ConfigError
from project.engine.internals import logger_version_unset, set_logger_version

# Arguments of a data module or source that name files or folders: stored resolved, so that a run's
# config.yaml and its checkpoints work from any folder
PATH_ARGUMENTS = ("root", "train", "val", "test", "predict_dir", "data_dir", "path", "file")


def claim_run_folders(trainer: L.Trainer) -> None:
    """Give each logger that picks its own `version_N` (TensorBoard, CSV) the first free one, claimed by creating
    its folder: Lightning's loggers pick by listing the folders, which two runs can do at the same instant.
    Rank 0 claims; the others never write a run's files."""
    if trainer.global_rank != 0:
        return
    for logger in trainer.loggers:
        root = getattr(logger, "root_dir", None)
        if root is None or "://" in str(root) or not logger_version_unset(logger):
            continue
        os.makedirs(root, exist_ok=True)
        version = next_version(Path(root))
        while True:
            try:
                os.mkdir(os.path.join(root, f"version_{version}"))
                break
            except FileExistsError:
                version += 1
        set_logger_version(logger, version)


def run_folder(trainer: L.Trainer) -> Path:
    """The run's folder, the parent of its checkpoints/: save_dir/name/version for TensorBoard and CSV,
    mlruns/<experiment>/<run> for MLflow, the trainer's default_root_dir without a logger."""
    if not trainer.loggers:
        return Path(trainer.default_root_dir)
    logger = trainer.loggers[0]
    save_dir = logger.save_dir or trainer.default_root_dir
    version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
    return Path(save_dir) / str(logger.name) / version


def run_folder_of(ckpt: Path) -> Path | None:
    """The run folder a checkpoint lies in (`<run>/checkpoints/X.ckpt` beside `<run>/config.yaml`), or None; named
    as `ckpt` was (relative stays relative), so that the paths printed are the user's."""
    folder = ckpt.resolve().parent.parent
    if ckpt.resolve().parent.name != "checkpoints" or not (folder / "config.yaml").is_file():
        return None
    given = Path(os.path.normpath(ckpt)).parent.parent
    return given if given.name == folder.name and given.resolve() == folder else folder


def tensorboard_folder(logger: Any) -> str:
    """The folder to give `tensorboard --logdir` for a TensorBoard logger: its run folder when it logs into a
    sub-run of it (`fit/`, `test/`), so that the fit and its evaluations show together; else its log_dir."""
    if isinstance(getattr(logger, "sub_dir", None), str):
        version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
        return os.path.join(logger.root_dir, version)
    return logger.log_dir


def record_folder(trainer: L.Trainer, command: str) -> Path:
    """Where a command's config record goes: the run folder, or for an evaluation logged into a sub-run of a
    run folder (TensorBoard's `sub_dir`), that sub-run."""
    folder = run_folder(trainer)
    sub_run = getattr(trainer.loggers[0], "sub_dir", None) if trainer.loggers and command != "fit" else None
    return folder / sub_run if isinstance(sub_run, str) and sub_run else folder  # not a DummyLogger's no-op


def newest_last_checkpoint(runs: Path) -> Path | None:
    """The most recently written `<run>/checkpoints/last.ckpt` among the runs in `runs`, or None."""
    found = [p for p in runs.glob("*/checkpoints/last.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def next_version(runs: Path) -> int:
    """One above the highest `runs/version_N`, as TensorBoard and CSV loggers number runs."""
    numbers = [int(p.name.split("_", 1)[1]) for p in runs.glob("version_*") if p.name.split("_", 1)[1].isdigit()]
    return max(numbers, default=-1) + 1


def resolve_data_paths(data: Any) -> None:
    """Make every relative path among the data's arguments (PATH_ARGUMENTS, at any depth) absolute, in place."""
    if not hasattr(data, "items"):
        return
    for key, value in list(data.items()):  # a parsed config's items are its leaves, with dotted keys
        local = isinstance(value, str | Path) and bool(str(value)) and "://" not in str(value)  # not a URL
        if hasattr(value, "items"):
            resolve_data_paths(value)
        elif str(key).rsplit(".", 1)[-1] in PATH_ARGUMENTS and local and not os.path.isabs(value):
            data[key] = os.path.abspath(value)


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
    """Claim a fit's run folder for this process before anything is written into it. Refused, in one line: a new
    fit into a folder that holds a run, and any fit into one another living process here is fitting (a dead
    one's lock is taken over). Rank 0 only; MLflow's folder, known only once it starts, is not held."""
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


def profile_in_run_folder(trainer: L.Trainer, command: str = "fit") -> None:
    """A profiler given no `dirpath` writes into the run folder (configs/presets/profile.yaml), an evaluation's
    into its sub-run (`record_folder`), rank 0 only: Lightning's `trainer.log_dir` is a TensorBoard logger's
    sub-run (`fit/`) and the store's root for MLflow."""
    profiler = trainer.profiler
    if getattr(profiler, "dirpath", "given") is not None or not trainer.loggers or trainer.global_rank != 0:
        return
    profiler.dirpath = record_folder(trainer, command)


EVALUATIONS = ("validate", "test", "predict")
COMMANDS = ("fit", *EVALUATIONS)


def place_evaluation(config: Any, command: str, init: Any, logger_class: str) -> None:
    """Log an evaluation of a checkpoint that lies in a run folder into that folder, as the sub-run `<command>`
    (`<command>_2`, ... when it holds files already): TensorBoard's `sub_dir`, the CSV logger's version. Left
    alone: a logger sent elsewhere than the run's (another class, save_dir, name or a version), a checkpoint
    outside a run folder, other loggers."""
    ckpt = config.get("ckpt_path")
    local = local_path(ckpt) if ckpt else None
    folder = run_folder_of(local) if local is not None and local.is_file() else None
    if folder is None:
        return
    tensorboard = logger_class.endswith("TensorBoardLogger") and "sub_dir" in init
    if not tensorboard and not logger_class.endswith("CSVLogger"):
        return
    if init.get("version") is not None:  # named: the run's own folder (its config names it), or another
        named = Path(init.get("save_dir") or "", init.get("name") or "", str(init.version))
        if not named.is_dir() or not os.path.samefile(named, folder):
            return
    made = load_config_file(folder / "config.yaml")
    logger = ((made.get("trainer") if isinstance(made, dict) else None) or {}).get("logger")
    was = (logger.get("init_args") or {}) if isinstance(logger, dict) else {}
    if not isinstance(logger, dict) or logger.get("class_path") != logger_class:
        return
    if (was.get("save_dir"), was.get("name")) != (init.get("save_dir"), init.get("name")):
        return  # the command line sends it elsewhere
    sub_run = free_sub_run(folder, command)
    init.save_dir, init.name = str(folder.parent.parent), folder.parent.name
    if tensorboard:
        init.version, init.sub_dir = folder.name, sub_run
    else:
        init.version = f"{folder.name}/{sub_run}"


def free_sub_run(folder: Path, command: str) -> str:
    """`command`, or `command_2`, `command_3`, ... : the first that is not a folder holding files in `folder`."""
    names = (command if n == 1 else f"{command}_{n}" for n in itertools.count(1))
    return next(name for name in names if not (folder / name).is_dir() or not any((folder / name).iterdir()))


def run_name(config: Any, recipe: str | None = None) -> str:
    """The run's name when its logger names none: the recipe's (`recipe`), else from the data: its
    source's class (FSDD -> fsdd), else its data module's."""
    if recipe:
        return recipe
    data = config.get("data") or {}
    init = data.get("init_args") or {}
    source = (init.get("source") or init.get("dataset")) if hasattr(init, "get") else None
    class_path = (source or {}).get("class_path") if hasattr(source or {}, "get") else None
    class_path = class_path or data.get("class_path") or "run"
    name = class_path.rsplit(".", 1)[-1].removesuffix("DataModule") or "run"
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def place_run(config: Any, recipe: str | None, command: str | None = "fit") -> None:
    """Where a run's files go, set in its parsed `config`: a name for a recipe that names no run (the recipe's,
    else its data's), a folder of its own without a logger, a local MLflow store beside the other runs; the fit's
    TensorBoard events in `fit/`, an evaluation of a run's checkpoint in that run's folder (`place_evaluation`)."""
    trainer = config.trainer
    logger = trainer.logger
    init = logger.get("init_args") if hasattr(logger, "get") else None
    if init is not None and "name" in init and not init.name:
        init.name = run_name(config, recipe)  # a recipe that names no run: its data's name
    if init is not None and init.get("sub_dir") in COMMANDS:  # a run's config.yaml records its fit's sub-run
        init.sub_dir = None
    if init is not None and command in EVALUATIONS:
        place_evaluation(config, command, init, str(logger.get("class_path") or ""))
    if init is not None and "sub_dir" in init and init.sub_dir is None:
        resumed = Path(init.save_dir or "", init.name or "", str(init.version)) if init.get("version") else None
        events_at_root = resumed is not None and any(resumed.glob("events.out.tfevents.*"))
        if not events_at_root or (resumed / command).is_dir():  # a run logged before sub-runs keeps its layout
            init.sub_dir = command
    if init is not None and init.get("experiment_name") == "lightning_logs":  # MLflow's stock name
        init.experiment_name = run_name(config, recipe)
    if logger is False and not trainer.get("default_root_dir"):
        # No logger: checkpoints and the run's config still get a folder of their own
        runs = Path("logs") / run_name(config, recipe)
        trainer.default_root_dir = str(runs / f"version_{next_version(runs)}")
    uri = (init or {}).get("tracking_uri")
    logger_class = str(logger.get("class_path") or "") if hasattr(logger, "get") else ""  # "": none, or `true`
    if logger_class.endswith(".MLFlowLogger") and (uri is None or str(uri).startswith("file:")):
        # A local MLflow store in save_dir keeps the run beside the others in logs/ (configs/presets/
        # mlflow.yaml); MLflow >= 3.7 refuses its file store unless asked for it this way
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        if uri is None and init.get("save_dir"):
            # MLflow keeps one store per URI for the process: a relative one would stay tied to the
            # folder of the first run (a sweep or a test that changes folder then finds no store)
            init.save_dir = str(Path(init.save_dir).resolve())
