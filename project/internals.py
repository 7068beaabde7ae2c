"""Every private or undocumented Lightning, torch, jsonargparse, Optuna and numpy behaviour the project relies
on, in one place (so this module is longer than the others: one short entry per private use).

Each entry is a small function (or constant) saying why it is needed and which upstream behaviour it
leans on. Nothing outside this module touches a private name; `tests/test_internals.py` checks that
each one still exists in the installed versions and names the one that vanished. On a Lightning or
torch upgrade, run that test first: a failure there points at the entry below to rewrite.
"""

import logging
import re
import warnings
from typing import Any, TypeVar

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

T = TypeVar("T")
C = TypeVar("C")


# --- Lightning -----------------------------------------------------------------------------------


def hpc_resume_path(trainer: L.Trainer) -> str | None:
    """The checkpoint a SLURM requeue will resume from, or None.

    Why: `trainer.ckpt_path` is set only after the callbacks' `setup`, so a callback that must know
    during `setup` whether this fit continues a run (SaveRunConfig) cannot read it. Lightning finds a
    requeue's checkpoint (`hpc_ckpt_*.ckpt` in the default root dir) through the private
    `_CheckpointConnector._hpc_resume_path` property; there is no public equivalent (Lightning 2.6).
    """
    return trainer._checkpoint_connector._hpc_resume_path


def freeze_cli_hparams(cli: Any) -> dict[str, Any]:
    """Make LightningCLI record the model's and data's hyperparameters from the config as parsed now; returns
    that record (the subcommand's config as a dict).

    Why: the CLI hands the net to the Classifier unbuilt (project/sizes.py), so it swaps the parsed
    `model.net` for a `NetSpec` just before instantiation. LightningCLI records hyperparameters from the
    undocumented `config_dump`, which the private `LightningCLI._dump_config` fills at the first
    instantiation unless it is set (Lightning 2.6). Set here, it holds the config as the user wrote it,
    dumped without validating again what parsing just validated (that costs about 0.1 s a command).
    """
    if not hasattr(cli, "config_dump"):
        dumped = cli.parser.dump(cli.config, skip_link_targets=False, skip_unset=False, skip_validation=True)
        config = yaml.safe_load(dumped)
        cli.config_dump = config[cli.config.subcommand] if "subcommand" in cli.config else config
    return cli.config_dump


def without_checkpoint_hparams(cli_class: type[C]) -> type[C]:
    """A LightningCLI subclass that leaves the model's hyperparameters stored in `--ckpt_path` unread.

    Why: LightningCLI parses them over the command line in the private `LightningCLI._parse_ckpt_path`
    (Lightning 2.6), with no switch; project/run_config.py loads the model's and the data's beneath the
    command line instead, so command-line keys win.
    """
    cli_class._parse_ckpt_path = lambda self: None
    return cli_class


def checkpoint_hparams_config(hparams: dict[str, Any]) -> dict[str, Any]:
    """A class's config section (`class_path`, `init_args`) from the hyperparameters LightningCLI stored.

    Why: with `load_from_checkpoint_support` LightningCLI stores the class under the key `_class_path` and
    its own `_instantiator` among the hyperparameters (`_InstantiatorFn`, Lightning 2.6), undocumented.
    """
    hparams = {k: v for k, v in hparams.items() if k != "_instantiator"}
    if "_class_path" in hparams:
        class_path = hparams.pop("_class_path")
        return {"class_path": class_path, "init_args": hparams}
    return hparams


def restore_train_loader_state(trainer: L.Trainer) -> None:
    """Hand the checkpoint's saved training-loader `state_dict` to the loader now (a no-op when done).

    Why: Lightning restores a loader's `state_dict` only when it builds the loader after reading the
    checkpoint. If `configure_optimizers` reads `trainer.estimated_stepping_batches` (OneCycleLR does),
    the loader is built before the checkpoint is read and the saved position is silently dropped, so a
    run resumed mid-epoch replays the epoch from its start (Lightning 2.6). The private
    `_FitLoop._load_combined_loader_states()` applies the pending states; it returns at once when there
    are none or they were applied already.
    """
    trainer.fit_loop._load_combined_loader_states()


def request_stop_after_this_step(trainer: L.Trainer) -> None:
    """Make the training loop stop after the step in progress, as Lightning does for a SIGTERM.

    Why: Lightning's own SIGTERM handler sets `_SignalConnector.received_sigterm`; the training epoch
    loop reads it (as `trainer.received_sigterm`) once the step has finished and raises
    `SIGTERMException`, and the checkpoint saved on that exception holds one step's whole state. There
    is no public way to ask for the same stop for another signal (Ctrl-C, SLURM's requeue signal);
    the attribute is private (Lightning 2.6).
    """
    trainer._signal_connector.received_sigterm = True


