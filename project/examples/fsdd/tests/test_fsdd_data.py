"""FSDD's source: its file names, the usual and the speaker splits, the release's download, folds by speaker,
and the real data set where $PROJECT_TEST_DATA holds it."""

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from project.engine.data import AudioDataModule
from project.engine.data.download import DownloadError
from project.engine.data.folds import assign_folds
from project.examples.fsdd import FSDD
from project.examples.fsdd.source import SPEAKERS
from project.examples.fsdd.tests.fsdd_format import write_fsdd
from tests.catalogue import BadInput, cases, check
from tests.conftest import real_data_file
from tests.wav_format import write_wav


def test_fsdd_usual_and_speaker_splits(tmp_path):
    root = write_fsdd(tmp_path, speakers=("george", "theo", "lucas"), takes=7)
    usual = FSDD(root, download=False, val_fraction=0.2, expected_recordings=0)
    files = usual._split_files()
    assert len(files["test"]) == 3 * 10 * 5, "takes 0-4 of every speaker and digit"
    assert len(files["train"]) + len(files["val"]) == 3 * 10 * 2 and len(files["val"]) == 12
    assert not {p for p, _ in files["val"]} & {p for p, _ in files["train"]}
    held_out = FSDD(root, split="speaker", test_speaker="lucas", download=False, expected_recordings=0)
    held_out = held_out._split_files()
    assert {p.name.split("_")[1] for p, _ in held_out["test"]} == {"lucas"}
    assert "lucas" not in {p.name.split("_")[1] for p, _ in held_out["train"] + held_out["val"]}
    clips, labels, names = usual.load("test", 8000)
    assert len(clips) == 150 and sorted(set(labels.tolist())) == list(range(10))
    assert names[0] == "recordings/0_george_0.wav"
    with pytest.raises(ValueError, match="test_speaker='nobody' is not an FSDD speaker"):
        FSDD(root, split="speaker", test_speaker="nobody")


def test_fsdd_rejects_files_not_named_like_fsdd(tmp_path):
    root = write_fsdd(tmp_path, takes=6)
    write_wav(root / "recordings" / "hello.wav", np.zeros(100), 8000)
    with pytest.raises(ValueError, match=r"hello\.wav is not named"):
        FSDD(root, download=False, expected_recordings=0).load("train", 8000)


def test_fsdd_downloads_and_verifies_the_release_archive(tmp_path, serve_dir):
    """The tagged release's layout, served from a local stand-in for GitHub."""
    source = write_fsdd(tmp_path / "src" / "free-spoken-digit-dataset-1.0.10", takes=6)
    archive = tmp_path / "site" / "v1.0.10.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=source.name)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    url = f"{serve_dir(archive.parent)}/{archive.name}"

    with pytest.raises(DownloadError, match="MD5"):
        FSDD(tmp_path / "bad", url=url, md5="0" * 32).prepare()
    data = FSDD(tmp_path / "data", url=url, md5=md5, expected_recordings=2 * 10 * 6)
    data.prepare()
    assert data.recordings == tmp_path / "data" / "free-spoken-digit-dataset-1.0.10" / "recordings"
    assert len(data.load("test", 8000)[0]) == 2 * 10 * 5
    with pytest.raises(FileNotFoundError, match="download is false"):
        FSDD(tmp_path / "nowhere", download=False).prepare()
    with pytest.raises(DownloadError, match=r"A folder holding `recordings/` works as it is"):
        FSDD(tmp_path / "offline", url=f"{serve_dir(archive.parent)}/missing.tar.gz").prepare()


@pytest.mark.slow  # unpacks 3,000 recordings
def test_real_fsdd_loads_in_the_usual_split(tmp_path):
    with tarfile.open(real_data_file("fsdd.tar.xz")) as tar:
        tar.extractall(tmp_path, filter="data")
    data = FSDD(tmp_path, download=False)
    sizes = {split: len(files) for split, files in data._split_files().items()}
    assert sizes == {"train": 2430, "val": 270, "test": 300}
    clips, labels, _ = data.load("test", 8000)
    assert labels.bincount().tolist() == [30] * 10
    seconds = torch.tensor([len(c) for c in clips]) / 8000
    assert seconds.min() > 0.1 and seconds.max() < 3, "FSDD's recordings last 0.14-2.3 s"
    assert all(c.abs().max() > 0.01 for c in clips), "every recording holds sound"


def test_a_short_fsdd_folder_is_refused_with_the_fix(tmp_path):
    root = write_fsdd(tmp_path / "free-spoken-digit-dataset-1.0.10", takes=6)
    with pytest.raises(
        ValueError, match=r"recordings holds 120 recordings, not the 3000 .*incomplete\. Delete .*1\.0\.10"
    ):
        FSDD(root.parent, download=False).load("train", 8000)


def test_fsdd_folds_by_speaker_hold_out_one_speaker_each(tmp_path):
    root = write_fsdd(tmp_path / "fsdd", speakers=("george", "theo", "lucas"), takes=2)
    held_out = []
    for fold in range(3):
        source = FSDD(root, split="speaker", download=False, expected_recordings=0)
        dm = AudioDataModule(source, sample_rate=8000, val_size=4, fold=fold, num_folds=3, fold_groups="speaker")
        test = dm.fold_split()[1]
        assert len(test.names) == 20, "all ten digits x two takes of the speaker, whatever `split` says"
        assert {Path(n).name.split("_")[1] for n in test.names} == set(dm.held_out_groups)
        held_out += dm.held_out_groups
    assert sorted(held_out) == ["george", "lucas", "theo"]


@pytest.mark.slow
def test_real_fsdd_in_six_folds_by_speaker_holds_out_each_speaker_once(tmp_path):
    with tarfile.open(real_data_file("fsdd.tar.xz")) as tar:
        tar.extractall(tmp_path, filter="data")
    source = FSDD(tmp_path, split="speaker", download=False)
    data = AudioDataModule(source, sample_rate=8000, fold=0, num_folds=6, fold_groups="speaker")
    rest, test = data.fold_split()
    assert len(data.held_out_groups) == 1 and test.labels.bincount().tolist() == [50] * 10, "one speaker, all 500"
    # The other folds, from the same names and groups (without decoding the recordings five more times)
    names, labels = rest.names + test.names, torch.cat([rest.labels, test.labels])
    groups = [source.group("speaker", name) for name in names]
    folds = assign_folds(names, labels, 6, seed=0, groups=groups).tolist()
    held_out = [sorted({g for g, f in zip(groups, folds, strict=True) if f == fold}) for fold in range(6)]
    assert held_out[0] == data.held_out_groups
    assert sorted(speakers[0] for speakers in held_out if len(speakers) == 1) == sorted(SPEAKERS)


FSDD_BAD_INPUTS = [
    BadInput(
        "FSDD folder short of recordings",
        lambda t: FSDD(write_fsdd(t / "free-spoken-digit-dataset-1.0.10", takes=6).parent, download=False).load(
            "train", 8000
        ),
        ValueError,
        r"recordings holds 120 recordings, not the 3000 of FSDD 1\.0\.10: the folder is incomplete\. Delete ",
    ),
]


@pytest.mark.parametrize("case", cases(FSDD_BAD_INPUTS))
def test_bad_fsdd_files_are_refused_with_a_clear_error(case, tmp_path):
    """The reliability catalogue's cases for the FSDD source (see tests/catalogue.py)."""
    check(case, tmp_path)
