"""TensorBoard worth opening: after a tiny fit and test, the event files hold each view under its tag
(project/tasks/classification/metrics.py) with a readable shape; every view idles without a TensorBoard logger;
the tuner presets print what they found and the override to use.

On recipes of the tests' own: the tiny table (tests/recipes.py) and a tiny image set below.
"""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray
from torch import Tensor, nn

from project.engine.callbacks.tuner import LR_FINDER
from project.engine.cli import main
from project.engine.data import Samples, Source
from project.tasks.classification import metrics
from project.tasks.classification.embeddings import features_module
from tests.recipes import CLASSES, TinyNet, classifier, run_dir, tiny_args

PRESETS = Path(__file__).resolve().parents[1] / "configs" / "presets"
SHAPES = ("ring", "bar", "dot")
VIEWS = {  # added to tests/tiny.yaml's ConfusionMatrixImage: the views for every kind of data
    "trainer": {
        "callbacks+": [
            {
                "class_path": "project.tasks.classification.PerClassMetrics",
                "init_args": {"thresholds": 21, "pr_curve_tab": True},
            },
            {"class_path": "project.tasks.classification.TestEmbeddings", "init_args": {"max_samples": 50}},
        ]
    }
}


class TinyImages(Source):
    """(3, 16, 16) pictures of a ring, a bar or a dot in noise; a tenth of the test labels are wrong,
    so a test always has misclassified images to show."""

    classes = SHAPES

    def load(self, split: str) -> Samples | None:
        if split == "val":
            return None
        generator = torch.Generator().manual_seed(("train", "test").index(split))
        n = 120 if split == "train" else 60
        labels = torch.randint(0, 3, (n,), generator=generator)
        y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
        r = ((y - 7.5) ** 2 + (x - 7.5) ** 2).sqrt()
        patterns = torch.stack([((r > 4) & (r < 6)).float(), (abs(x - 7.5) < 2).float(), (r < 3).float()])
        images = patterns[labels][:, None].expand(-1, 3, -1, -1) + 0.3 * torch.randn(n, 3, 16, 16, generator=generator)
        if split == "test":
            labels[::10] = (labels[::10] + 1) % 3
        return Samples(images, labels)


class TinyConvNet(nn.Module):
    """(B, 3, 16, 16) -> (B, num_classes)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Linear(8 * 16, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def image_args(log_dir: Path) -> list[str]:
    recipe = {
        "model": classifier(
            net={"class_path": "tests.test_tensorboard_views.TinyConvNet"},
            optimizer={"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}},
            scheduler=None,
        ),
        "data": {
            "class_path": "project.engine.data.InMemoryDataModule",
            "init_args": {"source": {"class_path": "tests.test_tensorboard_views.TinyImages"}, "batch_size": 20},
        },
        "trainer": {
            "logger": {"class_path": "project.engine.callbacks.TensorBoardLogger", "init_args": {"name": "images"}},
            "callbacks": [  # in place of tests/tiny.yaml's
                {
                    "class_path": "project.tasks.classification.ConfusionMatrixImage",
                    "init_args": {"normalize": True, "min_interval": 0},  # every epoch
                },
                {"class_path": "project.tasks.classification.MisclassifiedImages", "init_args": {"count": 8}},
                {"class_path": "project.engine.callbacks.ModelGraph"},
            ],
        },
    }
    return [
        *tiny_args(log_dir, epochs=2),
        f"--config={yaml.safe_dump(recipe)}",
        f"--config={yaml.safe_dump(VIEWS)}",
        "--trainer.precision=32-true",
    ]


def events(run: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run), size_guidance={"images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def image_size(accumulator: EventAccumulator, tag: str) -> tuple[int, int]:
    image = accumulator.Images(tag)[-1]
    return image.width, image.height


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A tiny image fit of 2 epochs, then `test` on its last checkpoint."""
    root = tmp_path_factory.mktemp("views")
    main(["fit", *image_args(root / "logs")])
    fitted = run_dir(root / "logs", "images")
    main(["test", *image_args(root / "logs"), f"--ckpt_path={fitted / 'checkpoints' / 'last.ckpt'}"])
    # the fit and the test of its checkpoint: sub-runs of the one run folder (project/engine/runs.py)
    assert run_dir(root / "logs", "images") == fitted
    return fitted / "fit", fitted / "test"


