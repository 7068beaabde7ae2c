"""Each private Lightning/torch/numpy behaviour in project/engine/internals.py still exists and still does what
the project relies on. A failure names the entry to rewrite after an upgrade."""

import importlib
import io
import pickle

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from project.engine import internals
from tests.extras import needs_extra

# (module, attribute path, the internals entry that leans on it)
PRIVATE_NAMES = [
    (
        "lightning.pytorch.trainer.connectors.checkpoint_connector",
        "_CheckpointConnector._hpc_resume_path",
        "hpc_resume_path",
    ),
    (
        "lightning.pytorch.trainer.connectors.checkpoint_connector",
        "_CheckpointConnector.restore_callbacks",
        "leave_checkpoint_callback_states",
    ),
    ("lightning.pytorch.cli", "LightningCLI._dump_config", "freeze_cli_hparams"),
    ("lightning.pytorch.cli", "LightningCLI._parse_ckpt_path", "without_checkpoint_hparams"),
    ("lightning.pytorch.cli", "_InstantiatorFn", "checkpoint_hparams_config"),
    ("jsonargparse._signatures", "SignatureArguments._add_signature_parameter", "unrequire_arguments"),
    ("lightning.pytorch.utilities.combined_loader", "CombinedLoader._load_state_dicts", "restore_train_loader_state"),
    ("lightning.pytorch.loops.fit_loop", "_FitLoop.total_batch_idx", "total_batch_index"),
    ("lightning.pytorch.loops.fit_loop", "_set_sampler_epoch", "expose_epoch_sampler"),
    ("lightning.pytorch.callbacks", "ModelCheckpoint._monitor_candidates", "save_latest_checkpoint_now"),
    ("lightning.pytorch.callbacks", "ModelCheckpoint._save_topk_checkpoint", "save_latest_checkpoint_now"),
    ("lightning.pytorch.callbacks", "ModelCheckpoint._save_last_checkpoint", "save_latest_checkpoint_now"),
    ("torch.utils.tensorboard", "SummaryWriter._get_file_writer", "tensorboard_event_writer"),
    ("torch", "_foreach_lerp_", "foreach_lerp_"),
    ("torch", "_foreach_copy_", "foreach_copy_"),
    ("torch.utils.data._utils.fetch", "_MapDatasetFetcher", "keep_batch"),
    ("lightning.pytorch.trainer.connectors.logger_connector.result", "_ResultMetric.to", "cheap_repeated_logging"),
    (
        "lightning.pytorch.trainer.connectors.signal_connector",
        "_SignalConnector._sigterm_notifier_fn",
        "own_stop_signals",
    ),
    ("lightning.pytorch.loops.training_epoch_loop", "_TrainingEpochLoop._broadcast_sigterm_tensor", "own_stop_signals"),
    ("lightning.pytorch.callbacks", "ModelCheckpoint._should_save_on_exception", "save_on_exception_now"),
    ("lightning.pytorch.callbacks", "ModelCheckpoint._save_checkpoint", "save_on_exception_now"),
    ("litdata.streaming.fs_provider", "_get_fs_provider", "litdata_storage"),
    ("litdata.streaming.downloader", "_OBSTORE_CLIENT_OPTIONS", "allow_http_object_storage"),
    ("lightning.pytorch.trainer.call", "_call_callback_hooks", "skip_empty_callback_hooks"),
    *[(name, "is_param_in_hook_signature", "cached_hook_signatures") for name in internals._SIGNATURE_READERS],
]


@pytest.mark.parametrize(("module", "path", "entry"), PRIVATE_NAMES, ids=[e for _, _, e in PRIVATE_NAMES])
def test_private_name_still_exists(module, path, entry):
    owner = importlib.import_module(module)
    for part in path.split("."):
        assert hasattr(owner, part), (
            f"{module}.{path} is gone from the installed version: rewrite project.engine.internals.{entry} "
            f"(lightning {L.__version__}, torch {torch.__version__})."
        )
        owner = getattr(owner, part)


