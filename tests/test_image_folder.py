"""ImageFolder: users' own images in class folders, decoded once, with clear errors for bad files."""

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from project.engine.cli import main
from project.engine.data import ImageDataModule, ImageFolder
from project.engine.data.image_files import decode_image_file
from tests.conftest import real_data_file
from tests.image_tree import CLASSES, to_pil, truncate, write_image_tree


def folder_data(root, image_size=32, skip_bad_files=False, val_fraction=0.1, **kwargs) -> ImageDataModule:
    """A folder tree plugged into the image DataModule (`val_fraction` is its `val_size` share)."""
    return ImageDataModule(ImageFolder(root, image_size, skip_bad_files), val_size=val_fraction, **kwargs)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_image_tree(tmp_path / "images")


def test_classes_are_known_after_init_without_decoding_anything(tree):
    truncate(tree / "square" / "001.jpg")  # would fail setup, but __init__ reads only folder names
    dm = folder_data(tree)
    assert dm.classes == CLASSES and dm.num_classes == 3


def test_setup_decodes_resizes_and_splits_with_a_seed(tree):
    (tree / "circle" / ".DS_Store").write_bytes(b"\0junk")  # hidden files are not data
    dm = folder_data(tree, image_size=16, val_fraction=0.25, batch_size=4, seed=3)
    dm.setup("fit")
    assert dm.train_set.inputs.shape == (18, 3, 16, 16) and dm.train_set.inputs.dtype == torch.uint8
    assert len(dm.val_set) == 6
    assert torch.bincount(torch.cat([dm.train_set.labels, dm.val_set.labels])).tolist() == [8, 8, 8]
    # Same seed, same split; another seed, another split
    again = folder_data(tree, image_size=16, val_fraction=0.25, seed=3)
    again.setup("fit")
    assert torch.equal(again.val_set.inputs, dm.val_set.inputs)
    other = folder_data(tree, image_size=16, val_fraction=0.25, seed=4)
    other.setup("fit")
    assert not torch.equal(other.val_set.inputs, dm.val_set.inputs)
    # The class colour survives decoding: red channel dominates class 0 (circle)
    red = dm.train_set.inputs[dm.train_set.labels == 0].float().mean((0, 2, 3))
    assert red[0] > 150 and red[1] < 100
    batch = next(iter(dm.train_dataloader()))
    assert batch[0].shape == (4, 3, 16, 16)


def test_train_val_test_layout(tmp_path):
    write_image_tree(tmp_path / "train", per_class=6)
    write_image_tree(tmp_path / "val", per_class=2, seed=1)
    write_image_tree(tmp_path / "test", per_class=3, seed=2)
    dm = folder_data(tmp_path, image_size=8)
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (18, 6, 9)
    assert dm.test_set.labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3


def test_missing_test_folder_says_what_to_do(tree):
    dm = folder_data(tree)
    with pytest.raises(FileNotFoundError, match=r"ImageFolder has no test split.*root/test/<class>/.*validate"):
        dm.setup("test")


def test_skip_bad_files_logs_every_skipped_file(tree, caplog):
    bad = [truncate(tree / "circle" / "000.png"), truncate(tree / "square" / "003.jpg")]
    (tree / "triangle" / "notes.txt").write_text("not an image")
    bad.append(tree / "triangle" / "notes.txt")
    with pytest.raises(ValueError, match="not an image file"):
        folder_data(tree).setup("fit")  # by default the first bad file stops setup
    dm = folder_data(tree, skip_bad_files=True, val_fraction=0.2)
    with caplog.at_level(logging.WARNING, logger="project.engine.data.image_files"):
        dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 3 * 8 - 2
    for path in bad:
        assert any(str(path) in record.getMessage() for record in caplog.records), f"{path} skipped silently"
    assert any("Skipped 2 unreadable file(s)" in record.getMessage() for record in caplog.records)


def test_class_left_without_readable_images_is_an_error(tmp_path):
    tree = write_image_tree(tmp_path / "images", per_class=2)
    for path in (tree / "square").iterdir():
        truncate(path)
    with pytest.raises(ValueError, match=r"No readable image is left in .*square"):
        folder_data(tree, skip_bad_files=True, val_fraction=0.2).setup("fit")