def total_batch_index(trainer: L.Trainer) -> int:
    """Training batches started so far in the whole run, counted from 0 (survives a resume).

    Why: the only counter of batches across epochs that includes batches skipped by gradient
    accumulation and is restored from checkpoints. `trainer.global_step` counts optimizer steps, which
    differ under accumulation or with several optimizers. `fit_loop.total_batch_idx` is a public
    property of the private `_FitLoop` class, undocumented (Lightning 2.6).
    """
    return trainer.fit_loop.total_batch_idx


def expose_epoch_sampler(loader: Any, sampler: Any) -> None:
    """Let Lightning call `sampler.set_epoch(epoch)` on a loader that is not a `DataLoader`.

    Why: before each epoch Lightning's fit and evaluation loops call
    `lightning.fabric.utilities.data._set_sampler_epoch(loader, epoch)`, which looks for a `set_epoch`
    method on `loader.sampler` and `loader.batch_sampler.sampler` and on nothing else (duck typing,
    no public protocol). A loader of its own (DeviceLoader) therefore names its ordering `sampler`
    and sets `batch_sampler = None`: it batches by itself, and Lightning reads the attribute beside
    `sampler`.
    """
    loader.sampler = sampler
    loader.batch_sampler = None


def flatten_batch_indices(batch_indices: list) -> list[int]:
    """The sample indices a `BasePredictionWriter.write_on_epoch_end` received, in prediction order.

    Why: with one predict dataloader Lightning passes them nested once more per dataloader,
    `[loader][batch][index]`, rather than `[batch][index]` as the hook's documentation suggests
    (Lightning 2.6, `PredictionLoop` with a single dataloader). Both shapes are accepted here.
    """
    if len(batch_indices) == 1 and batch_indices[0] and isinstance(batch_indices[0][0], list):
        batch_indices = batch_indices[0]
    return [i for batch in batch_indices for i in batch]


def save_latest_checkpoint_now(callback: ModelCheckpoint, trainer: L.Trainer) -> None:
    """Make a monitor-less `ModelCheckpoint` save the current step unless it already has.

    Why: with `every_n_train_steps` it saves only at multiples of the interval, and nothing at the end
    of training, so a 10-step fit saving every 4 steps leaves last.ckpt at step 8 (Lightning 2.6).
    There is no public "save now"; these are the private steps its own `on_train_batch_end` takes
    (`_last_global_step_saved`, `_monitor_candidates`, `_save_topk_checkpoint`, `_save_last_checkpoint`),
    which keep its file naming, top-k bookkeeping and `save_last` link. Called on every rank, as
    saving is collective.
    """
    if callback._last_global_step_saved == trainer.global_step or trainer.fast_dev_run or trainer.sanity_checking:
        return
    candidates = callback._monitor_candidates(trainer)
    callback._save_topk_checkpoint(trainer, candidates)
    callback._save_last_checkpoint(trainer, candidates)


def leave_checkpoint_callback_states(trainer: L.Trainer, checkpoint: dict[str, Any]) -> None:
    """Keep the trainer's `ModelCheckpoint`s from loading their state from `checkpoint`; called from a
    callback's `on_load_checkpoint`.

    Why: an evaluation (`validate`/`test`/`predict --ckpt_path`) logs into a new folder, so its checkpoint
    callbacks point elsewhere than the fit's did; loading their state makes Lightning warn "The dirpath
    has changed ... won't be reloaded" on every evaluation, about bookkeeping an evaluation never uses (it
    saves nothing). Removing the callbacks instead makes Lightning warn that the checkpoint's callbacks
    are missing. Lightning restores callbacks in two passes over the same loaded dict: every callback's
    `on_load_checkpoint`, then `load_state_dict` for each callback whose `state_key` is in
    `checkpoint["callbacks"]` (`_CheckpointConnector.restore_callbacks`, Lightning 2.6); the order and the
    shared dict are not documented. The file on disk is untouched.
    """
    states = checkpoint.get("callbacks") or {}
    for callback in trainer.checkpoint_callbacks:
        states.pop(callback.state_key, None)


