import csv
import functools
import hashlib
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from project.engine.cli import main
from project.engine.data.download import DownloadError, RemoteArchive, download_archive
from project.engine.data.loaders import DeviceLoader
from project.examples.cifar10 import source as cifar10
from project.examples.cifar10.tests.cifar_format import cifar10_data, write_cifar10, write_cifar10_archive
from project.examples.cifar10.tests.conftest import tiny_cifar_args
from tests.archive_format import add_to_tar
from tests.catalogue import BadInput, Refused, cases, check, cli
from tests.image_tree import truncate
from tests.recipes import run_dir
from tests.test_audio_model import tiny_fsdd_args
from tests.test_reliability import Payload
from tests.wav_format import write_fsdd

CIFAR10_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cifar10.yaml"


def test_reads_official_layout_with_seeded_disjoint_split(cifar_root):
    dm = cifar10_data(cifar_root, val_size=100, seed=3)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.train_set.inputs.shape == (400, 3, 32, 32) and dm.train_set.inputs.dtype == torch.uint8
    assert dm.val_set.inputs.shape == (100, 3, 32, 32)
    assert dm.train_set.labels.dtype == torch.int64 and int(dm.train_set.labels.max()) < 10

    again = cifar10_data(cifar_root, val_size=100, seed=3)
    again.setup("fit")
    assert torch.equal(again.val_set.inputs, dm.val_set.inputs), "same seed must give the same split"
    other = cifar10_data(cifar_root, val_size=100, seed=4)
    other.setup("fit")
    assert not torch.equal(other.val_set.inputs, dm.val_set.inputs), "the seed must change the split"

    rows = {tuple(x.flatten().tolist()) for x in dm.train_set.inputs}
    assert not any(tuple(x.flatten().tolist()) in rows for x in dm.val_set.inputs), "val leaks into train"

    dm.setup("test")
    assert len(dm.test_set) == 100


def test_loader_yields_uint8_batches_of_global_batch_size(cifar_root):
    dm = cifar10_data(cifar_root, batch_size=64, val_size=100)
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (64, 3, 32, 32) and images.dtype == torch.uint8 and labels.shape == (64,)
    assert len(dm.train_dataloader()) == 400 // 64, "train drops the last partial batch"
    assert sum(len(y) for _, y in dm.val_dataloader()) == 100, "evaluation must see every sample"


def test_missing_data_without_download_says_where_it_looked(tmp_path):
    dm = cifar10_data(tmp_path / "nowhere", download=False)
    with pytest.raises(FileNotFoundError, match=r"looked for .*nowhere/cifar-10-batches-py.*cifar-10-python\.tar\.gz"):
        dm.prepare_data()


def test_half_extracted_folder_names_the_missing_file(cifar_root):
    (cifar_root / "cifar-10-batches-py" / "data_batch_4").unlink()
    dm = cifar10_data(cifar_root)
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
        cifar10_data(cifar_root).setup("test")


def _remote(base_url: str, archive: Path, md5: str | None = None) -> RemoteArchive:
    md5 = md5 or hashlib.md5(archive.read_bytes()).hexdigest()
    return RemoteArchive(f"{base_url}/{archive.name}", archive.name, md5=md5)


def test_download_verifies_checksum_and_extracts(tmp_path, monkeypatch, serve_dir):
    archive = write_cifar10_archive(tmp_path / "server")
    monkeypatch.setattr(cifar10, "ARCHIVE", _remote(serve_dir(archive.parent), archive))
    dm = cifar10_data(tmp_path / "data", val_size=10)
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
        cifar10_data(tmp_path / "data").prepare_data()
    assert not (tmp_path / "data" / "cifar-10-batches-py").exists(), "a bad archive must not be extracted"


