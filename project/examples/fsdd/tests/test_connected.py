"""Connected digits made from FSDD recordings (project/examples/fsdd/connected.py), on synthetic recordings in
FSDD's layout: deterministic by seed, transcribed in words, no test recording heard in training, voices held
out whole."""

from pathlib import Path

import pytest
import torch

from project.engine.data import AudioDataModule
from project.engine.errors import DataError
from project.examples.fsdd import ConnectedDigits
from project.examples.fsdd.connected import UTTERANCE, VOCABULARY, WORDS
from project.examples.fsdd.tests.fsdd_format import write_fsdd

SPEAKERS = ("george", "theo", "lucas")
RATE = 8000


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_fsdd(tmp_path_factory.mktemp("fsdd"), speakers=SPEAKERS, takes=12)


def _source(root: Path, **kwargs) -> ConnectedDigits:
    counts = dict(train_utterances=40, val_utterances=10, test_utterances=10)
    return ConnectedDigits(root, download=False, expected_recordings=0, **{**counts, **kwargs})


def test_utterances_are_digits_in_words_named_by_speaker_and_digits(root):
    samples = _source(root).load("train", RATE)
    assert len(samples.inputs) == len(samples.labels) == len(samples.names) == 40
    lengths = set()
    for clip, tokens, name in zip(samples.inputs, samples.labels, samples.names, strict=True):
        parts = UTTERANCE.fullmatch(name)
        digits = [int(d) for d in parts["digits"]]
        assert parts["split"] == "train" and parts["speaker"] in SPEAKERS
        assert VOCABULARY.decode(tokens.tolist()) == " ".join(WORDS[d] for d in digits)
        assert clip.ndim == 1 and len(clip) > 0.2 * RATE * len(digits)  # each synthetic word is 0.2 s or more
        lengths.add(len(digits))
    assert min(lengths) >= 1 and max(lengths) <= 7 and len(lengths) > 3


def test_the_same_seed_makes_the_same_utterances_and_another_seed_others(root):
    first, again = _source(root).load("test", RATE), _source(root).load("test", RATE)
    assert first.names == again.names and all(
        torch.equal(a, b) for a, b in zip(first.inputs, again.inputs, strict=True)
    )
    assert _source(root, seed=1).load("test", RATE).names != first.names
    # A split's utterances do not depend on another split's count
    assert _source(root, train_utterances=7).load("test", RATE).names == first.names


def test_no_recording_is_in_two_splits_and_held_out_voices_are_only_tested(root):
    pools = _source(root)._recordings()
    files = {split: {p for by_digit in pool.values() for paths in by_digit.values() for p in paths}
             for split, pool in pools.items()}  # fmt: skip
    assert files["train"] and files["val"] and files["test"]
    assert not files["train"] & files["test"] and not files["train"] & files["val"] and not files["val"] & files["test"]
    assert all(int(p.stem.split("_")[2]) < 5 for p in files["test"])  # FSDD's usual test takes
    source = _source(root, split="speaker", test_speakers=["theo"])
    speakers = {split: {source.group("speaker", n) for n in source.load(split, RATE).names} for split in pools}
    assert speakers["test"] == {"theo"} and "theo" not in speakers["train"] | speakers["val"]


@pytest.mark.slow  # three folds of utterances made and dealt
def test_cross_validation_by_speaker_holds_each_voice_out_once(root):
    held_out = []
    for fold in range(3):
        data = AudioDataModule(_source(root), sample_rate=RATE, batch_size=4, num_folds=3, fold=fold,
                               fold_groups="speaker")  # fmt: skip
        data.setup("fit")
        data.setup("test")
        trained = {UTTERANCE.fullmatch(n)["speaker"] for n in data.train_set.names + data.val_set.names}
        assert data.held_out_groups and not trained & set(data.held_out_groups)
        held_out += data.held_out_groups
    assert sorted(held_out) == sorted(SPEAKERS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"test_speakers": ["bob"]}, r"test_speakers: 'bob' not an FSDD speaker"),
        ({"split": "speaker", "test_speakers": [*SPEAKERS, "jackson", "nicolas", "yweweler"]}, "no voice"),
        ({"min_digits": 3, "max_digits": 2}, "min_digits <= max_digits"),
        ({"min_pause": 0.3, "max_pause": 0.1}, "min_pause <= max_pause"),
        ({"test_utterances": 0}, "at least one utterance"),
    ],
)
def test_settings_that_cannot_work_are_refused(root, kwargs, message):
    with pytest.raises(DataError, match=message):
        _source(root, **kwargs)
