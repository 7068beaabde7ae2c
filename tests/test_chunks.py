"""LitData: any source optimized into chunks (`python -m project.optimize`) and trained from them."""

import contextlib
import functools
import io
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from project.engine.cli import main
from project.engine.data import AudioDataModule, ImageDataModule, ImageFolder, LitDataAudio, LitDataImages, WavFolder
from project.engine.data.optimize import main as optimize
from project.engine.errors import ConfigError, DataError
from tests.catalogue import BadInput, Refused, cases, check, cli
from tests.extras import needs_extra
from tests.image_tree import truncate, write_image_tree
from tests.recipes import TINY
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
    meta = json.loads((chunks / "optimized.json").read_text())
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
    with pytest.raises(FileNotFoundError, match=r"optimized\.json does not exist"):
        LitDataImages(str(tmp_path))


@pytest.mark.slow
def test_fit_test_and_predict_from_chunks_through_the_cli(chunks, tmp_path):
    args = [
        f"--config={TINY}",  # the tests' own recipe, its data and net replaced: every fork has it
        "--data=project.engine.data.ImageDataModule",
        "--data.source=project.engine.data.LitDataImages",
        f"--data.source.init_args.input_dir={chunks}",
        "--data.in_memory=false",
        "--data.batch_size=6",
        "--model.net=project.models.ResNet",
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


# ------------------------------------------------------------------------- damaged or foreign chunk folders


@functools.lru_cache(maxsize=1)
def _pristine() -> Path:
    """Chunks of 24 small images, written once per process, copied by each case that damages them."""
    root = Path(tempfile.mkdtemp(prefix="pristine_chunks_"))
    write_image_tree(root / "images" / "train", per_class=6)
    write_image_tree(root / "images" / "test", per_class=2, seed=1)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        optimize([*image_args(root / "images"), f"--output_dir={root / 'chunks'}", "--num_workers=1"])
    return root / "chunks"


def _damaged(folder: Path, damage: Callable[[Path], object]) -> Path:
    chunks = folder / "chunks"
    shutil.copytree(_pristine(), chunks)
    damage(chunks)
    return chunks


def _edit_json(path: Path, edit: Callable[[dict], object]) -> None:
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))


def _chunk(chunks: Path) -> Path:
    return chunks / "train" / "chunk-0-0.bin"


def _overwrite_header(chunks: Path) -> None:
    data = bytearray(_chunk(chunks).read_bytes())
    data[:8] = b"\xf4\xff\xff\xff\x00\x01\x02\x03"  # the item count LitData read as KeyError: 4294967284
    _chunk(chunks).write_bytes(bytes(data))


def _opened(chunks: Path) -> object:
    return LitDataImages(str(chunks))


def _outside(chunks: Path, name: str) -> None:
    other = chunks.parent / "other" / "train"
    other.mkdir(parents=True)
    shutil.copy(_chunk(chunks), other / "chunk-0-0.bin")
    _edit_json(chunks / "train" / "index.json", lambda index: index["chunks"][0].update(filename=name))


CHUNK_DAMAGE = [  # (name, damage, what the message must say): each one line naming the file
    (
        "index.json not JSON",
        lambda c: (c / "train" / "index.json").write_text("{not json"),
        r"train/index\.json is not valid JSON",
    ),
    (
        "index.json without chunks",
        lambda c: _edit_json(c / "train" / "index.json", lambda i: i.update(chunks=[])),
        r"train/index\.json lists no chunks",
    ),
    ("index.json missing", lambda c: (c / "train" / "index.json").unlink(), r"train/index\.json does not exist"),
    ("chunk file missing", lambda c: _chunk(c).unlink(), r"chunk-0-0\.bin does not exist"),
    ("chunk file empty", lambda c: _chunk(c).write_bytes(b""), r"chunk-0-0\.bin is 0 bytes, but .*index\.json says"),
    ("chunk file truncated", lambda c: truncate(_chunk(c)), r"chunk-0-0\.bin is \d+ bytes, but .*index\.json says"),
    (
        "chunk header overwritten",
        _overwrite_header,
        r"chunk-0-0\.bin does not start with the header of its \d+ samples",
    ),
    (
        "chunk path outside the folder",
        lambda c: _outside(c, "../../other/train/chunk-0-0.bin"),
        r"names the chunk file '\.\./\.\./other/train/chunk-0-0\.bin', outside",
    ),
    (
        "chunk path absolute",
        lambda c: _outside(c, str(c.parent / "other" / "train" / "chunk-0-0.bin")),
        r"names the chunk file '/.*', outside",
    ),
    ("optimized.json not JSON", lambda c: (c / "optimized.json").write_text(""), r"optimized\.json is not valid JSON"),
    (
        "optimized.json without classes",
        lambda c: _edit_json(c / "optimized.json", lambda m: m.pop("classes")),
        r"optimized\.json is not what `python -m project\.optimize` writes",
    ),
    (
        "optimized.json with another split size",
        lambda c: _edit_json(c / "optimized.json", lambda m: m["splits"].update(train=40)),
        r"train/index\.json lists \d+ samples but .*optimized\.json says the train split has 40",
    ),
]
CHUNKS = [
    BadInput(f"chunks: {name}", lambda folder, d=damage: _opened(_damaged(folder, d)), DataError, match)
    for name, damage, match in CHUNK_DAMAGE
]


@pytest.mark.parametrize("case", cases(CHUNKS))
def test_a_damaged_chunk_folder_is_one_line_naming_the_file(case, tmp_path):
    check(case, tmp_path)


def test_the_command_line_refuses_a_chunk_outside_the_folder_in_one_line(tmp_path):
    chunks = _damaged(tmp_path, lambda c: _outside(c, "../../other/train/chunk-0-0.bin"))
    args = ["--data=project.engine.data.ImageDataModule", "--data.source=project.engine.data.LitDataImages"]
    with pytest.raises(Refused, match=r"index\.json names the chunk file .*outside"):
        cli("fit", "--config=features", *args, f"--data.source.init_args.input_dir={chunks}", "--data.in_memory=false")


def _iterate(chunks: Path) -> None:
    data = ImageDataModule(LitDataImages(str(chunks)), in_memory=False, batch_size=6)
    data.setup("fit")
    for batch in data.train_dataloader():
        data.on_after_batch_transfer(batch, 0)  # where a training step meets a batch that could not be read


def _fewer_classes(chunks: Path) -> None:
    _edit_json(chunks / "optimized.json", lambda m: m.update(classes=m["classes"][:2]))


def _scrambled_samples(chunks: Path) -> None:
    data = bytearray(_chunk(chunks).read_bytes())
    header = 4 * (json.loads((chunks / "train" / "index.json").read_text())["chunks"][0]["chunk_size"] + 2)
    data[header:] = bytes(255 - b for b in data[header:])  # every sample's bytes, its tensor header too
    _chunk(chunks).write_bytes(bytes(data))


READ_DAMAGE = [
    BadInput(
        "chunks: labels beyond optimized.json's classes",
        lambda f: _iterate(_damaged(f, _fewer_classes)),
        DataError,
        r"a sample's label is 2, outside the 2 classes its optimized\.json names",
    ),
    BadInput(
        "chunks: samples scrambled",
        lambda f: _iterate(_damaged(f, _scrambled_samples)),
        DataError,
        r"train/chunk-0-0\.bin: a sample cannot be read",
    ),
]


@pytest.mark.parametrize("case", cases(READ_DAMAGE))
def test_a_damaged_sample_is_one_line_where_its_batch_is_trained(case, tmp_path):
    check(case, tmp_path)
