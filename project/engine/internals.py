"""Every private or undocumented Lightning, torch, jsonargparse, Optuna and numpy behaviour the project relies
on, in one place (so this module is longer than the others: one short entry per private use).

Nothing outside this module touches a private name. On an upgrade, run `tests/test_internals.py` first: it
names the entry below to rewrite.
"""

import logging
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
    Why: `trainer.ckpt_path` is set only after the callbacks' `setup`, too late for SaveRunConfig. Private
    `_CheckpointConnector._hpc_resume_path` (Lightning 2.6); no public equivalent."""
    return trainer._checkpoint_connector._hpc_resume_path


def freeze_cli_hparams(cli: Any) -> dict[str, Any]:
    """Make LightningCLI record the model's and data's hyperparameters from the config as parsed now; returns
    that record (the subcommand's config as a dict).

    Why: the CLI builds the model's nets with the data's sizes (project/engine/sizes.py), so it instantiates the
    model apart, after the data. LightningCLI records hyperparameters from the
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
    Why: project/engine/run_config.py loads them beneath the command line so that its keys win; LightningCLI
    parses them over it, with no switch, in the private `LightningCLI._parse_ckpt_path` (Lightning 2.6)."""
    cli_class._parse_ckpt_path = lambda self: None
    return cli_class


def checkpoint_hparams_config(hparams: dict[str, Any]) -> dict[str, Any]:
    """A class's config section (`class_path`, `init_args`) from the hyperparameters LightningCLI stored.
    Why: `load_from_checkpoint_support` stores the class as `_class_path` beside its `_instantiator`
    (private `_InstantiatorFn`, Lightning 2.6), undocumented."""
    hparams = {k: v for k, v in hparams.items() if k != "_instantiator"}
    if "_class_path" in hparams:
        class_path = hparams.pop("_class_path")
        return {"class_path": class_path, "init_args": hparams}
    return hparams


def restore_train_loader_state(trainer: L.Trainer) -> None:
    """Hand the checkpoint's saved training-loader `state_dict` to the loader now (a no-op when done).
    Why: a loader built before the checkpoint is read (`estimated_stepping_batches`, read by OneCycleLR,
    builds it) silently loses its saved position, so a mid-epoch resume replays the epoch. Lightning applies
    pending states in the private `_FitLoop._load_combined_loader_states()` only while the loop is `restarting`,
    which a checkpoint saved at an epoch's end is not: a loader that counts its own epochs (LitData's) then
    started over at its first epoch's order. Here they are applied in any case, once, through the private
    `_FitLoop._combined_loader`, `_combined_loader_states_to_load` and `CombinedLoader._load_state_dicts`
    (Lightning 2.6)."""
    loop = trainer.fit_loop
    if loop._combined_loader is not None and loop._combined_loader_states_to_load:
        loop._combined_loader._load_state_dicts(loop._combined_loader_states_to_load)
        loop._combined_loader_states_to_load = []


def request_stop_after_this_step(trainer: L.Trainer) -> None:
    """Make the training loop stop after the step in progress, as Lightning does for a SIGTERM.
    Why: no public way to ask that stop (whose checkpoint holds one whole step) for another signal; the
    loop reads the private `_SignalConnector.received_sigterm` after each step (Lightning 2.6)."""
    trainer._signal_connector.received_sigterm = True


def own_stop_signals(trainer: L.Trainer) -> None:
    """Keep Lightning's SIGTERM handling and its per-step sigterm broadcast out of `trainer`'s fit: the project's
    handler (project/engine/signals.py), which Lightning's calls, only records the signal, and every rank agrees
    on the step to stop after (project/engine/callbacks/stopping.py). Call before the fit registers its handlers.
    Why: Lightning 2.6's `_SignalConnector._sigterm_notifier_fn` calls `torch.distributed.broadcast` from inside
    the signal handler (Lightning PR #20825; issue #20806, still open), which races the collectives in flight (a
    hang: rank 0 in that broadcast, rank 1 in backward's all-reduce), runs in forked DataLoader workers too (which
    then die or hang) and forwards the signal to the other local ranks; and `_TrainingEpochLoop.
    _broadcast_sigterm_tensor` broadcasts rank 0's flag before every batch and reads it back with `.item()` (a
    blocking host sync per step on a GPU) so that a signal to another rank alone stops that rank alone. Both are
    private and replaced on this trainer's instances only."""
    trainer._signal_connector._sigterm_notifier_fn = _ignore_signal
    trainer.fit_loop.epoch_loop._broadcast_sigterm_tensor = _no_broadcast


