"""Streaming from files (`data.in_memory: false`): the same data, order, folds and resume as in memory."""

import pytest
import torch

from project.engine.cli import main
from project.engine.data import (
    AudioDataModule,
    ImageDataModule,
    ImageFolder,
    ImageSource,
    Samples,
    WavFolder,
    streaming,
)
from project.engine.data.loaders import ResumableLoader
from project.engine.errors import DataError
from tests.image_tree import write_image_tree
from tests.wav_format import write_wav_folder


class UnlistedImages(ImageSource):
    """Images that come as one decoded set (as from one archive), with no files to list."""

    classes = ("a", "b")
    image_size = 8

    def load(self, split: str) -> Samples | None:
        return Samples(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))


def images(root, **kwargs) -> ImageDataModule:
    kwargs = {"batch_size": 4, "val_size": 0.25, "mean": (0.5,) * 3, "std": (0.25,) * 3, **kwargs}
    return ImageDataModule(ImageFolder(root, image_size=8), **kwargs)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_image_tree(tmp_path_factory.mktemp("images"), per_class=6)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    return write_wav_folder(tmp_path_factory.mktemp("wavs"), per_class=6)


def batches(loader, epoch=0):
    loader.sampler.set_epoch(epoch) if hasattr(loader.sampler, "set_epoch") else None
    return list(loader)


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("flip", ["random", "alternating"])
def test_streamed_images_are_the_in_memory_batches(tree, flip):
    memory, streamed = images(tree, flip=flip), images(tree, flip=flip, in_memory=False, num_workers=1)
    for data in (memory, streamed):
        data.setup("fit")
    assert streamed.train_set.names == memory.train_set.names
    assert streamed.val_set.names == memory.val_set.names
    for epoch in (0, 1):
        assert same(batches(streamed.train_dataloader(), epoch), batches(memory.train_dataloader(), epoch))
    assert same(list(streamed.val_dataloader()), list(memory.val_dataloader()))


def test_measured_statistics_match_on_a_small_set(tree):
    memory, streamed = images(tree, mean=None, std=None), images(tree, mean=None, std=None, in_memory=False)
    memory.setup("fit"), streamed.setup("fit")
    assert streamed.state_dict() == memory.state_dict()  # fewer images than the streamed sample: all measured


def test_streamed_folds_are_the_in_memory_folds(tree):
    memory = images(tree, num_folds=3, fold=1)
    streamed = images(tree, num_folds=3, fold=1, in_memory=False)
    for data in (memory, streamed):
        data.setup("fit"), data.setup("test")
    assert streamed.test_set.names == memory.test_set.names
    assert streamed.train_set.names == memory.train_set.names
    assert same(list(streamed.test_dataloader()), list(memory.test_dataloader()))


def test_streamed_audio_is_the_in_memory_batches(wavs):
    def audio(**kwargs):
        return AudioDataModule(WavFolder(wavs), sample_rate=8000, batch_size=4, **kwargs)

    memory, streamed = audio(), audio(in_memory=False)
    for data in (memory, streamed):
        data.setup("fit"), data.setup("test")
    assert same(batches(streamed.train_dataloader(), 1), batches(memory.train_dataloader(), 1))
    assert same(list(streamed.test_dataloader()), list(memory.test_dataloader()))
    streamed.setup("predict"), memory.setup("predict")
    assert streamed.predict_set.names == memory.predict_set.names


def test_streamed_predict_dir_names_each_file(tree):
    data = images(tree, in_memory=False, predict_dir=tree / "circle")
    data.setup("predict")
    assert data.predict_names == [f"{i:03d}.{'jpg' if i % 2 else 'png'}" for i in range(6)]
    inputs, labels = next(iter(data.predict_dataloader()))
    assert inputs.shape == (4, 3, 8, 8) and inputs.dtype == torch.uint8 and (labels == -1).all()


def test_streamed_loader_resumes_mid_epoch_exactly(tree):
    """Interrupted after 2 batches of epoch 1, a new loader given the saved state serves exactly the
    batches the uninterrupted one did, workers and all."""
    data = images(tree, in_memory=False, num_workers=2, batch_size=2)
    data.setup("fit")
    whole = batches(data.train_dataloader(), 1)
    interrupted = data.train_dataloader()
    interrupted.sampler.set_epoch(1)
    iterator = iter(interrupted)
    seen = [next(iterator), next(iterator)]
    state = interrupted.state_dict()
    assert state == {"epoch": 1, "batches_done": 2}
    resumed = data.train_dataloader()
    assert isinstance(resumed, ResumableLoader) and resumed is not interrupted
    resumed.load_state_dict(state)
    assert same(seen + list(resumed), whole)


