"""The device-resident loader: DistributedSampler's sharding, per-epoch reshuffle, exact mid-epoch resume."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from project.engine.callbacks import ResumeLoaderPosition
from project.engine.data.loaders import DeviceLoader
from project.engine.data.ordering import ShardedOrder


def _epoch(loader: DeviceLoader) -> list[int]:
    """The sample ids one pass yields (the inputs are the ids themselves)."""
    return [int(i) for x, _ in loader for i in x]


def _loaders(n: int, world: int, batch_size: int, **kwargs) -> list[DeviceLoader]:
    ids = torch.arange(n)
    return [DeviceLoader(ids, ids % 10, batch_size, num_replicas=world, rank=r, **kwargs) for r in range(world)]


@pytest.mark.parametrize("world", [1, 2, 3])
def test_training_shards_are_disjoint_equal_and_drop_only_the_remainder(world):
    n, batch = 103, 8
    loaders = _loaders(n, world, batch, shuffle=True, drop_last=True, seed=5)
    shards = [_epoch(loader) for loader in loaders]
    per_rank = (n // world) // batch * batch  # DistributedSampler's cut, then the loader's drop_last
    assert all(
        len(s) == per_rank and len(loader) == per_rank // batch for s, loader in zip(shards, loaders, strict=True)
    )
    seen = [i for s in shards for i in s]
    assert len(set(seen)) == len(seen), "ranks must not share samples"
    assert set(seen) <= set(range(n))
    # Before the per-rank batch cut, the ranks together cover all but n % world samples, like DistributedSampler
    orders = [loader.sampler.indices().tolist() for loader in loaders]
    assert len({i for o in orders for i in o}) == n - n % world


@pytest.mark.parametrize("world", [1, 2, 3])
def test_evaluation_shards_cover_every_sample_exactly_once(world):
    n = 103
    shards = [_epoch(loader) for loader in _loaders(n, world, 8)]
    assert sorted(i for s in shards for i in s) == list(range(n)), "no sample dropped or repeated"
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert shards[0][:3] == [0, world, 2 * world], "without shuffling, rank r takes every world-th sample from r"


def test_last_partial_batch_is_kept_for_evaluation_and_dropped_for_training():
    ids = torch.arange(10)
    assert [len(x) for x, _ in DeviceLoader(ids, ids, 4)] == [4, 4, 2]
    assert [len(x) for x, _ in DeviceLoader(ids, ids, 4, drop_last=True)] == [4, 4]
    assert len(DeviceLoader(ids, ids, 4)) == 3 and len(DeviceLoader(ids, ids, 4, drop_last=True)) == 2


def test_each_epoch_is_a_fresh_permutation_fixed_by_seed_and_epoch():
    (loader,) = _loaders(64, 1, 8, shuffle=True, drop_last=True, seed=1)
    (twin,) = _loaders(64, 1, 8, shuffle=True, drop_last=True, seed=1)
    epoch0 = _epoch(loader)
    assert epoch0 == _epoch(twin) and epoch0 == _epoch(loader), "same seed and epoch, same order"
    assert sorted(epoch0) == list(range(64)) and epoch0 != list(range(64))
    loader.sampler.set_epoch(1)
    assert _epoch(loader) != epoch0, "set_epoch must reshuffle"
    (other_seed,) = _loaders(64, 1, 8, shuffle=True, drop_last=True, seed=2)
    assert _epoch(other_seed) != epoch0


def test_batches_keep_dtype_and_pair_inputs_with_their_labels():
    images = torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)
    labels = torch.arange(20)
    for x, y in DeviceLoader(images, labels, 6, shuffle=True, seed=0):
        assert x.dtype == torch.uint8 and x.shape[1:] == (3, 4, 4)
        assert torch.equal(x, images[y]), "an image must arrive with its own label"


def test_resume_mid_epoch_continues_with_the_next_batch():
    (loader,) = _loaders(64, 1, 8, shuffle=True, drop_last=True, seed=3)
    loader.sampler.set_epoch(2)
    full = [x.tolist() for x, _ in loader]
    it = iter(loader)
    first = [next(it)[0].tolist() for _ in range(3)]
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches_done": 3}

    (resumed,) = _loaders(64, 1, 8, shuffle=True, drop_last=True, seed=3)
    resumed.load_state_dict(state)
    rest = [x.tolist() for x, _ in resumed]
    assert first + rest == full, "the resumed run must see exactly the batches the uninterrupted one saw"
    # The skip applies once: the next epoch starts from its first batch
    resumed.sampler.set_epoch(3)
    assert len(list(resumed)) == len(resumed)


def test_bad_arguments_are_refused_with_a_reason():
    ids = torch.arange(10)
    with pytest.raises(ValueError, match="labels hold 9"):
        DeviceLoader(ids, ids[:9], 4)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        DeviceLoader(ids, ids, 0)
    with pytest.raises(ValueError, match=r"rank 2 is outside 0\.\.1"):
        ShardedOrder(10, shuffle=False, drop_last=False, num_replicas=2, rank=2)


class _RecordBatches(L.LightningModule):
    """Remembers the labels (= sample ids) of every training batch; asks for the run's length the way
    OneCycleLR does, which makes Lightning build the loader before the checkpoint is read."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen: list[list[int]] = []

    def train_dataloader(self) -> DeviceLoader:
        ids = torch.arange(24)
        return DeviceLoader(ids, ids, batch_size=4, shuffle=True, drop_last=True, seed=7)

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen.append(y.tolist())
        return self.layer(x.float()[:, None]).sum()

    def configure_optimizers(self):
        assert self.trainer.estimated_stepping_batches == 12
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _trainer(root, **kwargs) -> L.Trainer:
    return L.Trainer(
        default_root_dir=root,
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_lightning_resumes_mid_epoch_at_the_next_batch(tmp_path):
    full = _RecordBatches()
    checkpoints = ModelCheckpoint(tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1, filename="{step}")
    _trainer(tmp_path, callbacks=[checkpoints]).fit(full)
    assert len(full.seen) == 12 and full.seen[:6] != full.seen[6:], "two epochs, each its own order"

    resumed = _RecordBatches()  # from step 4: mid-way through the first epoch's 6 batches
    _trainer(tmp_path, callbacks=[ResumeLoaderPosition()]).fit(resumed, ckpt_path=tmp_path / "ckpt" / "step=4.ckpt")
    assert resumed.seen == full.seen[4:], "the resumed run must continue with exactly the batches that were left"