def _ignore_signal(signum: Any, frame: Any) -> None:
    return None


def _no_broadcast() -> None:
    return None


def stop_requested(trainer: L.Trainer) -> bool:
    """Whether the training loop will stop after the step in progress (see `request_stop_after_this_step`)."""
    return bool(trainer._signal_connector.received_sigterm)


def cancel_stop_request(trainer: L.Trainer) -> None:
    """Undo `request_stop_after_this_step` (for the length of a validation that must finish; same private flag,
    which the evaluation loop reads after each batch)."""
    trainer._signal_connector.received_sigterm = False


def save_on_exception_now(callback: ModelCheckpoint, trainer: L.Trainer) -> str | None:
    """Save what a `ModelCheckpoint` with `save_on_exception` saves when a fit is interrupted, without its log
    line; returns the file that holds the current step (saved now or earlier at this step), or None.
    Why: Lightning's `on_exception` logs only when it saves, so a stop at a step already saved (every
    `every_n_train_steps`) said nothing, and its message cannot say whether the file is an exact resume.
    These are the private steps of its `on_exception` and `_save_checkpoint`'s record of the file
    (`_should_save_on_exception`, `_monitor_candidates`, `_save_checkpoint`, `_save_last_checkpoint`,
    `_last_global_step_saved`, `_last_checkpoint_saved`, Lightning 2.6)."""
    if callback._should_save_on_exception(trainer):
        candidates = callback._monitor_candidates(trainer)
        callback._save_checkpoint(trainer, callback.format_checkpoint_name(metrics=candidates))
        callback._save_last_checkpoint(trainer, candidates)
    if callback._last_global_step_saved != trainer.global_step:
        return None
    return callback._last_checkpoint_saved or None