def test_offline_download_names_url_and_where_to_put_the_file(tmp_path, monkeypatch, serve_dir):
    (tmp_path / "server").mkdir()
    remote = RemoteArchive(
        f"{serve_dir(tmp_path / 'server')}/cifar-10-python.tar.gz", "cifar-10-python.tar.gz", md5="0" * 32
    )
    monkeypatch.setattr(cifar10, "ARCHIVE", remote)
    with pytest.raises(DownloadError, match=rf"Could not download {remote.url}.*by hand.*{tmp_path / 'data'}") as err:
        cifar10_data(tmp_path / "data").prepare_data()
    # the other way in: data already extracted, as a user offline may have it
    assert "A folder holding `cifar-10-batches-py/` works as it is" in str(err.value)
    assert "--data.source.init_args.root FOLDER" in str(err.value)


def test_the_data_read_is_named_once_prepared(cifar_root, caplog):
    with caplog.at_level("INFO"):
        cifar10_data(cifar_root).prepare_data()
    assert f"Data: CIFAR10 from {(cifar_root / 'cifar-10-batches-py').resolve()}" in caplog.messages


def test_archive_escaping_the_target_is_refused(tmp_path, monkeypatch, serve_dir):
    archive = tmp_path / "server" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    add_to_tar(archive, "../escaped.txt", b"gotcha")
    monkeypatch.setattr(cifar10, "ARCHIVE", _remote(serve_dir(archive.parent), archive))
    with pytest.raises(DownloadError, match="outside"):
        cifar10_data(tmp_path / "data").prepare_data()
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_size": 0}, "batch_size must be at least 1"), ({"val_size": 0}, "val_size must be at least 1")],
)
def test_bad_arguments_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cifar10_data(**kwargs)


def test_val_size_larger_than_the_training_set(cifar_root):
    with pytest.raises(ValueError, match=r"val_size=500 must be between 1 and 499"):
        cifar10_data(cifar_root, val_size=500).setup("fit")


def test_batch_size_must_divide_over_devices(cifar_root):
    dm = cifar10_data(cifar_root, batch_size=100)
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


def test_datamodule_on_device_serves_device_loaders(cifar_root):
    data = cifar10_data(cifar_root, batch_size=50, val_size=100, download=False, on_device=True)
    data.setup("fit")
    train, val = data.train_dataloader(), data.val_dataloader()
    assert isinstance(train, DeviceLoader) and isinstance(val, DeviceLoader)
    assert len(train) == 400 // 50 and len(val) == 2
    images, labels = next(iter(train))
    assert images.dtype == torch.uint8 and images.shape == (50, 3, 32, 32) and labels.shape == (50,)
    assert data.sample_train_images(7).shape == (7, 3, 32, 32)


def _cifar_setup(tmp: Path, spoil: Callable[[Path], object], stage: str = "fit") -> None:
    folder = write_cifar10(tmp / "data", per_batch=10)
    spoil(folder)
    cifar10_data(tmp / "data", val_size=5, download=False).setup(stage)


def _relabel(folder: Path, label: int) -> None:
    path = folder / "data_batch_2"
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    entry["labels"][3] = label
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


def _rewrite_batch(folder: Path, **changes: object) -> None:
    """Replace keys of data_batch_2 (e.g. `data`, `labels`), keeping the official pickle format."""
    path = folder / "data_batch_2"
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    entry.update({key: change(entry[key]) if callable(change) else change for key, change in changes.items()})
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


def _drop_labels(path: Path) -> None:
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    del entry["labels"]
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


def _with_pixel(data: np.ndarray, value: int) -> np.ndarray:
    wide = data.astype(np.int16)
    wide[0, 0] = value
    return wide