def logger_version_unset(logger: Any) -> bool:
    """True for a TensorBoardLogger or CSVLogger that will pick its `version_N` itself.

    Why: both keep the version they were given in the private `_version` (None: pick one), and pick
    by listing the existing `version_*` folders the first time `version` is read (Lightning 2.6);
    reading the public `version` would make that choice. A logger without `_version` is left alone.
    """
    return getattr(logger, "_version", "given") is None


def set_logger_version(logger: Any, version: int) -> None:
    """Fix the version of a logger for which `logger_version_unset` was True (see there)."""
    logger._version = version


def tensorboard_event_writer(writer: Any) -> Any:
    """The `FileWriter` behind a `torch.utils.tensorboard.SummaryWriter`, to add a hand-built Summary.

    Why: `SummaryWriter.add_audio` writes the legacy audio value, which has no place for a caption;
    TensorBoard's audio plugin shows a caption only with its tensor form (audio and label side by side),
    which torch has no method for. The private `SummaryWriter._get_file_writer` (torch 2.x) is how
    its own `add_*` methods reach the event file; there is no public equivalent.
    """
    return writer._get_file_writer()


def cheap_repeated_logging() -> None:
    """Make `self.log` of a value already logged on the same device skip Lightning's move of its record.

    Why: at every `self.log` call Lightning moves the value's record to the value's device
    (`_ResultCollection.log` calls the private `_ResultMetric.to`, Lightning 2.6), and that walks the
    whole record, a torchmetrics Metric, with `apply_to_collection`, deep-copying its metadata
    dataclasses on the way: about 1 ms a call on a 2-core CPU, two calls a training step, whatever the
    device. After the first call the record is already there. The wrapper returns at once when every
    tensor of the record (and its Metric value) is on the asked device, and otherwise does what Lightning
    does. Idempotent.
    """
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric
    from torchmetrics import Metric

    original = _ResultMetric.to
    if getattr(original, "skips_same_device", False):
        return

    def to(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and isinstance(args[0], torch.device):
            device, state = args[0], self.__dict__
            value = state.get("value")
            tensors = [v for v in state.values() if isinstance(v, Tensor)]
            tensors += [v for v in state.get("_defaults", {}).values() if isinstance(v, Tensor)]
            if all(t.device == device for t in tensors) and not (isinstance(value, Metric) and value.device != device):
                return self
        return original(self, *args, **kwargs)

    to.skips_same_device = True
    _ResultMetric.to = to


def clean_interrupt_messages() -> None:
    """Turn the message Lightning logs when an interrupt saved a checkpoint into one readable line.

    Why: `ModelCheckpoint.on_exception` (save_on_exception) logs "An SIGTERMException was raised with
    message:             , saved checkpoint to PATH": the message of a SIGTERM is empty and the source
    line's indentation is part of the string (Lightning 2.6). It goes through `rank_zero_info`, i.e.
    the `lightning.pytorch.utilities.rank_zero` logger, whose records a filter can rewrite; the text
    is not a documented format, so an unrecognised one passes unchanged.
    """
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _InterruptMessage) for f in logger.filters):
        logger.addFilter(_InterruptMessage())


def quiet_library_notices() -> None:
    """Drop Lightning's advertising tips and a deprecation warning that Lightning itself triggers.

    Why: the Trainer logs "💡 Tip: For seamless cloud ..." (litlogger, litmodels) through `rank_zero_info`
    on every run that has no LitLogger, with no switch to turn it off (Lightning 2.6); a filter on the
    `lightning.pytorch.utilities.rank_zero` logger drops exactly those records. Lightning's `CombinedLoader`
    builds `torch.utils._pytree.LeafSpec()`, which torch (2.14) deprecates with a FutureWarning attributed
    to `lightning.pytorch.utilities._pytree`; only that warning from that module is ignored. Idempotent.
    """
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _CloudTip) for f in logger.filters):
        logger.addFilter(_CloudTip())
    warnings.filterwarnings(
        "ignore",
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        FutureWarning,
        r"lightning\.pytorch\.utilities\._pytree",
    )


class _CloudTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip: For seamless cloud")


class _InterruptMessage(logging.Filter):
    PATTERN = re.compile(r"An (\w+) was raised with message:\s*(.*?),\s*saved checkpoint to (.+)", re.DOTALL)

    def filter(self, record: logging.LogRecord) -> bool:
        found = self.PATTERN.fullmatch(str(record.msg).strip())
        if found and not record.args:
            kind, message, path = found.groups()
            from project import signals  # here: project.signals leans on this module

            # Lightning's SIGTERMException also ends a fit that another signal asked to stop (project/signals.py)
            stopped = f"stopped by {signals.signal_name(signals.received())}"
            why = stopped if kind == "SIGTERMException" else f"{kind}: {message}" if message else kind
            record.msg = f"Interrupted ({why}); saved {path}: resume with --ckpt_path {path}"
        return True