def forget_batch_in_progress(trainer: L.Trainer) -> None:
    """Make the training loop's batch counters say that the batch in progress (cut short by an error, before its
    optimizer step) never started, as its loader is set back to say it was never handed out.
    Why: Lightning restores only the current epoch's counters to the batches completed (`_Progress.
    reset_on_restart`), so a checkpoint saved mid-step resumed with the run's batch count one ahead, and every
    later step's random streams (seeded from it) shifted. Private `_TrainingEpochLoop.batch_progress` (its
    `total` and `current` trackers, Lightning 2.6)."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    for tracker in (progress.total, progress.current):
        tracker.ready = tracker.started = tracker.processed = tracker.completed


def total_batch_index(trainer: L.Trainer) -> int:
    """Training batches started so far in the whole run, counted from 0 (survives a resume).
    Why: `global_step` counts optimizer steps (not batches under accumulation or several optimizers);
    `total_batch_idx` of the private `_FitLoop` is restored from checkpoints (Lightning 2.6)."""
    return trainer.fit_loop.total_batch_idx


def expose_epoch_sampler(loader: Any, sampler: Any) -> None:
    """Let Lightning call `sampler.set_epoch(epoch)` on a loader that is not a `DataLoader`.
    Why: Lightning's private `lightning.fabric.utilities.data._set_sampler_epoch` (2.6) duck-types
    `loader.sampler` and `loader.batch_sampler.sampler` only; a loader that batches by itself sets both."""
    loader.sampler = sampler
    loader.batch_sampler = None


def flatten_batch_indices(batch_indices: list) -> list[int]:
    """The sample indices a `BasePredictionWriter.write_on_epoch_end` received, in prediction order.
    Why: with one predict dataloader Lightning 2.6 (`PredictionLoop`) nests them `[loader][batch][index]`,
    not `[batch][index]` as documented; both shapes are accepted."""
    if len(batch_indices) == 1 and batch_indices[0] and isinstance(batch_indices[0][0], list):
        batch_indices = batch_indices[0]
    return [i for batch in batch_indices for i in batch]


def save_latest_checkpoint_now(callback: ModelCheckpoint, trainer: L.Trainer) -> None:
    """Make a monitor-less `ModelCheckpoint` save the current step unless it already has (on every rank).
    Why: with `every_n_train_steps` nothing is saved at the end of training (10 steps, every 4: last.ckpt
    at step 8), and there is no public "save now"; these are the private steps of its `on_train_batch_end`
    (`_last_global_step_saved`, `_monitor_candidates`, `_save_*_checkpoint`, Lightning 2.6)."""
    if callback._last_global_step_saved == trainer.global_step or trainer.fast_dev_run or trainer.sanity_checking:
        return
    candidates = callback._monitor_candidates(trainer)
    callback._save_topk_checkpoint(trainer, candidates)
    callback._save_last_checkpoint(trainer, candidates)


def leave_checkpoint_callback_states(trainer: L.Trainer, checkpoint: dict[str, Any]) -> None:
    """Keep the trainer's `ModelCheckpoint`s from loading their state from `checkpoint` (from a callback's
    `on_load_checkpoint`; the file on disk is untouched).
    Why: an evaluation logs into a new folder, so loading their state warns "The dirpath has changed"
    each time. Lightning 2.6 calls every `on_load_checkpoint`, then `load_state_dict` from the same dict
    (private `_CheckpointConnector.restore_callbacks`), an undocumented order."""
    states = checkpoint.get("callbacks") or {}
    for callback in trainer.checkpoint_callbacks:
        states.pop(callback.state_key, None)


def logger_version_unset(logger: Any) -> bool:
    """True for a TensorBoardLogger or CSVLogger that will pick its `version_N` itself.
    Why: reading the public `version` would make that pick; the private `_version` is None until then
    (Lightning 2.6). A logger without `_version` is left alone."""
    return getattr(logger, "_version", "given") is None


def set_logger_version(logger: Any, version: int) -> None:
    """Fix the version of a logger for which `logger_version_unset` was True (see there)."""
    logger._version = version


def tensorboard_event_writer(writer: Any) -> Any:
    """The `FileWriter` behind a `torch.utils.tensorboard.SummaryWriter`, to add a hand-built Summary.
    Why: `add_audio` writes the legacy audio value, without a caption; the captioned tensor form needs
    the private `SummaryWriter._get_file_writer` (torch 2.x)."""
    return writer._get_file_writer()


def cheap_repeated_logging() -> None:
    """Make `self.log` of a value already logged on the same device skip Lightning's move of its record.
    Why: each `self.log` calls the private `_ResultMetric.to` (Lightning 2.6), which deep-copies the
    record's metadata: about 1 ms a call on a 2-core CPU, twice a step. Returns early when all is on the
    device already; otherwise does what Lightning does. Idempotent."""
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


def skip_empty_callback_hooks() -> None:
    """Make Lightning call a callback's hook only where the callback defines it, and time it only under a profiler
    that records. Idempotent.
    Why: Lightning calls every hook of every callback, the base class's empty ones too, each inside a profiler
    context under a formatted name (a ModelCheckpoint's `state_key` formats its settings at every call), and sets
    the module's `_current_fx_name` around them (the private `lightning.pytorch.trainer.call._call_callback_hooks`,
    Lightning 2.6). With the CLI's dozen callbacks that is about 90 calls a training step that do nothing, a few
    microseconds each: on a GPU, where a small net's step takes milliseconds, a visible share of it. This does what
    Lightning's does, in the same order, for every callback that defines the hook (on its class, or as an instance
    attribute), and nothing for the others. Which callbacks define a hook is found once for each list of callbacks
    a trainer holds: a hook set on a callback instance after that callback's first call of it is not seen."""
    from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping
    from lightning.pytorch.profilers import PassThroughProfiler
    from lightning.pytorch.trainer import call

    original = call._call_callback_hooks
    if getattr(original, "skips_empty_hooks", False):
        return

    def defines(callback: Any, hook: str) -> bool:
        return hook in callback.__dict__ or getattr(type(callback), hook, None) is not getattr(Callback, hook, None)

    def callbacks_defining(trainer: L.Trainer, hook: str, monitoring: bool | None) -> list[Any]:
        callbacks = trainer.callbacks
        held = tuple(map(id, callbacks))
        known = trainer.__dict__.get("_callbacks_defining")  # on the trainer: it goes with it
        if known is None or known[0] != held:
            known = trainer.__dict__["_callbacks_defining"] = (held, {})
        found = known[1].get((hook, monitoring))
        if found is None:
            found = [callback for callback in callbacks if defines(callback, hook)]
            if monitoring is True:  # Lightning's split: its monitoring callbacks run after the module's hook
                found = [cb for cb in found if isinstance(cb, EarlyStopping | Checkpoint)]
            elif monitoring is False:
                found = [cb for cb in found if not isinstance(cb, EarlyStopping | Checkpoint)]
            known[1][(hook, monitoring)] = found
        return found

    def _call_callback_hooks(
        trainer: L.Trainer, hook_name: str, *args: Any, monitoring_callbacks: bool | None = None, **kwargs: Any
    ) -> None:
        callbacks = callbacks_defining(trainer, hook_name, monitoring_callbacks)
        if not callbacks:
            return
        pl_module = trainer.lightning_module
        if pl_module:
            previous = pl_module._current_fx_name
            pl_module._current_fx_name = hook_name  # what `self.log` inside a callback's hook is logged under
        profiler = trainer.profiler
        timed = type(profiler) is not PassThroughProfiler  # a subclass may record what it is given
        for callback in callbacks:
            fn = getattr(callback, hook_name)
            if not callable(fn):
                continue
            if timed:
                with profiler.profile(f"[Callback]{callback.state_key}.{hook_name}"):
                    fn(trainer, trainer.lightning_module, *args, **kwargs)
            else:
                fn(trainer, trainer.lightning_module, *args, **kwargs)
        if pl_module:
            pl_module._current_fx_name = previous

    _call_callback_hooks.skips_empty_hooks = True
    _call_callback_hooks.original = original  # for the test that compares the two
    call._call_callback_hooks = _call_callback_hooks