class CifarRuns:
    """The module's CIFAR-10 fit (`fitted_cifar`) and a 1-epoch FSDD fit, made once, when first asked for."""

    def __init__(self, fitted_cifar: Path, root: Path):
        self.cifar_data = fitted_cifar / "data"
        self.cifar_ckpt = run_dir(fitted_cifar / "logs", "cifar10") / "checkpoints" / "last.ckpt"
        self.root = root

    @functools.cached_property
    def fsdd_data(self) -> Path:
        return write_fsdd(self.root / "fsdd", takes=7)  # FSDD's split: takes 5 and 6 train

    @functools.cached_property
    def fsdd_ckpt(self) -> Path:
        main(["fit", *tiny_fsdd_args(self.fsdd_data, self.root / "fsdd-run", epochs=1)])
        return run_dir(self.root / "fsdd-run", "fsdd") / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def fitted_cifar(tmp_path_factory):
    """One short fit of the shipped CIFAR-10 recipe, shrunk to seconds on a CPU."""
    root = tmp_path_factory.mktemp("cifar_fit")
    write_cifar10(root / "data", per_batch=100)
    main(["fit", *tiny_cifar_args(root / "data", root / "logs", epochs=2)])
    return root


@pytest.fixture(scope="module")
def cifar_runs(fitted_cifar, tmp_path_factory) -> CifarRuns:
    return CifarRuns(fitted_cifar, tmp_path_factory.mktemp("cifar-runs"))


def _tiny_cifar(data_dir: Path, log_dir: Path) -> list[str]:
    """1 epoch in batches of 16; on `write_cifar10(per_batch=10)`'s data, 45 training images: 2 steps."""
    return [
        *tiny_cifar_args(data_dir, log_dir, epochs=1),
        "--data.batch_size=16",
        "--data.val_size=5",
        "--model.net.init_args.widths=[8,8,8,8]",
    ]


