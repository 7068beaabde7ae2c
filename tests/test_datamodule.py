"""The shared data machinery, on the tests' own tiny source: one ordering for both loaders, one state
format, `on_device` for any in-memory source, the held-out validation split and the size checks."""

import pytest
import torch

from project.engine.cli import main
from project.engine.data import InMemoryDataModule
from project.engine.data.loaders import DeviceLoader, ResumableLoader
from tests.recipes import TinyTable, tiny_args


def _epochs(loader, epochs: int = 2) -> list[list[int]]:
    """The labels-free fingerprint of each epoch: the first feature's values, batch by batch."""
    seen = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        seen.append([round(float(v), 5) for x, _ in loader for v in x[:, 0]])
    return seen


def test_host_and_device_loaders_serve_the_same_batches_and_save_the_same_state():
    host = InMemoryDataModule(TinyTable(), batch_size=16, val_size=20, seed=4)
    device = InMemoryDataModule(TinyTable(), batch_size=16, val_size=20, seed=4, on_device=True)
    for data in (host, device):
        data.setup("fit")
    host_loader, device_loader = host.train_dataloader(), device.train_dataloader()
    assert isinstance(host_loader, ResumableLoader) and isinstance(device_loader, DeviceLoader)
    assert _epochs(host_loader) == _epochs(device_loader), "one order, whichever loader serves it"
    it = iter(host_loader)
    next(it), next(it)
    state = host_loader.state_dict()
    assert state == {"epoch": 1, "batches_done": 2}
    device_loader.load_state_dict(state)
    host_rest = [x[:, 0].tolist() for x, _ in it]
    device_rest = [x[:, 0].tolist() for x, _ in device_loader]
    assert host_rest == device_rest and len(device_rest) == len(device_loader) - 2, "either resumes the other's state"


def test_on_device_works_for_any_in_memory_source():
    data = InMemoryDataModule(TinyTable(), batch_size=16, val_size=20, on_device=True)
    data.setup("fit")
    data.setup("test")
    loaders = data.train_dataloader(), data.val_dataloader(), data.test_dataloader()
    assert all(isinstance(loader, DeviceLoader) for loader in loaders)
    assert [len(loader) for loader in loaders] == [80 // 16, 2, 100 // 16 + 1]
    features, labels = next(iter(loaders[0]))
    assert features.shape == (16, 8) and features.dtype == torch.float32 and labels.shape == (16,)


def test_validation_is_held_out_of_train_by_count_or_share_with_a_seed():
    def split(val_size, seed=0):
        data = InMemoryDataModule(TinyTable(), val_size=val_size, seed=seed)
        data.setup("fit")
        return data.train_set.inputs, data.val_set.inputs

    train, val = split(20)
    assert (len(train), len(val)) == (80, 20)
    assert [len(part) for part in split(0.25)] == [75, 25]
    assert torch.equal(split(20)[1], val), "same seed, same split"
    assert not torch.equal(split(20, seed=1)[1], val), "the seed changes the split"
    rows = {tuple(row.tolist()) for row in train}
    assert not any(tuple(row.tolist()) in rows for row in val), "val leaks into train"
    with pytest.raises(ValueError, match=r"val_size=100 must be between 1 and 99"):
        split(100)
    with pytest.raises(ValueError, match=r"val_size must be at least 1 \(a count\) or between 0 and 1"):
        InMemoryDataModule(TinyTable(), val_size=0)


@pytest.mark.parametrize("on_device", [False, True])
def test_a_batch_larger_than_the_training_split_is_a_clear_error(on_device, tmp_path):
    """Not OneCycleLR's `Expected positive integer total_steps, but got 0`."""
    with pytest.raises(
        ValueError, match=r"training split has 80 samples, fewer than one batch of 128.*data\.batch_size"
    ):
        main(["fit", *tiny_args(tmp_path), "--data.batch_size=128", f"--data.on_device={str(on_device).lower()}"])


def test_a_source_without_a_test_split_says_so(tmp_path):
    class NoTest(TinyTable):
        def load(self, split):
            return None if split == "test" else super().load(split)

    with pytest.raises(FileNotFoundError, match="NoTest has no test split"):
        InMemoryDataModule(NoTest()).setup("test")