# Where Lightning 2.6 imports `is_param_in_hook_signature` and calls it at every step or `self.log`
_SIGNATURE_READERS = (
    "lightning.pytorch.core.module",
    "lightning.pytorch.loops.training_epoch_loop",
    "lightning.pytorch.loops.evaluation_loop",
    "lightning.pytorch.loops.utilities",
)


def cached_hook_signatures() -> None:
    """Make Lightning's look-ups of a hook's parameters read a cache. Idempotent.
    Why: Lightning inspects `training_step`'s signature (`inspect.signature`, about 10 µs) at every training step
    and at every `self.log` during training, and the evaluation step's at every evaluation batch, through
    `is_param_in_hook_signature`, which the modules in `_SIGNATURE_READERS` import under that name (Lightning
    2.6). A function's parameters do not change, so each (function, question) is answered once."""
    import importlib

    from lightning.pytorch.utilities import signature_utils

    original = signature_utils.is_param_in_hook_signature
    answers: dict[tuple, bool] = {}

    def is_param_in_hook_signature(
        hook_fx: Any, param: str, explicit: bool = False, min_args: int | None = None
    ) -> bool:
        key = (getattr(hook_fx, "__func__", hook_fx), param, explicit, min_args)
        try:
            return answers[key]
        except KeyError:
            found = answers[key] = original(hook_fx, param, explicit, min_args)
            return found
        except TypeError:  # an unhashable callable: asked each time
            return original(hook_fx, param, explicit, min_args)

    is_param_in_hook_signature.cached = True
    for name in _SIGNATURE_READERS:
        module = importlib.import_module(name)
        if not getattr(module.is_param_in_hook_signature, "cached", False):
            module.is_param_in_hook_signature = is_param_in_hook_signature


def quiet_library_notices() -> None:
    """Drop Lightning's start-up notices that tell a user nothing to act on, and a deprecation warning that Lightning
    itself triggers. Idempotent.
    Why: these log records have no switch (Lightning 2.6): the "💡 Tip: For seamless cloud" advert, which devices
    exist (`GPU available: False, used: False` on every command; a GPU present but unused is still warned of),
    "Loading `train_dataloader` to estimate number of stepping batches", and the notice that a model summary
    callback is configured. `CombinedLoader`'s `_pytree.LeafSpec()` raises torch 2.14's FutureWarning, ignored
    from that module only."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _Notices) for f in logger.filters):
        logger.addFilter(_Notices())
    warnings.filterwarnings(
        "ignore",
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        FutureWarning,
        r"lightning\.pytorch\.utilities\._pytree",
    )


class _Notices(logging.Filter):
    DROPPED = (
        "💡 Tip: For seamless cloud",
        "GPU available: ",
        "TPU available: ",
        "HPU available: ",
        "Loading `train_dataloader` to estimate number of stepping batches",
        "Trainer already configured with model summary callbacks",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.DROPPED)


# --- LitData -------------------------------------------------------------------------------------


def streaming_loader_position(loader: Any) -> tuple[int, int, int, int]:
    """Where a LitData `StreamingDataLoader` stands: what its `state_dict` is computed from.
    Why: the loader counts the samples it handed out, so a checkpoint saved after an error in the middle of a
    step would skip the batch in progress; it has no public way to go back. Private `_num_samples_yielded_streaming`
    and `_latest_worker_idx`, beside `current_epoch` and its dataset's (litdata 0.2)."""
    return (
        loader.current_epoch,
        loader.dataset.current_epoch,
        loader._num_samples_yielded_streaming,
        loader._latest_worker_idx,
    )