CIFAR_BAD_INPUTS = [
    BadInput(
        "CIFAR folder missing, download off",
        lambda t: cifar10_data(t / "nowhere", download=False).prepare_data(),
        FileNotFoundError,
        r"looked for .*nowhere/cifar-10-batches-py",
    ),
    BadInput(
        "CIFAR half-extracted",
        lambda t: _cifar_setup(t, lambda f: (f / "data_batch_3").unlink()),
        FileNotFoundError,
        r"data_batch_3 is missing.*half-extracted",
    ),
    BadInput(
        "CIFAR batch truncated",
        lambda t: _cifar_setup(t, lambda f: truncate(f / "data_batch_1")),
        ValueError,
        r"data_batch_1 is not a readable CIFAR-10 batch",
    ),
    BadInput(
        "CIFAR batch carrying code",
        lambda t: _cifar_setup(t, lambda f: (f / "data_batch_5").write_bytes(pickle.dumps(Payload(t / "ran")))),
        ValueError,
        r"data_batch_5 .*refusing to load",
    ),
    BadInput(
        "CIFAR label out of range",
        lambda t: _cifar_setup(t, lambda f: _relabel(f, 10)),
        ValueError,
        r"labels in .*cifar-10-batches-py/data_batch_2 fall outside 0\.\.9 \(found 0\.\.10\)",
    ),
    BadInput(
        "CIFAR negative label",
        lambda t: _cifar_setup(t, lambda f: _relabel(f, -1)),
        ValueError,
        r"labels in .*fall outside 0\.\.9",
    ),
    BadInput(
        "CIFAR batch with float pixels",
        lambda t: _cifar_setup(t, lambda f: _rewrite_batch(f, data=lambda d: d.astype(np.float32) / 255)),
        ValueError,
        r"data_batch_2 is not a CIFAR-10 batch: 'data' must be integers .*got float32",
    ),
    BadInput(
        "CIFAR batch with int16 pixels above 255",
        lambda t: _cifar_setup(t, lambda f: _rewrite_batch(f, data=lambda d: _with_pixel(d, 300))),
        ValueError,
        r"data_batch_2 holds pixel values from 0 to 300; CIFAR-10 pixels are 0\.\.255",
    ),
    BadInput(
        "CIFAR batch with float labels",
        lambda t: _cifar_setup(t, lambda f: _rewrite_batch(f, labels=lambda ls: [y + 0.5 for y in ls])),
        ValueError,
        r"data_batch_2 is not a CIFAR-10 batch: 'labels' must be a list of 10 integers.*float64",
    ),
    BadInput(
        "CIFAR batch with string labels",
        lambda t: _cifar_setup(t, lambda f: _rewrite_batch(f, labels=lambda ls: [str(y) for y in ls])),
        ValueError,
        r"data_batch_2 is not a CIFAR-10 batch: 'labels' must be a list of 10 integers",
    ),
    BadInput(
        "CIFAR batch with ragged labels",
        lambda t: _cifar_setup(
            t, lambda f: _rewrite_batch(f, labels=lambda ls: [[y] * (i % 2 + 1) for i, y in enumerate(ls)])
        ),
        ValueError,
        r"data_batch_2 is not a CIFAR-10 batch: 'labels' must be a list of 10 integers.*different lengths.*ragged",
    ),
    BadInput(
        "CIFAR batch with 2-D labels",
        lambda t: _cifar_setup(t, lambda f: _rewrite_batch(f, labels=lambda ls: [[y] for y in ls])),
        ValueError,
        r"data_batch_2 is not a CIFAR-10 batch: 'labels' must be a list .*shape \(10, 1\)",
    ),
    BadInput(
        "CIFAR batch with fewer labels than images",
        lambda t: _cifar_setup(t, lambda f: _rewrite_batch(f, labels=lambda ls: ls[:-1])),
        ValueError,
        r"data_batch_2 is not a CIFAR-10 batch: 'labels' must be a list of 10 integers .*shape \(9,\)",
    ),
    BadInput(
        "CIFAR batch with ragged image rows",
        lambda t: _cifar_setup(
            t, lambda f: _rewrite_batch(f, data=lambda d: [list(row[: 3072 - i % 2]) for i, row in enumerate(d)])
        ),
        ValueError,
        r"data_batch_2 is not a CIFAR-10 batch: 'data' must be integers of shape \(N, 3072\), got 10 rows of "
        r"different lengths or types \(ragged\)",
    ),
    BadInput(
        "CIFAR batch with 3-D image data",
        lambda t: _cifar_setup(t, lambda f: _rewrite_batch(f, data=lambda d: d.reshape(len(d), 3, 1024))),
        ValueError,
        r"data_batch_2 is not a CIFAR-10 batch: 'data' must be integers of shape \(N, 3072\), got uint8 values of "
        r"shape \(10, 3, 1024\)",
    ),
    BadInput(
        "CIFAR batch without labels",
        lambda t: _cifar_setup(t, lambda f: _drop_labels(f / "data_batch_3")),
        ValueError,
        r"data_batch_3 is not a CIFAR-10 batch: expected a dict with 'data' and 'labels'",
    ),
    BadInput(
        "CIFAR batch holding a list",
        lambda t: _cifar_setup(t, lambda f: (f / "data_batch_4").write_bytes(pickle.dumps([1, 2, 3], protocol=2))),
        ValueError,
        r"data_batch_4 is not a CIFAR-10 batch: expected a dict with 'data' and 'labels'",
    ),
    # Through the command line (tests/catalogue.py's `cli`), with the default recipe: CIFAR-10
    BadInput(
        "CIFAR data missing, through the command line",
        lambda t: cli("fit", f"--data.source.init_args.root={t / 'nowhere'}", "--data.source.init_args.download=false"),
        Refused,
        r"nowhere/cifar-10-batches-py",
    ),
    BadInput(
        "CIFAR batch truncated, through the command line",
        lambda t: (
            write_cifar10(t / "data", per_batch=10),
            truncate(t / "data" / "cifar-10-batches-py" / "data_batch_4"),
            cli("fit", *_tiny_cifar(t / "data", t / "logs")),
        ),
        Refused,
        r"data_batch_4 is not a readable CIFAR-10 batch",
    ),
    BadInput(
        "--ckpt_path naming a folder, with no --config",
        # the default recipe parses the command line; the folder is then reported for what it is
        lambda t, runs: cli("test", f"--ckpt_path={runs.cifar_ckpt.parent}"),
        Refused,
        r"--ckpt_path .*checkpoints is a folder: name a checkpoint file; it holds .*last\.ckpt",
        needs_runs=True,
    ),
    BadInput(
        "audio checkpoint given to CIFAR-10 test",
        lambda t, runs: cli(
            "test", f"--config={CIFAR10_CONFIG}", *_tiny_cifar(runs.cifar_data, t), f"--ckpt_path={runs.fsdd_ckpt}"
        ),
        Refused,
        # --config names the recipe to evaluate with, so the model is the recipe's and the weights do not fit it
        r"The checkpoint's network does not fit the model built from the config: net\..*missing from the checkpoint",
        needs_runs=True,
    ),
    BadInput(
        "CIFAR-10 checkpoint given to FSDD test",
        lambda t, runs: cli("test", *tiny_fsdd_args(runs.fsdd_data, t, 1), f"--ckpt_path={runs.cifar_ckpt}"),
        Refused,
        r"The checkpoint's network does not fit the model built from the config: net\..*missing from the checkpoint",
        needs_runs=True,
    ),
]


