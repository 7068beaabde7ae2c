"""The engine serves any LightningModule: docs/make-it-yours.md's regression and multi-label tasks, as written there,
and a bare module that offers none of the protocol, each through fit, test, predict, exact resume after SIGTERM,
a sweep that optimises the task's own metric in its own direction, and cross-validation."""

import csv
import json
import signal
from pathlib import Path

import lightning as L
import optuna
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor, nn

from project.engine.cli import main
from project.engine.runs import run_folder
from tests.test_interrupts import _assert_resumes_exactly
from tests.test_readme_example import example_files, write_into_package

FEATURES = 8
LABELS = ("red", "round", "big")


def _tables(folder: Path, target: str) -> dict[str, Path]:
    """train.pt and test.pt of a table whose targets are a linear function of the features (`value`), or whether
    each of the first three features is positive (`labels`)."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(FEATURES, generator=generator)
    files = {}
    for split, n in (("train", 240), ("test", 60)):
        x = torch.randn(n, FEATURES, generator=generator)
        y = x @ weights + 0.05 * torch.randn(n, generator=generator) if target == "value" else (x[:, :3] > 0).float()
        torch.save({"features": x, "labels": y}, folder / f"{split}.pt")
        files[split] = folder / f"{split}.pt"
    return files


TASKS = {  # the docs' module, its recipe, the target kind, the validation metric, its mode
    "regression": ("project/tasks/regression.py", "configs/houses.yaml", "value", "val/mae", "min"),
    "multilabel": ("project/tasks/multilabel.py", "configs/tags.yaml", "labels", "val/f1", "max"),
}


@pytest.fixture
def task(request, tmp_path, monkeypatch):
    """(the name, the recipe as a file, the arguments that point it at a table and keep the fit tiny)."""
    name = request.param
    module, recipe, target, _, _ = TASKS[name]
    write_into_package(monkeypatch, tmp_path / "tasks", module, example_files()[module])
    path = tmp_path / Path(recipe).name
    path.write_text(example_files()[recipe])
    files = _tables(tmp_path / "data", target)

    def args(log_dir: Path, epochs: int = 4) -> list[str]:
        return [
            f"--config={path}",
            f"--data.source.init_args.train={files['train']}",
            f"--data.source.init_args.test={files['test']}",
            "--data.batch_size=32",
            "--trainer.accelerator=cpu",
            "--trainer.devices=1",
            f"--trainer.max_epochs={epochs}",
            "--trainer.log_every_n_steps=2",
            "--trainer.enable_progress_bar=false",
            f"--trainer.logger.init_args.save_dir={log_dir}",
        ]

    return name, path, args


def _events(run: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "fit"))  # the fit's sub-run of the run folder
    events.Reload()
    return set(events.Tags()["scalars"])


@pytest.mark.parametrize("task", sorted(TASKS), indirect=True)
def test_a_task_of_the_docs_fits_tests_and_predicts_with_its_own_best_and_columns(task, tmp_path, capsys):
    name, _, args = task
    _, _, _, monitor, mode = TASKS[name]
    fit = main(["fit", *args(tmp_path / "logs", epochs=12)])
    value = float(fit.trainer.callback_metrics[monitor])
    if name == "regression":
        targets = torch.load(tmp_path / "data" / "train.pt")["labels"]
        guess = (targets - targets.mean()).abs().mean()  # the error of always predicting the mean
        assert value < guess / 3, f"{monitor}={value}: predicting the mean gives {guess:.2f}"
    else:
        assert value > 0.8, f"{monitor}={value}: three labels, each read off one feature"
    checkpoint = fit.trainer.checkpoint_callback
    assert (checkpoint.monitor, checkpoint.mode) == (monitor, mode), "best is the recipe's"
    run = run_folder(fit.trainer)
    best = monitor.replace("/", "/best_")
    assert best in _events(run), f"the best value is logged under {best}"
    assert f"Best {monitor}:" in capsys.readouterr().out
    last = run / "checkpoints" / "last.ckpt"
    tested = main(["test", f"--ckpt_path={last}", "--trainer.enable_progress_bar=false"])  # the run's own config
    assert monitor.replace("val/", "test/") in tested.trainer.callback_metrics
    out = tmp_path / "predictions.csv"
    main(["predict", *args(tmp_path / "logs"), f"--ckpt_path={last}", f"--predictions.output={out}"])
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 60 and rows[0]["sample"] == "test/0"
    if name == "regression":
        assert list(rows[0]) == ["sample", "predicted", "target"]
        error = sum(abs(float(r["predicted"]) - float(r["target"])) for r in rows) / len(rows)
        assert error < guess / 3, "the CSV's predictions are the model's"
    else:
        assert list(rows[0]) == ["sample", *(f"p_{label}" for label in LABELS), *LABELS]
        assert all(0 <= float(r["p_red"]) <= 1 and float(r["red"]) in (0, 1) for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS), indirect=True)
def test_a_task_of_the_docs_resumes_bit_exact_after_sigterm(task, tmp_path):
    _, _, args = task
    # 192 training rows (a fifth held out) in batches of 32: 6 steps an epoch; SIGTERM in the 8th step
    _assert_resumes_exactly(lambda log_dir: [*args(log_dir, epochs=3), "--trainer.deterministic=true"],
                            signal.SIGTERM, 7, 6, tmp_path)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS), indirect=True)
def test_a_sweep_optimises_the_task_s_own_metric_in_its_direction(task, tmp_path, monkeypatch):
    from project.engine.sweep.__main__ import main as sweep

    name, recipe, args = task
    _, _, _, monitor, mode = TASKS[name]
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"model.optimizer.init_args.lr": {"type": "float", "low": 1e-3, "high": 1e-2}}))
    overrides = args(tmp_path / "logs", epochs=2)[1:]  # all but the recipe, for every trial's fit
    monkeypatch.chdir(tmp_path)
    sweep(["--config", str(recipe), "--search", str(space), "--trials", "2", "--study", "s", "--", *overrides])
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'logs' / 's' / 'study.db'}")
    assert study.direction.name.lower() == ("minimize" if mode == "min" else "maximize")
    values = [t.value for t in study.trials]
    assert len(values) == 2 and study.best_value == (min if mode == "min" else max)(values)
    assert monitor in (tmp_path / "logs" / "s" / "trials.txt").read_text(), "the table is headed by the metric"


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS), indirect=True)
def test_cross_validation_summarises_the_task_s_test_metrics(task, tmp_path, monkeypatch):
    from project.engine.crossval.__main__ import main as crossval

    name, recipe, args = task
    test_metric = TASKS[name][3].replace("val/", "test/")
    overrides = args(tmp_path / "logs", epochs=2)[1:]
    monkeypatch.chdir(tmp_path)
    crossval(["--config", str(recipe), "--num_folds", "2", "--", *overrides])
    summary = json.loads(next((tmp_path / "logs").rglob("crossval.json")).read_text())
    assert test_metric in summary["mean"] and test_metric in summary["std"], sorted(summary["mean"])
    assert all(record["test_samples"] for record in summary["folds"]), "each fold says how many samples it tested"


class Bare(L.LightningModule):
    """A module that offers none of the engine's protocol: no net argument, no step_outputs, a bare tensor from
    predict_step, its own layers."""

    def __init__(self, hidden: int = 16, lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters()
        self.layers = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.layers(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val/loss", nn.functional.cross_entropy(self.layers(x), y))

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("test/loss", nn.functional.cross_entropy(self.layers(x), y))

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self.layers(batch[0]).softmax(-1)  # (B, 3): three columns

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _bare_args(log_dir: Path, epochs: int = 2) -> list[str]:
    from tests.recipes import tiny_args

    model = yaml.safe_dump({"model": {"class_path": f"{__name__}.Bare"}, "checkpoint": {"monitor": "val/loss"}})
    # tests/tiny.yaml's data and trainer, its model replaced whole
    return [*tiny_args(log_dir, epochs), "--model", f"{__name__}.Bare", "--config", model]


def test_a_module_offering_none_of_the_protocol_fits_tests_predicts_and_resumes(tmp_path):
    fit = main(["fit", *_bare_args(tmp_path / "logs")])
    assert fit.trainer.global_step == 10 and fit.trainer.checkpoint_callback.monitor == "val/loss"
    last = run_folder(fit.trainer) / "checkpoints" / "last.ckpt"
    assert "test/loss" in main(["test", *_bare_args(tmp_path / "logs"), f"--ckpt_path={last}"]).trainer.callback_metrics
    out = tmp_path / "p.csv"
    main(["predict", *_bare_args(tmp_path / "logs"), f"--ckpt_path={last}", f"--predictions.output={out}"])
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["sample", "prediction_0", "prediction_1", "prediction_2"] and len(rows) == 100
    resumed = main(["fit", *_bare_args(tmp_path / "logs", epochs=3), f"--ckpt_path={last}"])
    assert resumed.trainer.global_step == 15


@pytest.mark.parametrize("view", ["ConfusionMatrixImage", "PerClassMetrics", "TestEmbeddings", "MisclassifiedImages"])
def test_a_view_that_the_model_cannot_feed_stops_the_fit_at_its_start_in_one_line(view, tmp_path):
    from project.engine.errors import ConfigError

    args = [*_bare_args(tmp_path / "logs"), f"--trainer.callbacks+=project.tasks.classification.{view}"]
    with pytest.raises(ConfigError, match=rf"^{view} reads .* from the model's validation and test steps, which Bare"):
        main(["fit", *args])


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("value", r"model\.num_classes is not set and the data names no classes"),
        ("labels", r"Classifier takes class indices \(B,\) as targets, and this data gives torch\.float32 \(32, 3\)"),
    ],
)
def test_the_classifier_refuses_targets_that_are_not_class_indices_in_one_line(target, message, tmp_path):
    from project.engine.errors import ConfigError

    files = _tables(tmp_path / "data", target)
    args = [
        "--config=features",
        f"--data.source.init_args.train={files['train']}",
        f"--data.source.init_args.test={files['test']}",
        f"--data.source.init_args.target={target}",
        "--data.batch_size=32",
        "--trainer.callbacks=[]",
        "--trainer.fast_dev_run=1",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]
    with pytest.raises(ConfigError, match=message):
        main(["fit", *args])


class LinesWriter(BasePredictionWriter):
    """A fork's own writer: each prediction's largest column, one per line."""

    def __init__(self, output: str):
        super().__init__(write_interval="epoch")
        self.output = output

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        rows = torch.cat([p.argmax(-1) for p in predictions]).tolist()
        Path(self.output).write_text("".join(f"{row}\n" for row in rows))


def test_the_prediction_writer_is_the_fork_s_to_replace(tmp_path):
    fit = main(["fit", *_bare_args(tmp_path / "logs", epochs=1)])
    last = run_folder(fit.trainer) / "checkpoints" / "last.ckpt"
    out = tmp_path / "lines.txt"
    writer = [f"--predictions={__name__}.LinesWriter", f"--predictions.output={out}"]
    main(["predict", *_bare_args(tmp_path / "logs"), f"--ckpt_path={last}", *writer])
    assert len(out.read_text().splitlines()) == 100 and not list(tmp_path.rglob("predictions.csv"))
