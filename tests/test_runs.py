"""A run is one thing: a resume takes its run's own config and folder and refuses what would make another
run; one process per run folder; a failed start leaves no folder; a checkpoint alone rebuilds its run."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from project.engine.cli import main
from project.engine.errors import ConfigError
from tests.extras import needs_extra

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "features.yaml"


def _write_features(folder: Path) -> None:
    """The features recipe's files: 16 features, the label the largest of the first 3 (learnable)."""
    folder.mkdir(parents=True)
    for split, rows in (("train", 80), ("test", 30)):
        x = torch.randn(rows, 16, generator=torch.Generator().manual_seed(len(split)))
        torch.save({"features": x, "labels": x[:, :3].argmax(1)}, folder / f"{split}.pt")


def _cpu(epochs: int) -> list[str]:
    return [
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        f"--trainer.max_epochs={epochs}",
        "--trainer.enable_progress_bar=false",
        "--data.batch_size=16",
    ]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """A working folder with the features recipe's data at its default paths (data/features/*.pt)."""
    _write_features(tmp_path / "data" / "features")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _versions(logs: Path, name: str = "features") -> list[str]:
    return sorted(p.name for p in (logs / name).glob("*") if p.is_dir())


def test_resume_takes_its_runs_config_and_folder_from_anywhere(in_tmp, monkeypatch):
    """Run with presets and command-line keys, then resumed with nothing but --ckpt_path, from another
    folder: the same config, the same folder, no new version."""
    main(["fit", "--config", "features", "--preset", "csv", *_cpu(2), "--model.net.init_args.hidden=[8]"])
    assert _versions(in_tmp / "logs") == ["version_0"]
    last = in_tmp / "logs" / "features" / "version_0" / "checkpoints" / "last.ckpt"
    elsewhere = in_tmp / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    resumed = main(["fit", f"--ckpt_path={last}", "--trainer.max_epochs=3"])
    assert resumed.trainer.current_epoch == 3
    assert type(resumed.trainer.logger).__name__ == "CSVLogger", "the preset is part of the run"
    net = resumed.config["fit"]["model"]["init_args"]["net"]
    assert list(net["init_args"]["hidden"]) == [8], "so are the command line's keys"
    assert _versions(in_tmp / "logs") == ["version_0"] and not (elsewhere / "logs").exists()
    assert (in_tmp / "logs" / "features" / "version_0" / "resume_config.yaml").is_file()


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("--data.batch_size=8", "data.batch_size=16"),
        ("--data.val_size=0.5", "data.val_size=0.2"),
        ("--data.seed=5", "data.seed=0"),
        ("--seed_everything=7", "seed_everything=0"),
        ("--model.net.init_args.hidden=[4]", "model.net.hidden=[8]"),
    ],
)
def test_resume_refuses_a_key_that_changes_what_the_run_computes(key, shown, trained_run):
    with pytest.raises(ConfigError, match=f"made with {re.escape(shown)}.*StartFromWeights"):
        main(["fit", f"--ckpt_path={trained_run}", key])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    _write_features(root / "data")
    data = [f"--data.source.init_args.train={root / 'data' / 'train.pt'}"]
    data += [f"--data.source.init_args.test={root / 'data' / 'test.pt'}"]
    logs = [f"--trainer.logger.init_args.save_dir={root / 'logs'}"]
    main(["fit", "--config", "features", *_cpu(1), *data, *logs, "--model.net.init_args.hidden=[8]"])
    return root / "logs" / "features" / "version_0" / "checkpoints" / "last.ckpt"


def test_resume_allows_what_does_not_change_the_run(trained_run):
    resumed = main(["fit", f"--ckpt_path={trained_run}", "--trainer.max_epochs=2", "--trainer.log_every_n_steps=1"])
    assert resumed.trainer.current_epoch == 2


def test_a_new_run_starts_from_a_checkpoints_weights(trained_run, tmp_path):
    """What a refused resume suggests: a new run (another batch size) from the checkpoint's weights."""
    state = torch.load(trained_run, weights_only=True)["state_dict"]
    cli = main(
        [
            "fit",
            f"--config={trained_run.parents[1] / 'config.yaml'}",
            "--data.batch_size=8",
            "--model.optimizer.init_args.lr=0",  # nothing learnt: the weights stay those it started from
            "--trainer.callbacks+=project.engine.callbacks.StartFromWeights",
            f"--trainer.callbacks.checkpoint={trained_run}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
        ]
    )
    weights = {k: v for k, v in cli.model.state_dict().items() if "running" not in k and "batches" not in k}
    assert weights and all(torch.equal(state[k], v) for k, v in weights.items())
    assert cli.trainer.global_step > 0 and cli.trainer.current_epoch == 1, "a new run: from step 0 to its end"


class FailAtStart(L.Callback):
    def on_train_start(self, trainer, pl_module):
        raise ConfigError("failing before the first step")


