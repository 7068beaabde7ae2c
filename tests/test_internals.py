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
    ("lightning.pytorch.loops.fit_loop", "_FitLoop._load_combined_loader_states", "restore_train_loader_state"),
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

    _fit_tiny(tmp_path, Probe())
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


def test_the_interrupt_message_is_rewritten(caplog):
    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    internals.clean_interrupt_messages()
    with caplog.at_level("INFO"):
        rank_zero_info("An SIGTERMException was raised with message:             , saved checkpoint to /r/last.ckpt")
    assert caplog.messages[-1] == (
        "Interrupted (stopped by SIGTERM); saved /r/last.ckpt. Resume it with:\n"
        "  python -m project.cli fit --ckpt_path /r/last.ckpt"
    ), "the resume is a command to copy, on a line of its own"


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
