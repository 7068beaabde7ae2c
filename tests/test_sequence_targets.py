"""Targets of different lengths per sample (token sequences): a source hands a list of tensors, and every path a
batch takes (in memory, on the device, streamed, audio, folds) carries them padded, with their lengths."""

from pathlib import Path

import pytest
import torch

from project.engine.data import InMemoryDataModule, Samples, Source
from project.engine.data.audio import AudioClips
from project.engine.data.folds import assign_folds
from project.engine.data.loaders import DeviceLoader, InMemoryTensors
from project.engine.data.streaming import StreamedFiles
from project.engine.data.targets import PAD, pad_sequences, take

SEQUENCES = [torch.tensor([1, 2, 3]), torch.tensor([4]), torch.tensor([5, 6]), torch.tensor([7, 8, 9, 1])]


def _expected(indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    chosen = [SEQUENCES[i] for i in indices]
    lengths = torch.tensor([len(s) for s in chosen])
    padded = torch.full((len(chosen), int(lengths.max())), PAD)
    for row, s in enumerate(chosen):
        padded[row, : len(s)] = s
    return padded, lengths


def test_a_batch_of_sequences_is_padded_to_its_longest_with_the_lengths():
    padded, lengths = take(SEQUENCES, [1, 2])
    assert padded.tolist() == [[4, PAD], [5, 6]] and lengths.tolist() == [1, 2]
    assert take(torch.arange(10) * 2, [3, 1]).tolist() == [6, 2]  # class indices: gathered as before
    padded, lengths = pad_sequences([torch.zeros(2, 3), torch.ones(1, 3)])  # sequences of vectors too
    assert padded.shape == (2, 2, 3) and lengths.tolist() == [2, 1]


def test_samples_select_and_concat_keep_each_sample_with_its_sequence():
    samples = Samples(torch.arange(4)[:, None].float(), SEQUENCES, ["a", "b", "c", "d"])
    picked = samples.select(torch.tensor([3, 0]))
    assert [s.tolist() for s in picked.labels] == [[7, 8, 9, 1], [1, 2, 3]] and picked.names == ["d", "a"]
    joined = Samples.concat([picked, samples.select(torch.tensor([1]))])
    assert [s.tolist() for s in joined.labels] == [[7, 8, 9, 1], [1, 2, 3], [4]]
    assert joined.inputs[:, 0].tolist() == [3.0, 0.0, 1.0]


def test_in_memory_and_device_loaders_serve_padded_sequences():
    inputs = torch.arange(4)[:, None].float()
    dataset = InMemoryTensors(Samples(inputs, SEQUENCES))
    x, (padded, lengths) = dataset.__getitems__([0, 3])
    expected = _expected([0, 3])
    assert x[:, 0].tolist() == [0.0, 3.0] and torch.equal(padded, expected[0]) and torch.equal(lengths, expected[1])
    batches = list(DeviceLoader(*dataset.device_tensors(torch.device("cpu")), batch_size=2, shuffle=True, seed=0))
    for x, (padded, lengths) in batches:
        for row, i in enumerate(x[:, 0].long().tolist()):  # each row keeps its own sequence
            assert padded[row, : lengths[row]].tolist() == SEQUENCES[i].tolist()
            assert (padded[row, lengths[row] :] == PAD).all()
    assert len(dataset) == 4  # the set's targets are still the sequences, not their padded copy


def test_audio_clips_and_streamed_files_serve_padded_sequences(tmp_path: Path):
    clips = [torch.ones(n) for n in (5, 3, 8, 2)]
    (_, wave_lengths), (padded, _) = AudioClips(clips, SEQUENCES).__getitems__([2, 1])
    assert wave_lengths.tolist() == [8, 3] and torch.equal(padded, _expected([2, 1])[0])
    (_, _), on_device = AudioClips(clips, SEQUENCES).device_tensors(torch.device("cpu"))
    assert torch.equal(on_device[0], _expected([0, 1, 2, 3])[0])
    files = []
    for i, clip in enumerate(clips):
        files.append(tmp_path / f"{i}.pt")
        torch.save(clip, files[-1])
    streamed = StreamedFiles(Samples(files, SEQUENCES), torch.load, lambda items: items)
    decoded, (padded, lengths) = streamed.__getitems__([3, 0])
    assert [len(d) for d in decoded] == [2, 5] and torch.equal(lengths, _expected([3, 0])[1])


def test_folds_deal_sequence_targets_whole_or_by_group():
    keys = [f"s{i}" for i in range(12)]
    sequences = [torch.arange(i % 5 + 1) for i in range(12)]
    folds = assign_folds(keys, sequences, num_folds=3, seed=0)
    assert sorted(torch.bincount(folds).tolist()) == [4, 4, 4]
    assert torch.equal(folds, assign_folds(keys[::-1], sequences[::-1], 3, 0).flip(0))  # not the listing order
    groups = ["a", "a", "b", "b", "c", "c"] * 2
    by_group = assign_folds(keys, sequences, num_folds=3, seed=0, groups=groups)
    for group in "abc":
        assert len({int(f) for f, g in zip(by_group, groups, strict=True) if g == group}) == 1


class Tokens(Source):
    """Inputs (N, 2) with a sequence each: a source whose targets are not classes."""

    classes = ("<pad>", "a", "b")

    def load(self, split: str) -> Samples | None:
        n = {"train": 20, "val": None, "test": 6}[split]
        if n is None:
            return None
        return Samples(torch.randn(n, 2), [torch.ones(i % 3 + 1, dtype=torch.int64) for i in range(n)])


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_a_data_module_holds_out_folds_and_batches_sequence_targets(on_device):
    data = InMemoryDataModule(Tokens(), batch_size=4, val_size=4, on_device=on_device, num_folds=2, fold=0)
    data.setup("fit")
    for loader in (data.train_dataloader(), data.val_dataloader()):
        for x, (padded, lengths) in loader:
            assert len(x) == len(padded) == len(lengths) and padded.shape[1] == (3 if on_device else lengths.max())
            assert all((padded[row, : lengths[row]] == 1).all() for row in range(len(x)))
    data.setup("test")
    assert len(data.test_set) == 13  # fold 0 of the 26 pooled samples
