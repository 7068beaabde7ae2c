"""What a user sees: TensorBoard pictures, the predictions CSV, the end-of-fit summary, and evaluating
a checkpoint with nothing but its path. On the tests' own tiny recipe (tests/recipes.py)."""

import csv
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from project.engine.callbacks.figures import confusion_matrix
from project.engine.cli import main
from project.tasks.classification import metrics
from tests.recipes import CLASSES, run_dir, tiny_args


def _tags(run_dir) -> dict[str, list[str]]:
    events = EventAccumulator(str(run_dir / "fit"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    return events.Tags()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    main([
        "fit", *tiny_args(root / "logs", epochs=3), "--model.net.init_args.hidden=12",
        "--trainer.callbacks+=project.tasks.classification.ConfusionMatrixImage",
    ])  # fmt: skip
    return root


def test_fit_logs_confusion_matrices_and_final_hparams(fitted, capsys):
    run = run_dir(fitted / "logs")
    tags = _tags(run)
    assert "val/confusion_matrix" in tags["images"]
    events = EventAccumulator(str(run / "fit"), size_guidance={"images": 0})
    events.Reload()
    # Three validations within a few seconds: under the 60 s between pictures, so only the last one
    # is drawn, when the fit ends, at the final step (none for the sanity check)
    (image,) = events.Images("val/confusion_matrix")
    final = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert image.step == final
    assert metrics.BEST_VAL_ACC in tags["scalars"], "the HPARAMS tab needs the final metric"
    assert not [tag for tag in tags["scalars"] if tag.startswith("hp/")], "no card of its own above the curves"


def test_hparams_table_has_no_bookkeeping_columns(fitted):
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    events = EventAccumulator(str(run_dir(fitted / "logs") / "fit"), size_guidance={"tensors": 0})
    events.Reload()
    content = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    hparams = HParamsPluginData.FromString(content).session_start_info.hparams
    columns = set(hparams)
    assert not [c for c in columns if c.startswith("_")], columns
    # the classes by name (TensorBoard cuts a class path), their arguments only where they differ from the default
    assert hparams["net"].string_value == "TinyNet" and hparams["optimizer"].string_value == "SGD", columns
    assert "net/hidden" in columns and "optimizer/lr" in columns and "trainer/max_epochs" in columns, columns
    assert not {"compile", "optimizer/differentiable", "optimizer/maximize", "optimizer/foreach"} & columns, columns
    assert not [c for c in columns if "init_args" in c or c.endswith(("root", "num_workers"))], columns


def test_the_best_value_is_drawn_at_its_validation_not_at_step_0(fitted):
    events = EventAccumulator(str(run_dir(fitted / "logs") / "fit"))
    events.Reload()
    (best,) = events.Scalars(metrics.BEST_VAL_ACC)
    validations = events.Scalars(metrics.VAL_ACC)
    assert best.step > 0 and best.step in {v.step for v in validations}, (best.step, [v.step for v in validations])
    assert best.value == max(v.value for v in validations)


def test_checkpoint_alone_is_enough_to_test_and_predict(fitted, tmp_path, capsys):
    """No model arguments: the net the run used (hidden=12, not the recipe's 16) comes from the
    config.yaml saved beside the checkpoint. The tiny recipe's net lives in tests/, outside the
    packages a config picked up by itself may name, so the test passes that config explicitly, as a
    user who trusts it would (tests/test_cli.py covers the implicit pick-up with project nets)."""
    run = run_dir(fitted / "logs")
    ckpt = run / "checkpoints" / "last.ckpt"
    out = tmp_path / "preds.csv"
    common = [
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
    ]
    tested = main(["test", f"--config={run / 'config.yaml'}", f"--ckpt_path={ckpt}", *common])
    printed = capsys.readouterr().out
    # each metric once (no Lightning table), then the run folder whose sub-run `test/` it logged to
    assert f"Test\n  {metrics.TEST_ACC}:" in printed and printed.count(metrics.TEST_ACC) == 1, printed
    assert f"TensorBoard:  tensorboard --logdir {Path(tested.trainer.logger.log_dir).parent}\n" in printed
    assert tested.trainer.callback_metrics[metrics.TEST_ACC] > 0.8, "2.4x chance: the trained weights were loaded"
    # A run's record holds no `ckpt_path: null`, so a --config given after --ckpt_path cannot undo it
    assert "ckpt_path" not in (run / "config.yaml").read_text()
    reordered = main(["test", f"--ckpt_path={ckpt}", f"--config={run / 'config.yaml'}", *common])
    assert reordered.trainer.callback_metrics[metrics.TEST_ACC] == tested.trainer.callback_metrics[metrics.TEST_ACC]

    predicted = main(
        ["predict", f"--config={run / 'config.yaml'}", f"--ckpt_path={ckpt}", f"--predictions.output={out}", *common]
    )
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 100, "one row per test sample"
    classes = list(CLASSES)
    assert list(rows[0]) == ["sample", "label", "predicted", "probability", *(f"p_{c}" for c in classes)]
    for row in rows:
        probs = [float(row[f"p_{c}"]) for c in classes]
        assert abs(sum(probs) - 1) < 1e-4 and row["predicted"] == classes[probs.index(max(probs))]
        assert float(row["probability"]) == pytest.approx(max(probs), abs=1e-6)
        assert row["label"] in classes, "the test split's labels are known"
    accuracy = sum(row["label"] == row["predicted"] for row in rows) / len(rows)
    writer = next(c for c in predicted.trainer.callbacks if hasattr(c, "summary"))
    assert writer.summary == f"accuracy {accuracy:.4f} on the 100 with a known label", (
        "the printed accuracy is the CSV's"
    )
    printed = capsys.readouterr().out
    assert f"accuracy {accuracy:.4f} on the 100 with a known label" in printed
    assert f"written to {out}" in printed, "predict says where it wrote"


def test_summary_names_the_best_checkpoint_and_the_next_commands(tmp_path, capsys):
    main(["fit", *tiny_args(tmp_path / "logs", epochs=1), "--data.val_size=40"])
    out = capsys.readouterr().out
    best = next((run_dir(tmp_path / "logs") / "checkpoints").glob("best-*.ckpt"))
    assert f"Best {metrics.VAL_ACC}:" in out
    assert "Trained:      1 epoch, " in out
    assert f"python -m project.cli test --ckpt_path {best}" in out
    assert f"python -m project.cli predict --ckpt_path {best}" in out
    assert f"tensorboard --logdir {run_dir(tmp_path / 'logs')}" in out


def test_a_fit_stopped_before_its_first_validation_names_last_ckpt_for_the_next_commands(tmp_path, capsys):
    main(["fit", *tiny_args(tmp_path / "logs", epochs=1), "--trainer.check_val_every_n_epoch=5"])
    out = capsys.readouterr().out
    last = run_dir(tmp_path / "logs") / "checkpoints" / "last.ckpt"
    assert f"Checkpoint:   {last} (no validation ran, so none is best by {metrics.VAL_ACC})" in out, out
    assert f"python -m project.cli test --ckpt_path {last}" in out
    assert f"python -m project.cli predict --ckpt_path {last}" in out


def test_confusion_matrix_picture_is_readable_at_tensorboards_size():
    counts = torch.tensor([[5, 1, 0], [0, 3, 3], [1, 0, 9]])
    image = torch.from_numpy(confusion_matrix(counts, ["cat", "dog", "a-long-class-name"]))
    assert image.dtype == torch.uint8 and image.shape[0] == 3
    assert 300 <= image.shape[1] <= 1600 and 300 <= image.shape[2] <= 1700, image.shape
    normalized = torch.from_numpy(confusion_matrix(counts, ["cat", "dog", "a-long-class-name"], normalize=True))
    assert normalized.shape == image.shape and not torch.equal(normalized, image), "shares, not counts, in the cells"