def test_fit_logs_readable_pictures_tables_and_curves(image_run):
    fitted, _ = image_run
    found = events(fitted)
    assert len(found.Images(metrics.VAL_CONFUSION_MATRIX)) == 2, "one per validation epoch, none for the sanity check"
    for tag in (metrics.VAL_CONFUSION_MATRIX, metrics.VAL_CONFUSION_MATRIX_NORMALIZED):
        width, height = image_size(found, tag)
        # TensorBoard's image card shows about 340 px unscaled: the numbers keep the size they are drawn at
        assert 300 <= width <= 360 and 250 <= height <= 500, (tag, width, height)

    table = found.Tensors(f"{metrics.VAL_PER_CLASS}/text_summary")[-1].tensor_proto.string_val[0].decode()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| class")]
    assert [row.split("|")[1].strip() for row in rows] == list(SHAPES), table
    assert all(len(row.split("|")) == 7 for row in rows), "class, precision, recall, F1, support"

    for name in SHAPES:
        curve = make_ndarray(found.Tensors(f"{metrics.VAL_PR_CURVE}{name}")[-1].tensor_proto)
        assert curve.shape == (6, 21), "TP, FP, TN, FN, precision, recall at each of the 21 thresholds"
        assert curve[5, 0] == 1.0 and curve[3, 0] == 0, "at threshold 0 every sample is called positive: recall 1"
    width, height = image_size(found, metrics.VAL_PR_CURVES)
    assert 350 <= width <= 450 and 150 <= height <= 250, ("three classes: one row of charts", width, height)
    assert found.Tags()["graph"], "ModelGraph was listed: the graph is in the event file"
    assert "epoch" not in found.Tags()["scalars"], "no card of Lightning's epoch count above train/ and val/"
    assert metrics.VAL_LOSS in found.Tags()["scalars"]


def test_test_logs_misclassified_images_and_the_projector(image_run):
    _, tested = image_run
    found = events(tested)
    width, height = image_size(found, metrics.TEST_MISCLASSIFIED)
    # Three columns of 130 px: about the width of TensorBoard's image card, so captions are not shrunk
    assert 350 <= width <= 450 and height >= 150, (width, height)
    assert f"{metrics.TEST_PER_CLASS}/text_summary" in found.Tags()["tensors"]

    assert (tested / "projector_config.pbtxt").is_file()
    (folder,) = tested.glob("*/test%2fembeddings")
    vectors = np.loadtxt(folder / "tensors.tsv", delimiter="\t")
    assert vectors.shape == (50, 8 * 16), "max_samples rows of the head's input features"
    metadata = (folder / "metadata.tsv").read_text().splitlines()
    assert metadata[0].split("\t") == ["label", "predicted", "correct"] and len(metadata) == 51
    assert {row.split("\t")[0] for row in metadata[1:]} <= set(SHAPES)
    assert (folder / "sprite.png").is_file(), "image data: thumbnails in the projector"


def test_table_data_gets_curves_and_embeddings_without_a_sprite_and_no_graph(tmp_path):
    main(["fit", *tiny_args(tmp_path / "logs", epochs=1), f"--config={yaml.safe_dump(VIEWS)}"])
    fitted = run_dir(tmp_path / "logs")
    found = events(fitted / "fit")
    assert {f"{metrics.VAL_PR_CURVE}{name}" for name in CLASSES} <= set(found.Tags()["tensors"])
    assert not found.Tags()["graph"], "the graph is off unless ModelGraph is listed"
    main(["test", *tiny_args(tmp_path / "logs"), f"--config={yaml.safe_dump(VIEWS)}",
          f"--ckpt_path={fitted / 'checkpoints' / 'last.ckpt'}"])  # fmt: skip
    (folder,) = (run_dir(tmp_path / "logs") / "test").glob("*/test%2fembeddings")
    assert len((folder / "metadata.tsv").read_text().splitlines()) == 51 and not (folder / "sprite.png").exists()


