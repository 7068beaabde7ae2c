"""What a user sees: TensorBoard pictures, the predictions CSV, the end-of-fit summary, and evaluating
a checkpoint with nothing but its path."""

import csv

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from project import metrics
from project.callbacks.reports import render_confusion_matrix
from project.cli import main
from tests.cifar_format import write_cifar10
from tests.conftest import tiny_cifar_args
from tests.test_cli import _run_dir


def _tags(run_dir) -> dict[str, list[str]]:
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    return events.Tags()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    write_cifar10(root / "data", per_batch=100)
    main(["fit", *tiny_cifar_args(root / "data", root / "logs", epochs=3)])
    return root


def test_fit_logs_confusion_matrices_and_final_hparams(fitted, capsys):
    run = _run_dir(fitted / "logs")
    tags = _tags(run)
    assert "val/confusion_matrix" in tags["images"]
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert len(events.Images("val/confusion_matrix")) == 3, "one per validation epoch, none for the sanity check"
    assert metrics.BEST_VAL_ACC in tags["scalars"], "the HPARAMS tab needs the final metric"


def test_checkpoint_alone_is_enough_to_test_and_predict(fitted, tmp_path, capsys):
    """No config and no model arguments: the widths the run used ([8,16,16,16], not the default
    config's) come from the config.yaml saved beside the checkpoint."""
    ckpt = _run_dir(fitted / "logs") / "checkpoints" / "last.ckpt"
    out = tmp_path / "preds.csv"
    common = [f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.enable_progress_bar=false"]
    tested = main(["test", f"--ckpt_path={ckpt}", *common])
    assert tested.trainer.callback_metrics[metrics.TEST_ACC] > 0.3, "3x chance: the trained weights were loaded"
    assert "test/misclassified" in _tags(_run_dir(tmp_path))["images"]

    predicted = main(["predict", f"--ckpt_path={ckpt}", f"--predictions.output={out}", *common])
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 100, "one row per test image"
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert list(rows[0]) == ["sample", "label", "predicted", "probability", *(f"p_{c}" for c in classes)]
    for row in rows:
        probs = [float(row[f"p_{c}"]) for c in classes]
        assert abs(sum(probs) - 1) < 1e-4 and row["predicted"] == classes[probs.index(max(probs))]
        assert float(row["probability"]) == pytest.approx(max(probs), abs=1e-6)
        assert row["label"] in classes, "the test split's labels are known"
    accuracy = sum(row["label"] == row["predicted"] for row in rows) / len(rows)
    writer = next(c for c in predicted.trainer.callbacks if hasattr(c, "accuracy"))
    assert writer.accuracy == pytest.approx(accuracy), "the printed accuracy is the CSV's"
    assert f"accuracy {accuracy:.4f} on the 100 with a known label" in capsys.readouterr().out


def test_predict_a_folder_of_images(fitted, tmp_path):
    """Any-size images in nested folders, resized to the net's 32x32, named by their path in the CSV."""
    from PIL import Image

    from tests.cifar_format import learnable_images

    rows, _ = learnable_images(3, seed=7)
    folder = tmp_path / "photos"
    (folder / "holiday").mkdir(parents=True)
    for i, row in enumerate(rows):
        image = Image.fromarray(row.reshape(3, 32, 32).transpose(1, 2, 0)).resize((64, 64))
        image.save(folder / ("holiday" if i else ".") / f"img{i}.png")
    ckpt = _run_dir(fitted / "logs") / "checkpoints" / "last.ckpt"
    out = tmp_path / "preds.csv"
    main(
        [
            "predict",
            f"--ckpt_path={ckpt}",
            f"--data.predict_dir={folder}",
            f"--predictions.output={out}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
        ]
    )
    predictions = list(csv.DictReader(out.open()))
    assert [row["sample"] for row in predictions] == ["holiday/img1.png", "holiday/img2.png", "img0.png"]
    assert "label" not in predictions[0], "new files have no known label: no empty column"

    (folder / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.txt is not an image file"):
        main(
            [
                "predict",
                f"--ckpt_path={ckpt}",
                f"--data.predict_dir={folder}",
                f"--trainer.logger.init_args.save_dir={tmp_path}",
            ]
        )


def test_summary_names_the_best_checkpoint_and_the_test_command(tmp_path, capsys):
    write_cifar10(tmp_path / "data", per_batch=40)
    args = tiny_cifar_args(tmp_path / "data", tmp_path / "logs", epochs=1)
    main(["fit", *[a for a in args if "val_size" not in a], "--data.val_size=40"])
    out = capsys.readouterr().out
    best = next((_run_dir(tmp_path / "logs") / "checkpoints").glob("best-*.ckpt"))
    assert f"Best {metrics.VAL_ACC}:" in out
    assert f"python -m project.cli test --ckpt_path {best}" in out
    assert f"tensorboard --logdir {_run_dir(tmp_path / 'logs')}" in out


def test_confusion_matrix_picture_has_a_cell_per_pair():
    counts = torch.tensor([[5, 1, 0], [0, 3, 3], [1, 0, 9]])
    image = render_confusion_matrix(counts, ["cat", "dog", "a-long-class-name"], cell=40)
    assert image.dtype == torch.uint8 and image.shape[0] == 3
    assert image.shape[1] >= 3 * 40 and image.shape[2] >= 3 * 40
    # The diagonal of a mostly-right row is darker than an empty off-diagonal cell
    w = image.shape[2]
    margin = w - 3 * 40 - 1
    cell = lambda i, j: image[:, margin + i * 40 + 2, margin + j * 40 + 2].float().mean()  # noqa: E731
    assert cell(2, 2) < cell(2, 1)