# --- Optuna --------------------------------------------------------------------------------------


def fail_running_trial(study: Any, trial: Any) -> Any:
    """Mark a `running` trial of `study` failed; returns it as it is now, or None if it had ended already.

    Why: a sweep restarted on the host where a trial's process was killed knows at once that the trial is
    dead; Optuna's public `fail_stale_trials` fails a trial only once its heartbeat is older than the grace
    period (two intervals), by the steps used here: the private `Study._storage`,
    `FrozenTrial._trial_id` and the storage's `set_trial_state_values` and `get_trial` (Optuna 4).
    """
    import optuna

    try:
        study._storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    return study._storage.get_trial(trial._trial_id)


# --- jsonargparse ----------------------------------------------------------------------------------


def unrequire_arguments(add_kwargs: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """`add_class_arguments` keyword arguments under which the parameters `names` are not required.

    Why: a net's sizes (`num_classes`, `in_features`...) come from the data after the config is parsed
    (project/sizes.py), so the parser must accept a net config that leaves them out. jsonargparse
    exempts exactly the targets of `link_arguments` through the private keyword `linked_targets`
    of `add_class_arguments` (jsonargparse 4.x, `_add_signature_parameter`); a real link cannot be
    used, because jsonargparse fails on links into builder functions (torchvision's `resnet18`).
    """
    return {**add_kwargs, "linked_targets": set(add_kwargs.get("linked_targets") or ()) | names}


def option_strings(parser: Any) -> list[str]:
    """Every option string an argparse (or jsonargparse) parser accepts, e.g. `--trainer.max_epochs`.

    Why: to suggest the key a mistyped `--key` was close to. argparse lists them only in the private
    `ArgumentParser._option_string_actions` (Python 3.x); no public method lists a parser's options.
    """
    return list(parser._option_string_actions)


# --- torch ---------------------------------------------------------------------------------------


def foreach_lerp_(targets: list[Tensor], ends: list[Tensor], weight: float) -> None:
    """`t += weight * (end - t)` for each pair, in one fused kernel per device and dtype (in place).

    Why: Lookahead averages every parameter and buffer every few steps; a Python loop of `lerp_`
    launches two kernels per tensor. `torch._foreach_lerp_` is what torch's own optimizers use, but is
    private (no public fused multi-tensor API in torch 2.x).
    """
    torch._foreach_lerp_(targets, ends, weight)


def foreach_copy_(targets: list[Tensor], sources: list[Tensor]) -> None:
    """Copy each source into its target in one fused kernel per device and dtype (see `foreach_lerp_`)."""
    torch._foreach_copy_(targets, sources)


def keep_batch(batch: T) -> T:
    """The `collate_fn` for datasets with `__getitems__`: the fetcher already returned a batch.

    Why: torch's map-style fetcher (`torch.utils.data._utils.fetch._MapDatasetFetcher`) calls
    `dataset.__getitems__(indices)` when the dataset has it, instead of one `__getitem__` per index, so an
    in-memory set gathers a batch with one indexing op and an audio set pads once per batch. It is
    undocumented (added in torch 2.0 for torchdata).
    """
    return batch


# --- numpy ---------------------------------------------------------------------------------------

NUMPY_ARRAY_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)
"""The globals a pickled numpy array names: enough, and no more, to unpickle CIFAR-10's batches.

Why: pickles refer to numpy's private reconstruction functions by module path. Files written under
numpy 1 name `numpy.core.*`, those written under numpy 2 name `numpy._core.*`; a safe unpickler must
allow exactly these and nothing else.
"""


def numpy_pickle_module(module: str) -> str:
    """Where a pickle's numpy module lives in the installed numpy.

    Why: numpy 2 renamed `numpy.core` to `numpy._core` and left a shim that warns on every access;
    resolving the new name directly keeps the CIFAR-10 reader quiet on numpy 2 and working on numpy 1.
    """
    import numpy as np

    if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
        return module.replace("numpy.core", "numpy._core", 1)
    return module


def stop_rich_bar(bar: Any) -> None:
    """End a RichProgressBar's live display now, as its `teardown` would, so that nothing printed after
    training (the run summary) is followed by the bar drawn once more. `_stop_progress` also marks the
    display for a fresh start should the same trainer run another stage."""
    bar._stop_progress()