def test_foreach_ops_update_in_place():
    targets, ends = [torch.zeros(3), torch.zeros(2)], [torch.ones(3), torch.full((2,), 4.0)]
    internals.foreach_lerp_(targets, ends, 0.25)
    assert torch.allclose(targets[0], torch.full((3,), 0.25)) and torch.allclose(targets[1], torch.ones(2)), (
        "torch._foreach_lerp_ changed behaviour: rewrite project.engine.internals.foreach_lerp_"
    )
    internals.foreach_copy_(targets, ends)
    assert all(torch.equal(t, e) for t, e in zip(targets, ends, strict=True)), (
        "torch._foreach_copy_ changed behaviour: rewrite project.engine.internals.foreach_copy_"
    )


def test_dataloader_fetches_whole_batches_through_getitems():
    class Batched(Dataset):
        calls: list[list[int]] = []  # noqa: RUF012

        def __len__(self):
            return 6

        def __getitem__(self, index):
            raise AssertionError("DataLoader fetched one sample at a time")

        def __getitems__(self, indices):
            self.calls.append(list(indices))
            return torch.tensor(indices)

    batches = list(DataLoader(Batched(), batch_size=4, collate_fn=internals.keep_batch))
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5]], (
        "DataLoader no longer calls Dataset.__getitems__ with a batch: see project.engine.internals.keep_batch"
    )


def test_lightning_sets_the_epoch_on_an_exposed_sampler():
    from lightning.pytorch.loops.fit_loop import _set_sampler_epoch

    class Order:
        epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

    class Loader:
        pass

    loader, order = Loader(), Order()
    internals.expose_epoch_sampler(loader, order)
    _set_sampler_epoch(loader, 7)
    assert order.epoch == 7, "Lightning no longer calls loader.sampler.set_epoch: see internals.expose_epoch_sampler"


def _fit_tiny(tmp_path, callback: L.Callback, max_steps: int = 3) -> L.Trainer:
    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        default_root_dir=tmp_path,
    )
    trainer.fit(Tiny(), DataLoader(torch.randn(8, 2), batch_size=2))
    return trainer