@pytest.mark.parametrize("logger", ["lightning.pytorch.loggers.CSVLogger", "false"])
def test_every_view_idles_quietly_without_tensorboard(logger, tmp_path):
    args = [*tiny_args(tmp_path / "logs", epochs=1), f"--config={yaml.safe_dump(VIEWS)}", f"--trainer.logger={logger}"]
    if logger != "false":
        args.append(f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}")
    args += [f"--trainer.default_root_dir={tmp_path}", "--trainer.callbacks+=project.engine.callbacks.ModelGraph"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = main(["fit", *args])
        main(["test", *args, f"--ckpt_path={cli.trainer.checkpoint_callback.best_model_path}"])
    ours = [str(w.message) for w in caught if "TensorBoard" in str(w.message) or "project/callbacks" in w.filename]
    assert not ours, ours
    assert not list(tmp_path.rglob("events.out.tfevents.*")) and not list(tmp_path.rglob("projector_config.pbtxt"))


def test_embeddings_take_the_last_linear_layer_or_a_named_module():
    net = TinyNet(3)
    assert features_module(net, None) is net.layers[4]
    assert features_module(net, "layers.1") is net.layers[1]
    with pytest.raises(Exception, match="no module named 'head'"):
        features_module(net, "head")


def test_learning_rate_finder_preset_prints_the_suggestion_and_its_override(tmp_path, capsys):
    args = [*tiny_args(tmp_path / "logs", epochs=20), f"--config={PRESETS / 'lr_find.yaml'}"]
    cli = main(["fit", *args])
    out = capsys.readouterr().out
    assert "Suggested learning rate: " in out
    suggested = float(re.search(r"Suggested learning rate: (\S+)\. Train", out).group(1))
    assert f"--model.scheduler.init_args.max_lr {suggested:.3g}" in out, "a one-cycle recipe: the peak lr"
    assert cli.trainer.global_step == 0, "the fit ends after the test; the weights are as before it"
    assert LR_FINDER in events(run_dir(tmp_path / "logs") / "fit").Tags()["images"]
    assert not list(Path.cwd().glob(".lr_find_*.ckpt")), "Lightning's temporary checkpoint is gone"


def test_batch_size_finder_preset_prints_the_largest_batch_and_its_override(tmp_path, capsys):
    preset = f"--config={PRESETS / 'batch_size.yaml'}"
    cli = main(["fit", *tiny_args(tmp_path / "logs", epochs=1), preset, "--data.source.init_args.train=36"])
    out = capsys.readouterr().out
    # 16 training samples: 2, 4, 8, 16 fit, 32 has no full batch
    assert "Largest batch size that fits: 16. Train with it by adding: --data.batch_size 16" in out
    assert cli.trainer.global_step == 0
    assert not list(Path.cwd().glob(".scale_batch_size_*.ckpt"))


def test_binned_counts_match_torchmetrics_curve_and_stay_deterministic():
    from torchmetrics.classification import MulticlassPrecisionRecallCurve

    from project.tasks.classification.per_class import BinnedCounts

    probs, labels = torch.rand(50, 4).softmax(dim=1), torch.randint(0, 4, (50,))
    ours = BinnedCounts(4, thresholds=11)
    ours.update(probs[:20], labels[:20])
    ours.update(probs[20:], labels[20:])
    found = ours.compute()
    reference = MulticlassPrecisionRecallCurve(4, thresholds=11)
    reference.update(probs, labels)
    counts = reference.confmat  # (T, C, target, predicted)
    for key, (target, called) in {"tp": (1, 1), "fp": (0, 1), "fn": (1, 0), "tn": (0, 0)}.items():
        assert torch.equal(found[key], counts[..., target, called]), key


def test_samples_shown_are_errors_first_one_per_class_then_correct_ones():
    from project.tasks.classification.reports import ShownErrors
    from project.tasks.classification.spectrograms import FirstPerClass

    clips = FirstPerClass(num_classes=9)
    # (true, predicted): class 0 right then wrong, class 1 right, class 2 wrong twice, class 3 and 4 right
    pairs = [(0, 0), (0, 1), (1, 1), (2, 0), (2, 1), (3, 3), (4, 4)]
    labels, preds = torch.tensor([y for y, _ in pairs]), torch.tensor([p for _, p in pairs])
    waves = torch.arange(7.0)[:, None].expand(7, 3)  # (B, T): clip i holds the value i
    clips.offer(waves, torch.full((7,), 3), labels, preds)
    chosen = [(int(w[0]), y, p) for w, y, p in clips.chosen(4)]
    assert chosen == [(1, 0, 1), (2, 1, 1), (3, 2, 0), (5, 3, 3)], "an error of 0 and 2, correct 1 and 3"
    # a later, longer batch: errors of 5 and 6 win over correct clips; each clip keeps its own length
    clips.offer(torch.ones(4, 5), torch.tensor([5, 4, 5, 5]), torch.tensor([5, 6, 7, 8]), torch.zeros(4, dtype=int))
    chosen = clips.chosen(4)
    assert [y for _, y, _ in chosen] == [0, 2, 5, 6], "errors first, by class"
    assert [len(w) for w, _, _ in chosen] == [3, 3, 5, 4]

    images = ShownErrors(count=3)
    images.offer([1, 1, 1, 2, 0], [0, 0, 0, 0, 1], lambda i: i)
    assert images.chosen() == [4, 0, 3], "a first error of each class (0, 1, 2) before a second of any"
