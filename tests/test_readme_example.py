"""docs/make-it-yours.md's examples, run as written: a table, an image and an audio data set, each one
source file and one YAML, through fit, test and predict; a network and a callback."""

import csv
import importlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from project.engine.cli import main
from tests.wav_format import write_wav

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "make-it-yours.md"


def example_files(page: Path = PAGE) -> dict[str, str]:
    """Code blocks whose first line is `# <path>`, keyed by that path."""
    return dict(re.findall(r"```(?:python|yaml)\n# (\S+)\n(.*?)```", page.read_text(), flags=re.S))


def write_into_package(monkeypatch, folder: Path, path: str, text: str) -> None:
    """Write a page's `project/<package>/<name>.py` into `folder`, made part of that package, so that
    `project.<package>.<name>` imports it as a fork's file would."""
    package = importlib.import_module(str(Path(path).parent).replace("/", "."))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / Path(path).name).write_text(text)
    if str(folder) not in package.__path__:
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])


def fit_test_predict(config: Path, tmp_path: Path, *overrides: str) -> tuple[float, list[dict], dict]:
    """Fit with the recipe, then test and predict its last checkpoint; (test accuracy, CSV rows, the fit's
    logged metrics)."""
    quiet = [f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}", "--trainer.enable_progress_bar=false"]
    fitted = main(["fit", "--config", str(config), *overrides, *quiet])
    assert fitted.trainer.callback_metrics["val/acc"] > 0.8
    last = next((tmp_path / "logs").rglob("last.ckpt"))
    tested = main(["test", f"--ckpt_path={last}", *quiet])
    out = tmp_path / "predictions.csv"
    main(["predict", f"--ckpt_path={last}", f"--predictions.output={out}", *quiet])
    rows = list(csv.DictReader(out.open()))
    return float(tested.trainer.callback_metrics["test/acc"]), rows, dict(fitted.trainer.callback_metrics)


@pytest.fixture
def page_sources(tmp_path, monkeypatch):
    """Writes a page's `project/...` file into a temporary folder that is made part of its package."""

    def write(path: str) -> None:
        write_into_package(monkeypatch, tmp_path / Path(path).parent.name, path, example_files()[path])

    return write


def test_the_table_example_is_the_shipped_source_and_recipe():
    files = example_files()
    for path in ("project/engine/data/sources/features.py", "configs/features.yaml"):
        assert files[path] == (ROOT / path).read_text(), f"{PAGE.name}'s {path} differs from the file"


def test_network_example_takes_its_sizes_and_gives_logits(page_sources):
    page_sources("project/models/linear.py")
    from project.models.linear import Linear

    net = Linear(num_classes=3, in_features=16)
    assert net(torch.randn(4, 16)).shape == (4, 3)  # (B, F) -> (B, num_classes)


@pytest.mark.slow
def test_table_example_fits_tests_and_predicts(tmp_path, page_sources):
    page_sources("project/callbacks/epoch_time.py")  # the callback example rides along on this fit
    generator = torch.Generator().manual_seed(0)
    for split, n in (("train", 600), ("test", 150)):
        labels = torch.randint(0, 3, (n,), generator=generator)
        features = torch.randn(n, 16, generator=generator) + 2 * torch.nn.functional.one_hot(labels, 16)
        torch.save({"features": features, "labels": labels}, tmp_path / f"{split}.pt")
    config = tmp_path / "features.yaml"
    config.write_text(example_files()["configs/features.yaml"])
    accuracy, rows, fit_metrics = fit_test_predict(
        config,
        tmp_path,
        f"--data.source.init_args.train={tmp_path / 'train.pt'}",
        f"--data.source.init_args.test={tmp_path / 'test.pt'}",
        "--trainer.max_epochs=5",
        "--trainer.callbacks+=project.callbacks.epoch_time.EpochTime",
    )
    assert accuracy > 0.8
    assert fit_metrics["train/epoch_seconds"] > 0  # the callback example logged
    assert len(rows) == 150 and {"sample", "predicted", "probability"} <= rows[0].keys()


@pytest.mark.slow
def test_image_example_fits_tests_and_predicts(tmp_path, page_sources):
    page_sources("project/data/mnist.py")
    # Digits stand-in: three of the ten digits, digit k a noisy grey of level 25k (no translation changes it)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 400), ("test", 60)):
        labels = rng.choice([0, 4, 9], n)
        images = rng.integers(0, 10, (n, 28, 28)) + 25 * labels[:, None, None]
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images.astype(np.uint8), labels.astype(np.uint8)
    np.savez(tmp_path / "mnist.npz", **arrays)
    config = tmp_path / "mnist.yaml"
    config.write_text(example_files()["configs/mnist.yaml"])
    accuracy, rows, _ = fit_test_predict(
        config,
        tmp_path,
        f"--data.source.init_args.path={tmp_path / 'mnist.npz'}",
        "--data.val_size=50",
        "--data.batch_size=50",
        "--model.net.init_args.widths=[8,16,16,16]",
        "--trainer.precision=32-true",
        "--trainer.max_epochs=6",
    )
    assert accuracy > 0.8, accuracy
    assert len(rows) == 60 and rows[0]["sample"] == "test/0"


@pytest.mark.slow
def test_audio_example_fits_tests_and_predicts(tmp_path, page_sources):
    page_sources("project/data/esc50.py")
    # ESC-50's layout with three sounds (a low tone, a high tone, noise), four clips a fold
    root = tmp_path / "ESC-50-master"
    (root / "meta").mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 8000
    sounds = {"low": lambda: np.sin(2 * np.pi * 300 * t), "high": lambda: np.sin(2 * np.pi * 2500 * t)}
    sounds["noise"] = lambda: rng.normal(0, 0.3, len(t))
    rows = []
    for fold in range(1, 6):
        for target, (category, make) in enumerate(sounds.items()):
            for take in range(4):
                name = f"{fold}-{category}-{take}.wav"
                write_wav(root / "audio" / name, 0.5 * make() * rng.uniform(0.5, 1), 8000)
                rows.append(f"{name},{fold},{target},{category}")
    (root / "meta" / "esc50.csv").write_text("filename,fold,target,category\n" + "\n".join(rows) + "\n")
    config = tmp_path / "esc50.yaml"
    config.write_text(example_files()["configs/esc50.yaml"])
    accuracy, predictions, _ = fit_test_predict(
        config,
        tmp_path,
        f"--data.source.init_args.root={root}",
        "--data.sample_rate=8000",
        "--model.net.init_args.sample_rate=8000",
        "--data.clip_seconds=1.0",
        "--data.batch_size=8",
        "--model.net.init_args.hidden_size=32",
        "--trainer.max_epochs=8",
    )
    assert accuracy > 0.8
    assert len(predictions) == 12 and predictions[0]["sample"] == "audio/5-low-0.wav"