def test_trainer_internals_answer_during_a_fit(tmp_path):
    seen = {}

    class Probe(L.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["hpc"] = internals.hpc_resume_path(trainer)
            internals.restore_train_loader_state(trainer)  # nothing to restore on a new run: a no-op

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.setdefault("batches", []).append(internals.total_batch_index(trainer))

    trainer = _fit_tiny(tmp_path, Probe())
    for name in ("_combined_loader", "_combined_loader_states_to_load"):
        assert hasattr(trainer.fit_loop, name), f"_FitLoop.{name} is gone: rewrite internals.restore_train_loader_state"
    progress = trainer.fit_loop.epoch_loop.batch_progress
    assert all(hasattr(progress.total, n) for n in ("ready", "started", "processed", "completed")), (
        "Lightning's batch counters changed: rewrite internals.forget_batch_in_progress"
    )
    internals.forget_batch_in_progress(trainer)
    assert seen["hpc"] is None, "internals.hpc_resume_path: no requeue checkpoint should be found"
    assert seen["batches"] == [0, 1, 2], "internals.total_batch_index no longer counts batches from 0"


def test_option_strings_lists_a_parsers_options():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--max_epochs")
    assert {"--help", "--max_epochs"} <= set(internals.option_strings(parser)), "rewrite internals.option_strings"


def test_flatten_batch_indices_accepts_both_shapes():
    assert internals.flatten_batch_indices([[[0, 1], [2]]]) == [0, 1, 2]
    assert internals.flatten_batch_indices([[0, 1], [2]]) == [0, 1, 2]


def test_flatten_batch_indices_matches_what_lightning_passes(tmp_path):
    from lightning.pytorch.callbacks import BasePredictionWriter

    got = {}

    class Writer(BasePredictionWriter):
        def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
            got["indices"] = internals.flatten_batch_indices(batch_indices)

    class Tiny(L.LightningModule):
        def predict_step(self, batch):
            return batch

    trainer = L.Trainer(accelerator="cpu", logger=False, callbacks=[Writer("epoch")], enable_progress_bar=False)
    trainer.predict(Tiny(), DataLoader(torch.arange(5.0), batch_size=2), return_predictions=False)
    assert got["indices"] == [0, 1, 2, 3, 4], "Lightning's batch_indices shape changed: see flatten_batch_indices"


def test_numpy_array_pickles_need_only_the_allowed_globals():
    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            allowed = internals.NUMPY_ARRAY_PICKLE_GLOBALS | {("_codecs", "encode")}  # protocol 2 stores bytes so
            assert (module, name) in allowed, (
                f"numpy pickles now name {module}.{name}: add it to internals.NUMPY_ARRAY_PICKLE_GLOBALS"
            )
            return super().find_class(internals.numpy_pickle_module(module), name)

    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        array = np.arange(6, dtype=np.uint8).reshape(2, 3)
        loaded = Recorder(io.BytesIO(pickle.dumps({"data": array}, protocol=protocol))).load()
        assert np.array_equal(loaded["data"], array)
    for module in ("numpy.core.multiarray", "numpy.core.numeric"):
        importlib.import_module(internals.numpy_pickle_module(module))


def test_loggers_keep_an_unset_version_in_version(tmp_path):
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    for kind in (TensorBoardLogger, CSVLogger):
        logger = kind(tmp_path, name="runs")
        assert internals.logger_version_unset(logger), f"rewrite internals.logger_version_unset ({kind})"
        internals.set_logger_version(logger, 7)
        assert logger.version == 7 and logger.log_dir.endswith("version_7")
        assert not internals.logger_version_unset(kind(tmp_path, name="runs", version=3))


def test_repeated_logging_skips_the_move_and_still_moves_when_needed():
    from lightning.pytorch.trainer.connectors.logger_connector.result import _Metadata, _ResultMetric
    from torchmetrics.classification import MulticlassAccuracy

    internals.cheap_repeated_logging()
    internals.cheap_repeated_logging()  # idempotent: one wrapper, not two
    cpu, meta = torch.device("cpu"), torch.device("meta")
    record = _ResultMetric(_Metadata(fx="training_step", name="train/loss"), is_tensor=True)
    assert record.to(cpu) is record and record.value.device == cpu
    record.to(meta)  # another device: Lightning's own move runs, state and defaults alike
    assert record.value.device == meta and all(v.device == meta for v in record._defaults.values())
    accuracy = _ResultMetric(_Metadata(fx="training_step", name="train/acc"), is_tensor=False)
    accuracy.value = MulticlassAccuracy(3)
    assert accuracy.to(cpu) is accuracy and accuracy.value.device == cpu


def test_request_stop_after_this_step_sets_what_the_training_loop_reads():
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert trainer.received_sigterm is False
    internals.request_stop_after_this_step(trainer)
    assert trainer.received_sigterm is True, "rewrite project.engine.internals.request_stop_after_this_step"


def test_own_stop_signals_keeps_lightnings_sigterm_handling_out():
    """Lightning 2.6 broadcasts from inside its SIGTERM handler (PR #20825, issue #20806) and before every batch:
    after `own_stop_signals`, its handler calls the one it found (the project's) and nothing else."""
    import signal

    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        internals.own_stop_signals(trainer)
        trainer._signal_connector.register_signal_handlers()
        signal.raise_signal(signal.SIGTERM)
        assert calls == [signal.SIGTERM], "Lightning's SIGTERM handler no longer calls the handler it found"
        assert trainer.received_sigterm is False, (
            "Lightning's SIGTERM notifier still runs (it broadcasts from the signal handler, issue #20806): "
            "rewrite project.engine.internals.own_stop_signals"
        )
        assert trainer.fit_loop.epoch_loop._broadcast_sigterm_tensor() is None
    finally:
        trainer._signal_connector.teardown()
        signal.signal(signal.SIGTERM, previous)


def _sample(i: int) -> dict:
    return {"x": i}


@pytest.mark.slow  # LitData's optimize takes a while
def test_a_streaming_loader_goes_back_to_a_position(tmp_path):
    """internals.streaming_loader_position / set_streaming_loader_position: LitData's state after going back
    is the state it had there (what StopBetweenSteps saves after an error in the middle of a step)."""
    litdata = needs_extra("litdata")

    litdata.optimize(
        fn=_sample, inputs=list(range(12)), output_dir=str(tmp_path / "c"), chunk_bytes="1MB", num_workers=1
    )
    loader = litdata.StreamingDataLoader(litdata.StreamingDataset(str(tmp_path / "c"), shuffle=True), batch_size=3)
    batches = iter(loader)
    next(batches), next(batches)
    position, state = internals.streaming_loader_position(loader), loader.state_dict()
    next(batches)
    assert loader.state_dict() != state
    internals.set_streaming_loader_position(loader, position)
    assert loader.state_dict() == state, "rewrite internals.streaming_loader_position (litdata's loader changed)"


def test_allow_http_object_storage_adds_the_client_option():
    needs_extra("litdata")
    from litdata.streaming import downloader

    internals.allow_http_object_storage()
    assert downloader._OBSTORE_CLIENT_OPTIONS.get("allow_http") == "true", "rewrite allow_http_object_storage"


def test_empty_callback_hooks_are_skipped_and_defined_ones_run_in_lightnings_order(tmp_path):
    """Run before the patch and after it, a fit calls the same hooks that do something, in the same order, with the
    same `_current_fx_name` (where `self.log` in a callback's hook logs); the base class's empty hooks are not
    called, so the profiler never times them."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.profilers import PassThroughProfiler

    class Actions(PassThroughProfiler):
        def __init__(self):
            super().__init__()
            self.names = []

        def start(self, action_name):
            self.names.append(action_name)

    def fit(patched: bool) -> tuple[list, list]:
        calls = []

        class Defines(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                calls.append(("class", batch_idx, pl_module._current_fx_name))

            def on_train_epoch_end(self, trainer, pl_module):
                calls.append(("epoch end", trainer.current_epoch, pl_module._current_fx_name))

        class Empty(L.Callback):
            pass

        class Checkpoints(ModelCheckpoint):  # a monitoring callback: after the module's on_train_epoch_end
            def on_train_epoch_end(self, trainer, pl_module):
                calls.append(("checkpoint epoch end", trainer.current_epoch, pl_module._current_fx_name))

        own = Empty()
        own.on_train_start = lambda trainer, pl_module: calls.append(("instance", 0, pl_module._current_fx_name))
        profiler = Actions()
        if patched:
            internals.skip_empty_callback_hooks()
        trainer = L.Trainer(
            max_epochs=2,
            limit_train_batches=2,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[Defines(), Empty(), own, Checkpoints(dirpath=tmp_path / f"ckpt{patched}")],
            profiler=profiler,
            default_root_dir=tmp_path,
        )
        _fit_tiny_with(trainer)
        empty = [n.rsplit(".", 2) for n in profiler.names if n.startswith("[Callback]")]
        return calls, {hook for *_, owner, hook in empty if owner == "Empty"}

    from lightning.pytorch.trainer import call

    original = call._call_callback_hooks
    try:
        call._call_callback_hooks = getattr(original, "original", original)
        before, empty_before = fit(patched=False)
    finally:
        call._call_callback_hooks = original
    after, empty_after = fit(patched=True)
    assert before == after, "rewrite project.engine.internals.skip_empty_callback_hooks: the hooks run differently"
    assert ("instance", 0, "on_train_start") in after and ("checkpoint epoch end", 1, "on_train_epoch_end") in after
    assert len(empty_before) > 10 and empty_after == {"on_train_start"}, "the empty hooks are still called"
    internals.skip_empty_callback_hooks()  # idempotent
    assert call._call_callback_hooks.skips_empty_hooks


def _fit_tiny_with(trainer: L.Trainer) -> None:
    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer.fit(Tiny(), DataLoader(torch.randn(8, 2), batch_size=2))


def test_hook_signatures_are_read_once_and_answered_as_lightning_does():
    import importlib

    from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature as original

    class Module:
        def training_step(self, batch, batch_idx):
            pass

        def takes_iterator(self, dataloader_iter):
            pass

    internals.cached_hook_signatures()
    internals.cached_hook_signatures()  # idempotent
    for name in internals._SIGNATURE_READERS:
        cached = importlib.import_module(name).is_param_in_hook_signature
        assert getattr(cached, "cached", False), f"{name} still inspects signatures at every call"
        for fx in (Module().training_step, Module().takes_iterator):
            for question in (("batch_idx",), ("batch_idx", False, 2), ("dataloader_iter", True)):
                assert cached(fx, *question) == original(fx, *question)