def test_a_fit_failing_before_its_first_step_leaves_no_folder_and_no_checkpoint(in_tmp, capsys):
    fail = f"--trainer.callbacks+={__name__}.FailAtStart"
    with pytest.raises(ConfigError):
        main(["fit", "--config", "features", *_cpu(1), fail])
    assert not (in_tmp / "logs" / "features").exists() or _versions(in_tmp / "logs") == []
    main(["fit", "--config", "features", *_cpu(1)])
    assert _versions(in_tmp / "logs") == ["version_0"], "the first run that trained is version_0"
    last = in_tmp / "logs" / "features" / "version_0" / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    capsys.readouterr()
    with pytest.raises(ConfigError):  # a resume failing before its first step: last.ckpt left as it was
        main(["fit", f"--ckpt_path={last}", "--trainer.max_epochs=2", fail])
    assert last.read_bytes() == before
    assert "Interrupted" not in capsys.readouterr().err


def test_one_fit_per_run_folder(in_tmp):
    """A named version another live process holds is refused before anything is written; a lock left by
    a process that is gone is taken over."""
    folder = in_tmp / "logs" / "features" / "baseline"
    folder.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / ".fit.lock").write_text(f"{holder.pid}\n")
        named = ["fit", "--config", "features", *_cpu(1), "--trainer.logger.init_args.version=baseline"]
        with pytest.raises(ConfigError, match=rf"another fit \(process {holder.pid}, still running\)"):
            main(named)
        assert [p.name for p in folder.iterdir()] == [".fit.lock"], "nothing written into the held folder"
    finally:
        holder.kill()
        holder.wait()
    main(named)  # the holder is gone: its lock is stale
    assert (folder / "config.yaml").is_file() and not (folder / ".fit.lock").exists()
    with pytest.raises(ConfigError, match="already holds a run"):
        main(named)


def test_a_checkpoint_alone_rebuilds_its_run_from_any_folder(trained_run, tmp_path, monkeypatch):
    """Copied away from its run folder and tested from another working folder: its data paths were stored
    resolved, and its run name and views come back with it."""
    shutil.copy(trained_run, tmp_path / "model.ckpt")
    monkeypatch.chdir(tmp_path)
    tested = main(
        ["test", "--ckpt_path=model.ckpt", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false"]
    )
    log_dir = Path(tested.trainer.log_dir)
    assert log_dir.name == "test" and log_dir.parent.parent.name == "features", "the run's name, the test's sub-run"
    assert "ConfusionMatrixImage" in {type(c).__name__ for c in tested.trainer.callbacks}


@pytest.mark.parametrize("preset", ["nologger", "mlflow"])
def test_presets_keep_the_recipes_run_name(preset, in_tmp):
    if preset == "mlflow":
        needs_extra("mlflow")
    cli = main(["--config", "features", "--preset", preset, *_cpu(1)], run=False)
    if preset == "nologger":
        assert Path(cli.trainer.default_root_dir).parent.name == "features"
    else:
        assert cli.trainer.logger._experiment_name == "features"


def test_process_lock_is_released_after_a_fit(in_tmp):
    main(["fit", "--config", "features", *_cpu(1)])
    assert not list((in_tmp / "logs").rglob(".fit.lock"))
    assert os.getpid()  # the same process may fit again into a new folder


class RunAway(torch.nn.Module):
    """A net whose weights run away to 1e30 at training call `away` (the loss stays finite) and whose loss
    becomes NaN from training call `nan` on: the divergence the NaN guard meets in practice."""

    def __init__(self, num_classes: int, in_features: int = 8, away: int = 7, nan: int = 13):
        super().__init__()
        self.linear = torch.nn.Linear(in_features, num_classes)
        self.away, self.nan, self.calls = away, nan, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.away:
                with torch.no_grad():
                    self.linear.weight.fill_(1e30)
        logits = self.linear(x)
        return logits * float("nan") if self.training and self.calls >= self.nan else logits


def test_nan_guard_names_the_checkpoint_before_the_divergence(tmp_path):
    """The last checkpoint before the NaN holds finite but ruined weights: the message says so and names
    the best one, from before the divergence, with the command that starts from it."""
    from project.engine.callbacks import NonFiniteLossError
    from tests.recipes import tiny_args

    net = [f"--model.net={__name__}.RunAway", "--model.scheduler=null"]
    with pytest.raises(NonFiniteLossError) as stopped:
        main(["fit", *tiny_args(tmp_path, epochs=3), *net])
    message = str(stopped.value)
    best = next((tmp_path / "tiny" / "version_0" / "checkpoints").glob("best-*step5.ckpt"))
    assert "has weights up to 1.0e+30 (already diverging)" in message, message
    assert f"Start a new run from {best} " in message and "StartFromWeights" in message, message
    assert torch.load(best, weights_only=True)["state_dict"]["net.linear.weight"].abs().max() < 1e3