def set_streaming_loader_position(loader: Any, position: tuple[int, int, int, int]) -> None:
    """Put a LitData `StreamingDataLoader` back where `streaming_loader_position` found it (see there)."""
    loader.current_epoch, loader.dataset.current_epoch = position[0], position[1]
    loader._num_samples_yielded_streaming, loader._latest_worker_idx = position[2], position[3]


def litdata_storage(url: str, storage_options: dict[str, Any] | None) -> Any:
    """LitData's own client for an object-storage URL (`s3://`, `gs://`, `r2://`), with `storage_options` passed
    through as its chunk reader and writer take them: `upload_file`, `download_file`, `exists`.
    Why: `optimized.json` beside the chunks must go through the same client, endpoint and credentials as the chunks;
    LitData picks it in the private `litdata.streaming.fs_provider._get_fs_provider` (litdata 0.2)."""
    from litdata.streaming.fs_provider import _get_fs_provider

    return _get_fs_provider(url, storage_options)


def allow_http_object_storage() -> None:
    """Let LitData's obstore downloads reach an `http://` S3-compatible endpoint (MinIO, a local test server).
    Why: LitData builds obstore's `S3Store` with its private `_OBSTORE_CLIENT_OPTIONS` (litdata 0.2), which replace
    every client option, so neither the endpoint's scheme nor `AWS_ALLOW_HTTP` can allow plain HTTP: each chunk
    download failed with `GenericError: ... HTTP error: builder error`. Reaches DataLoader workers forked after it."""
    from litdata.streaming import downloader

    options = getattr(downloader, "_OBSTORE_CLIENT_OPTIONS", None)
    if isinstance(options, dict):
        options["allow_http"] = "true"


# --- Optuna --------------------------------------------------------------------------------------


def fail_running_trial(study: Any, trial: Any) -> Any:
    """Mark a `running` trial of `study` failed; returns it as it is now, or None if it had ended already.
    Why: a restarted sweep knows a trial on its own host is dead; public `fail_stale_trials` waits out two
    heartbeats. Private `Study._storage`, `FrozenTrial._trial_id` (Optuna 4)."""
    import optuna

    try:
        study._storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    return study._storage.get_trial(trial._trial_id)


# --- jsonargparse ----------------------------------------------------------------------------------


def unrequire_arguments(add_kwargs: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """`add_class_arguments` keyword arguments under which the parameters `names` are not required.
    Why: a net's sizes come from the data after parsing (project/engine/sizes.py). The private keyword
    `linked_targets` (jsonargparse 4.x) exempts them; a real link fails on builder functions (`resnet18`)."""
    return {**add_kwargs, "linked_targets": set(add_kwargs.get("linked_targets") or ()) | names}


def option_strings(parser: Any) -> list[str]:
    """Every option string an argparse (or jsonargparse) parser accepts, e.g. `--trainer.max_epochs`.
    Why: to suggest the key a mistyped one was close to; only the private `_option_string_actions` lists them."""
    return list(parser._option_string_actions)


# --- torch ---------------------------------------------------------------------------------------


def foreach_lerp_(targets: list[Tensor], ends: list[Tensor], weight: float) -> None:
    """`t += weight * (end - t)` for each pair, in one fused kernel per device and dtype (in place).
    Why: Lookahead averages every tensor every few steps; private `torch._foreach_lerp_` (torch 2.x), as
    torch's own optimizers use, instead of two kernels per tensor."""
    torch._foreach_lerp_(targets, ends, weight)


def foreach_copy_(targets: list[Tensor], sources: list[Tensor]) -> None:
    """Copy each source into its target in one fused kernel per device and dtype (see `foreach_lerp_`)."""
    torch._foreach_copy_(targets, sources)


def keep_batch(batch: T) -> T:
    """The `collate_fn` for datasets with `__getitems__`: the fetcher already returned a batch.
    Why: torch's private `_MapDatasetFetcher` (2.x) calls `__getitems__(indices)` when present, so a set
    gathers or pads a batch at once; undocumented."""
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

Why: pickles name numpy's private reconstruction functions, `numpy.core.*` (numpy 1) or `numpy._core.*` (2).
"""


def numpy_pickle_module(module: str) -> str:
    """Where a pickle's numpy module lives in the installed numpy.
    Why: numpy 2 renamed `numpy.core` to `numpy._core`, and its shim warns on each access."""
    import numpy as np

    if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
        return module.replace("numpy.core", "numpy._core", 1)
    return module


def stop_rich_bar(bar: Any) -> None:
    """End a RichProgressBar's live display now, as its `teardown` would, so that it is not drawn again after
    the run summary. Why: only the private `_stop_progress` does it, and readies a fresh start (Lightning 2.6)."""
    bar._stop_progress()