# The net and training of an image task, stated here: the default recipe is a fork's to change
IMAGE_TASK = """
model:
  class_path: project.tasks.classification.Classifier
  init_args:
    net: {class_path: project.models.ResNet}
    optimizer: {class_path: torch.optim.SGD, init_args: {lr: 0.2, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}}
    scheduler:
      class_path: torch.optim.lr_scheduler.OneCycleLR
      init_args: {max_lr: 0.2, pct_start: 0.25, anneal_strategy: linear, div_factor: 25.0, final_div_factor: 1000.0}
    label_smoothing: 0.2
checkpoint: {monitor: val/acc, mode: max}
"""


def test_fit_then_test_a_checkpoint_through_the_cli(tmp_path):
    """The user's flow: fit on train/ (validation split off it), then `test --ckpt_path` on test/,
    normalised with the statistics saved in the checkpoint; the head is sized from the folders."""
    write_image_tree(tmp_path / "images" / "train", per_class=8)
    write_image_tree(tmp_path / "images" / "test", per_class=4, seed=1)
    cli = main(
        [
            "fit",
            "--config",
            IMAGE_TASK,
            "--data=project.engine.data.ImageDataModule",
            "--data.source=project.engine.data.ImageFolder",
            f"--data.source.init_args.root={tmp_path / 'images'}",
            "--data.source.init_args.image_size=16",
            "--data.batch_size=6",
            "--data.val_size=0.25",
            "--model.net.init_args.widths=[8,8,8,8]",
            "--trainer.precision=32-true",
            "--trainer.accelerator=cpu",
            "--trainer.max_epochs=6",
            "--trainer.enable_progress_bar=false",
            "--trainer.log_every_n_steps=1",
            f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}",
        ]
    )
    assert cli.model.hparams.num_classes == 3
    assert cli.trainer.lightning_module.net(torch.zeros(1, 3, 16, 16)).shape == (1, 3)
    assert cli.trainer.callback_metrics["val/acc"] > 0.6, "3 colour-coded classes: chance is 1/3"
    last = next((tmp_path / "logs").rglob("last.ckpt"))
    saved = torch.load(last, weights_only=True)["ImageDataModule"]
    assert saved == cli.datamodule.state_dict() and len(saved["mean"]) == 3

    # Images added after training would change measured statistics; the checkpoint's must win
    white = torch.full((3, 20, 24), 255, dtype=torch.uint8)
    for i in range(4):
        to_pil(white).save(tmp_path / "images" / "train" / "circle" / f"new{i}.png")
    tested = main(["test", f"--ckpt_path={last}"])  # the run's config.yaml supplies the data settings
    assert tested.datamodule.state_dict() == saved
    assert tested.trainer.callback_metrics["test/acc"] > 0.6


@pytest.mark.slow
def test_real_jpegs_from_a_cifar10_jpeg_copy(tmp_path):
    archive = real_data_file("cifar10-jpeg.tar.xz")
    if shutil.which("tar") is None:
        pytest.skip("needs the tar command")
    # The test split only (10,000 JPEGs), as a train/ folder: the point is decoding real files
    subprocess.run(["tar", "xJf", str(archive), "-C", str(tmp_path), "test"], check=True)
    (tmp_path / "test").rename(tmp_path / "train")
    dm = folder_data(tmp_path, image_size=32, val_fraction=0.1)
    assert dm.classes[0] == "airplane" and dm.num_classes == 10
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 10_000
    assert dm.train_set.inputs.shape[1:] == (3, 32, 32)
    mean = dm.train_set.inputs.float().mean((0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.49, 0.48, 0.45]), atol=0.03), "CIFAR-10's channel means"


def test_sixteen_bit_greyscale_keeps_its_brightness(tmp_path):
    Image.fromarray(np.full((8, 10), 40000, dtype=np.uint16)).save(tmp_path / "grey16.png")
    image = decode_image_file(tmp_path / "grey16.png", size=8)
    assert image.shape == (3, 8, 8) and image.dtype == torch.uint8
    assert image.unique().tolist() == [40000 >> 8], "scaled to 8 bits, not clipped at 255"


def test_samples_are_named_by_their_file_relative_to_the_root(tmp_path):
    """A predictions CSV names each image by its file, not `test/0`."""
    for split in ("train", "test"):
        write_image_tree(tmp_path / split, per_class=2)
    names = ImageFolder(tmp_path).load("test").names
    assert names[:2] == ["test/circle/000.png", "test/circle/001.jpg"]
