"""TensorBoard's HPARAMS tab: the hyperparameters that tell runs apart beside the best monitored value.

Shown: what differs from its class's default (the recipe's and the command line's choices, and the sizes the data
filled in), each class by its name (`SGD`, not a class path TensorBoard cuts to `torch.optim....`), flags as
`true`/`false` (TensorBoard shows a bool as `0.0000`), and the number of epochs. Left out: arguments at their
defaults (`differentiable`, `fused`, ...), Lightning's bookkeeping (`_instantiator`), where the data lies and how it
is read (paths, workers), which differ between machines, not between runs.
"""

import importlib
import inspect
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard.summary import hparams

from project.engine.internals import tensorboard_event_writer

# How the data is read and where it lies: no column (project/engine/resume.py and runs.py name the same)
NOT_SHOWN = ("root", "train", "val", "test", "predict_dir", "data_dir", "path", "file", "download", "url", "md5")
NOT_SHOWN += ("num_workers", "pin_memory", "persistent_workers", "prefetch_factor", "on_device", "cache_dir")


def shown_hparams(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
    """The columns of this run's row in the HPARAMS tab."""
    shown: dict[str, Any] = {}
    _add(shown, "", dict(pl_module.hparams), type(pl_module))
    datamodule = getattr(trainer, "datamodule", None)
    data = getattr(datamodule, "hparams", None)
    if data is not None:
        shown["data"] = type(datamodule).__name__
        _add(shown, "data/", dict(data), type(datamodule))
    if trainer.max_epochs not in (None, -1):
        shown["trainer/max_epochs"] = trainer.max_epochs
    return shown


def log_best(logger: TensorBoardLogger, params: dict[str, Any], best: dict[str, float], step: int) -> None:
    """The run's row in the HPARAMS tab, with `best` (the monitored metric's best value) also drawn as one point at
    `step` on the SCALARS tab (Lightning's `log_hyperparams` would put it at step 0, left of every curve)."""
    logger.log_metrics(best, step)
    writer = tensorboard_event_writer(logger.experiment)
    for summary in hparams(params, best):
        writer.add_summary(summary)
    writer.flush()


def _add(shown: dict[str, Any], prefix: str, arguments: dict[str, Any], owner: Any) -> None:
    defaults = _defaults(owner)
    for key, value in arguments.items():
        if key.startswith("_") or key in NOT_SHOWN:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(value.get("class_path"), str):  # a class given by its config
            shown[name] = value["class_path"].rsplit(".", 1)[-1]
            _add(shown, f"{name}/", dict(value.get("init_args") or {}), _import(value["class_path"]))
        elif key in defaults and _plain(defaults[key]) == _plain(value):
            continue
        elif value is not None:
            shown[name] = _plain(value)


def _plain(value: Any) -> Any:
    """A value TensorBoard shows as written: numbers and strings as they are, flags as true/false, an object by
    its class's name, anything else as text."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | str):
        return value
    if isinstance(value, list | tuple):
        return str([_plain(v) for v in value])
    if value is None or isinstance(value, dict):
        return str(value)
    return type(value).__name__


def _defaults(owner: Any) -> dict[str, Any]:
    try:
        parameters = inspect.signature(owner).parameters
    except (TypeError, ValueError):
        return {}
    return {k: p.default for k, p in parameters.items() if p.default is not inspect.Parameter.empty}


def _import(class_path: str) -> Any:
    """The class a config names, when it is importable (its module is loaded already: the run built it)."""
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None