@pytest.mark.parametrize("case", cases(CIFAR_BAD_INPUTS))
def test_bad_cifar10_files_are_refused_with_a_clear_error(case, tmp_path, request):
    """The reliability catalogue's cases for the CIFAR-10 source (see tests/catalogue.py). Only the cases
    that need them wait for the module's fits (a test worker given none of those skips them)."""
    check(case, tmp_path, *([request.getfixturevalue("cifar_runs")] if case.needs_runs else []))


@pytest.mark.slow  # a fit of the CIFAR-10 recipe first
def test_testing_a_checkpoint_logs_misclassified_images(fitted_cifar, tmp_path):
    ckpt = run_dir(fitted_cifar / "logs", "cifar10") / "checkpoints" / "last.ckpt"
    main(["test", f"--ckpt_path={ckpt}", f"--trainer.logger.init_args.save_dir={tmp_path}"])
    events = EventAccumulator(str(run_dir(tmp_path, "cifar10") / "test"), size_guidance={"images": 0})
    events.Reload()
    assert "test/misclassified" in events.Tags()["images"]


@pytest.mark.slow  # a fit of the CIFAR-10 recipe first
def test_predict_a_folder_of_images(fitted_cifar, tmp_path):
    """Any-size images in nested folders, resized to the net's 32x32, named by their path in the CSV."""
    from PIL import Image

    from project.examples.cifar10.tests.cifar_format import learnable_images

    rows, _ = learnable_images(3, seed=7)
    folder = tmp_path / "photos"
    (folder / "holiday").mkdir(parents=True)
    for i, row in enumerate(rows):
        image = Image.fromarray(row.reshape(3, 32, 32).transpose(1, 2, 0)).resize((64, 64))
        image.save(folder / ("holiday" if i else ".") / f"img{i}.png")
    ckpt = run_dir(fitted_cifar / "logs", "cifar10") / "checkpoints" / "last.ckpt"
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


@pytest.mark.slow
def test_missing_or_bad_cifar10_files_from_the_shell_have_no_traceback(tmp_path):
    """The data errors of tests/test_user_errors.py's shell test, for CIFAR-10's files."""
    from tests.test_user_errors import CLI, shell_errors

    tiny = tiny_cifar_args(tmp_path / "data", tmp_path / "logs", epochs=1)
    write_cifar10(tmp_path / "data", per_batch=10)
    bad = tmp_path / "bad"
    write_cifar10(bad, per_batch=10)
    (bad / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"\x80\x02 cut")
    missing = [f"--data.source.init_args.root={tmp_path / 'no'}", "--data.source.init_args.download=false"]
    failures = shell_errors(
        {
            "missing data": ([*CLI, "fit", *missing], "no/cifar-10"),
            "bad file": (
                [*CLI, "fit", *tiny, "--data.val_size=5", f"--data.source.init_args.root={bad}"],
                "data_batch_2 is not a readable CIFAR-10",
            ),
        }
    )
    assert not failures, "\n\n".join(failures)