def test_in_memory_refuses_a_set_larger_than_free_memory_before_decoding_it(tree, monkeypatch):
    monkeypatch.setattr(streaming, "available_memory", lambda: 1000)
    monkeypatch.setattr(ImageFolder, "load", lambda *args: pytest.fail("decoded before the memory check"))
    with pytest.raises(
        DataError,
        match=r"the train split of ImageFolder would take about 0\.0 GB \("
        r".* held, .* more while a split is built\) in memory, more than .*set data.in_memory false",
    ):
        images(tree).setup("fit")
    images(tree, in_memory=False).setup("fit")  # streaming holds no set: no refusal


def test_the_memory_estimate_counts_the_building_copy_and_the_statistics_pass(tree):
    """18 images of 8x8 held (3,456 bytes), the training split's 18 a second time while held out, and, without a
    mean and std, one chunk of them as float32 and squared; the process's own memory beside."""
    listed = {"train": ImageFolder(tree, image_size=8).listing("train")}
    given = images(tree).memory_estimate(listed)
    assert given.held == 18 * 3 * 64 and given.building == 18 * 3 * 64  # decoded straight into one tensor
    assert given.statistics == 0 and given.baseline > 100e6 and given.peak == given.baseline + given.added
    measured = images(tree, mean=None, std=None).memory_estimate(listed)
    assert measured.statistics == 18 * 3 * 64 * 9


def test_memory_unknown_is_not_a_refusal(tree, monkeypatch):
    monkeypatch.setattr(streaming, "available_memory", lambda: None)
    images(tree).setup("fit")


@pytest.mark.parametrize(
    "unlisted",
    [
        pytest.param(lambda root: UnlistedImages(), id="UnlistedImages"),
    ],
)
def test_a_source_without_files_cannot_stream(unlisted, tmp_path):
    source = unlisted(tmp_path)
    data = ImageDataModule(source, in_memory=False)
    name = type(source).__name__
    with pytest.raises(DataError, match=rf"{name} cannot be streamed.*data.in_memory true"):
        data.setup("fit")


def test_streaming_cannot_live_on_the_device(tree):
    with pytest.raises(DataError, match=r"data.on_device .* data.in_memory true"):
        images(tree, in_memory=False, on_device=True)


@pytest.mark.parametrize("workers", [0, 1])
def test_an_unreadable_file_met_while_streaming_is_one_line(tmp_path, workers):
    root = write_image_tree(tmp_path, per_class=4)
    (root / "square" / "001.jpg").write_bytes(b"not a jpeg")
    data = images(root, in_memory=False, num_workers=workers, batch_size=1, val_size=1)
    data.setup("fit")
    with pytest.raises(DataError, match=r"square/001.jpg is not a readable image") as caught:
        for batch in data.val_dataloader():
            data.on_after_batch_transfer(batch, 0)
        for batch in data.train_dataloader():
            data.on_after_batch_transfer(batch, 0)
    assert "Traceback" not in str(caught.value)


@pytest.mark.slow
def test_streamed_fit_resumes_bit_exact_after_ctrl_c_with_workers(tmp_path):
    """Chosen in the config (`--data.in_memory=false`), decoded by 2 workers: stopped by Ctrl-C inside
    the second epoch and resumed, the same weights, optimizer state and metrics as an uninterrupted run."""
    from tests.recipes import image_folder_args
    from tests.test_reliability import EPOCHS, _assert_same_run, _last_ckpt, _resume_after_interrupt

    root = write_image_tree(tmp_path / "images", per_class=10)

    def args(log_dir):
        return [*image_folder_args(root, log_dir, epochs=EPOCHS), "--data.in_memory=false", "--data.num_workers=2"]

    full = main(["fit", *args(tmp_path / "full")])
    assert isinstance(full.datamodule.train_set, streaming.StreamedFiles)
    last = torch.load(_last_ckpt(tmp_path / "full"), map_location="cpu", weights_only=True)
    _assert_same_run(_resume_after_interrupt(args, 4, tmp_path), (full, last), steps=3 * EPOCHS)
