import hashlib
import pickle
from pathlib import Path

import pytest
import torch

from project.data import cifar10
from project.data.cifar10 import CIFAR10DataModule
from project.data.download import DownloadError, RemoteArchive, download_archive
from tests.cifar_format import add_to_tar, write_cifar10_archive


def test_reads_official_layout_with_seeded_disjoint_split(cifar_root):
    dm = CIFAR10DataModule(data_dir=cifar_root, val_size=100, seed=3)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.train_set.images.shape == (400, 3, 32, 32) and dm.train_set.images.dtype == torch.uint8
    assert dm.val_set.images.shape == (100, 3, 32, 32)
    assert dm.train_set.labels.dtype == torch.int64 and int(dm.train_set.labels.max()) < 10

    again = CIFAR10DataModule(data_dir=cifar_root, val_size=100, seed=3)
    again.setup("fit")
    assert torch.equal(again.val_set.images, dm.val_set.images), "same seed must give the same split"
    other = CIFAR10DataModule(data_dir=cifar_root, val_size=100, seed=4)
    other.setup("fit")
    assert not torch.equal(other.val_set.images, dm.val_set.images), "the seed must change the split"

    rows = {tuple(x.flatten().tolist()) for x in dm.train_set.images}
    assert not any(tuple(x.flatten().tolist()) in rows for x in dm.val_set.images), "val leaks into train"

    dm.setup("test")
    assert len(dm.test_set) == 100


def test_loader_yields_uint8_batches_of_global_batch_size(cifar_root):
    dm = CIFAR10DataModule(data_dir=cifar_root, batch_size=64, val_size=100)
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (64, 3, 32, 32) and images.dtype == torch.uint8 and labels.shape == (64,)
    assert len(dm.train_dataloader()) == 400 // 64, "train drops the last partial batch"
    assert sum(len(y) for _, y in dm.val_dataloader()) == 100, "evaluation must see every sample"


def test_missing_data_without_download_says_where_it_looked(tmp_path):
    dm = CIFAR10DataModule(data_dir=tmp_path / "nowhere", download=False)
    with pytest.raises(FileNotFoundError, match=r"looked for .*nowhere/cifar-10-batches-py.*cifar-10-python\.tar\.gz"):
        dm.prepare_data()


def test_half_extracted_folder_names_the_missing_file(cifar_root):
    (cifar_root / "cifar-10-batches-py" / "data_batch_4").unlink()
    dm = CIFAR10DataModule(data_dir=cifar_root)
    with pytest.raises(FileNotFoundError, match=r"data_batch_4 is missing.*half-extracted"):
        dm.setup("fit")


def test_pickle_with_code_is_refused(cifar_root):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(cifar_root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": Payload(), "labels": []}, f)
    with pytest.raises(
        ValueError, match=r"test_batch is not a readable CIFAR-10 batch.*refusing to load builtins\.print"
    ):
        CIFAR10DataModule(data_dir=cifar_root).setup("test")


def _remote(base_url: str, archive: Path, md5: str | None = None) -> RemoteArchive:
    md5 = md5 or hashlib.md5(archive.read_bytes()).hexdigest()
    return RemoteArchive(f"{base_url}/{archive.name}", archive.name, md5=md5)


def test_download_verifies_checksum_and_extracts(tmp_path, monkeypatch, serve_dir):
    archive = write_cifar10_archive(tmp_path / "server")
    monkeypatch.setattr(cifar10, "ARCHIVE", _remote(serve_dir(archive.parent), archive))
    dm = CIFAR10DataModule(data_dir=tmp_path / "data", val_size=10)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 100


def test_download_with_wrong_checksum_is_rejected(tmp_path, monkeypatch, serve_dir):
    archive = write_cifar10_archive(tmp_path / "server")
    monkeypatch.setattr(cifar10, "ARCHIVE", _remote(serve_dir(archive.parent), archive, md5="0" * 32))
    with pytest.raises(
        DownloadError,
        match=r"corrupt: its MD5 is [0-9a-f]{32}, not the published 0{32}.*put it at .*cifar-10-python\.tar\.gz",
    ):
        CIFAR10DataModule(data_dir=tmp_path / "data").prepare_data()
    assert not (tmp_path / "data" / "cifar-10-batches-py").exists(), "a bad archive must not be extracted"


def test_offline_download_names_url_and_where_to_put_the_file(tmp_path, monkeypatch, serve_dir):
    (tmp_path / "server").mkdir()
    remote = RemoteArchive(
        f"{serve_dir(tmp_path / 'server')}/cifar-10-python.tar.gz", "cifar-10-python.tar.gz", md5="0" * 32
    )
    monkeypatch.setattr(cifar10, "ARCHIVE", remote)
    with pytest.raises(DownloadError, match=rf"Could not download {remote.url}.*by hand.*{tmp_path / 'data'}"):
        CIFAR10DataModule(data_dir=tmp_path / "data").prepare_data()


def test_archive_escaping_the_target_is_refused(tmp_path, monkeypatch, serve_dir):
    archive = tmp_path / "server" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    add_to_tar(archive, "../escaped.txt", b"gotcha")
    monkeypatch.setattr(cifar10, "ARCHIVE", _remote(serve_dir(archive.parent), archive))
    with pytest.raises(DownloadError, match="outside"):
        CIFAR10DataModule(data_dir=tmp_path / "data").prepare_data()
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_size": 0}, "batch_size must be at least 1"), ({"val_size": 0}, "val_size must be at least 1")],
)
def test_bad_arguments_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CIFAR10DataModule(**kwargs)


def test_val_size_larger_than_the_training_set(cifar_root):
    with pytest.raises(ValueError, match=r"val_size=500 must be between 1 and 499"):
        CIFAR10DataModule(data_dir=cifar_root, val_size=500).setup("fit")


def test_batch_size_must_divide_over_devices(cifar_root):
    dm = CIFAR10DataModule(data_dir=cifar_root, batch_size=100)
    dm.trainer = type("FakeTrainer", (), {"world_size": 3})()
    with pytest.raises(ValueError, match=r"batch_size=100 does not divide evenly over 3 devices.*e\.g\. 99"):
        dm.setup("fit")


def test_sha256_is_verified_when_that_is_what_is_published(tmp_path, serve_dir):
    archive = write_cifar10_archive(tmp_path / "server")
    url = f"{serve_dir(archive.parent)}/{archive.name}"
    with pytest.raises(DownloadError, match=r"its SHA256 is [0-9a-f]{64}, not the published 0{64}"):
        download_archive(RemoteArchive(url, archive.name, sha256="0" * 64), tmp_path / "a")
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert download_archive(RemoteArchive(url, archive.name, sha256=good), tmp_path / "b").is_file()
