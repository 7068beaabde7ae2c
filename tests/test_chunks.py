"""LitData: any source optimized into chunks (`python -m project.optimize`) and trained from them."""

import json
import sys

import pytest
import torch

from project.engine.cli import main
from project.engine.data import AudioDataModule, ImageDataModule, ImageFolder, LitDataAudio, LitDataImages, WavFolder
from project.engine.data.optimize import main as optimize
from project.engine.errors import ConfigError, DataError
from tests.extras import needs_extra
from tests.image_tree import write_image_tree
from tests.wav_format import write_wav_folder

needs_extra("litdata")  # the `stream` extra


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_image_tree(root / "train", per_class=8)
    write_image_tree(root / "test", per_class=2, seed=1)
    return root


def image_args(root):
    return [
        "--data=project.engine.data.ImageDataModule",
        "--data.source=project.engine.data.ImageFolder",
        f"--data.source.init_args.root={root}",
        "--data.source.init_args.image_size=8",
        "--data.val_size=0.25",
    ]


@pytest.fixture(scope="module")
def chunks(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("chunks")
    optimize([*image_args(tree), f"--output_dir={out}", "--num_workers=1"])
    return out


def test_optimize_writes_every_split_and_what_the_net_needs(chunks, capsys):
    meta = json.loads((chunks / "project.json").read_text())
    assert meta["classes"] == ["circle", "square", "triangle"] and meta["image_size"] == 8
    assert meta["splits"] == {"train": 18, "val": 6, "test": 6} and len(meta["mean"]) == 3
    source = LitDataImages(str(chunks))
    assert source.classes == ("circle", "square", "triangle") and source.mean == tuple(meta["mean"])


def test_a_rerun_leaves_written_splits_as_they_are(tree, chunks, capsys):
    before = {p: p.stat().st_mtime_ns for p in chunks.rglob("*.bin")}
    optimize([*image_args(tree), f"--output_dir={chunks}", "--num_workers=1"])
    assert "already written, left as it is" in capsys.readouterr().err
    assert before == {p: p.stat().st_mtime_ns for p in chunks.rglob("*.bin")}


def test_chunks_serve_the_images_the_files_hold(tree, chunks):
    memory = ImageDataModule(ImageFolder(tree, image_size=8), val_size=0.25, batch_size=3)
    streamed = ImageDataModule(LitDataImages(str(chunks)), in_memory=False, batch_size=3)
    memory.setup("fit"), streamed.setup("fit")
    assert streamed.state_dict() == memory.state_dict()  # the normalisation travels with the chunks

    def images(batches):
        return sorted(tuple(image.flatten().tolist()) for inputs, _ in batches for image in inputs)

    assert images(streamed.val_dataloader()) == images([(memory.val_set.inputs, None)])
    batches = list(streamed.train_dataloader())
    assert len(batches) == 6 and batches[0][0].dtype == torch.uint8 and batches[0][0].shape == (3, 3, 8, 8)
    assert images(batches) == images([(memory.train_set.inputs, None)])


def test_sample_train_images_reads_the_first_chunked_images(chunks):
    """For nets that set a layer from data (airbench's whitening): the first n training images, normalised."""
    data = ImageDataModule(LitDataImages(str(chunks)), in_memory=False, batch_size=3)
    data.setup("fit")
    images = data.sample_train_images(5)
    assert images.shape == (5, 3, 8, 8) and images.dtype == torch.float32
    assert torch.equal(images, data.sample_train_images(5))


def test_litdata_loader_resumes_mid_epoch_exactly(chunks):
    data = ImageDataModule(LitDataImages(str(chunks)), in_memory=False, batch_size=3, num_workers=2)
    data.setup("fit")
    whole = list(data.train_dataloader())
    interrupted = data.train_dataloader()
    iterator = iter(interrupted)
    seen = [next(iterator) for _ in range(2)]
    resumed = data.train_dataloader()
    resumed.load_state_dict(interrupted.state_dict())
    rest = list(resumed)
    assert len(seen) + len(rest) == len(whole)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(seen + rest, whole, strict=True))


def test_wav_folder_chunks_hold_the_clips_at_their_rate(tmp_path):
    root = write_wav_folder(tmp_path / "wavs", per_class=10)
    args = ["--data=project.engine.data.AudioDataModule", "--data.source=project.engine.data.WavFolder"]
    args += [f"--data.source.init_args.root={root}", "--data.sample_rate=8000"]
    meta = optimize([*args, f"--output_dir={tmp_path / 'chunks'}", "--num_workers=1"])
    assert meta["kind"] == "audio" and meta["sample_rate"] == 8000
    memory = AudioDataModule(WavFolder(root), sample_rate=8000)
    streamed = AudioDataModule(LitDataAudio(str(tmp_path / "chunks")), sample_rate=8000, in_memory=False)
    memory.setup("test"), streamed.setup("test")
    (waves, lengths), _ = next(iter(streamed.test_dataloader()))
    assert waves.dtype == torch.float16
    assert sorted(lengths.tolist()) == sorted(len(clip) for clip in memory.test_set.clips)
    with pytest.raises(DataError, match=r"data.sample_rate is 16000 but the chunks' clips are at 8000 Hz"):
        AudioDataModule(LitDataAudio(str(tmp_path / "chunks")), sample_rate=16000, in_memory=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "streams its chunks: set data.in_memory false"),
        ({"num_folds": 2, "fold": 0, "in_memory": False}, "cannot deal folds"),
        ({"flip": "alternating", "in_memory": False}, "use flip: random"),
    ],
)
def test_chunk_settings_that_cannot_work_are_refused(chunks, kwargs, message):
    with pytest.raises(DataError, match=message):
        ImageDataModule(LitDataImages(str(chunks)), **kwargs)


def test_without_litdata_one_line_says_how_to_get_it(chunks, monkeypatch):
    monkeypatch.setitem(sys.modules, "litdata", None)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[stream\]"'):
        LitDataImages(str(chunks))


def test_a_folder_that_is_not_chunks_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"project\.json does not exist"):
        LitDataImages(str(tmp_path))


@pytest.mark.slow
def test_fit_test_and_predict_from_chunks_through_the_cli(chunks, tmp_path):
    args = [
        "--data=project.engine.data.ImageDataModule",
        "--data.source=project.engine.data.LitDataImages",
        f"--data.source.init_args.input_dir={chunks}",
        "--data.in_memory=false",
        "--data.batch_size=6",
        "--model.net=project.models.ResNet",  # its own net, not the default recipe's
        "--model.net.init_args.widths=[8,8,8,8]",
        "--trainer.precision=32-true",
        "--trainer.accelerator=cpu",
        "--trainer.max_epochs=2",
        "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]
    fitted = main(["fit", *args])
    assert fitted.model.hparams.num_classes == 3
    last = next(tmp_path.rglob("last.ckpt"))
    tested = main(["test", f"--ckpt_path={last}"])
    assert "test/acc" in tested.trainer.callback_metrics
    main(["predict", f"--ckpt_path={last}"])
    rows = next(tmp_path.rglob("predictions.csv")).read_text().splitlines()
    assert len(rows) == 1 + 6 and rows[1].startswith("test/")
