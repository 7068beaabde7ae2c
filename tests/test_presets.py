"""Presets stack over any recipe (`--preset NAME`, project/engine/recipes.py) and do what their files say;
outputs are honest: `--print_config` shows the precision that runs, callbacks a preset idles do not
warn, evaluations do not warn about the fit's checkpoint folder. Runs use the tests' tiny recipe."""

import os
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from project import settings
from project.engine.cli import main
from project.engine.errors import CheckpointError, ConfigError
from project.engine.recipes import default_recipe, prepare_args, preset_path, presets_dir, shipped
from project.tasks.classification import metrics
from tests.catalogue import Refused, cli
from tests.extras import needs_extra
from tests.recipes import TINY

GENERIC = ("debug", "overfit", "quick", "profile", "csv", "mlflow", "nologger")
# What a run must not say: Lightning's warning about the fit's checkpoint folder on an evaluation, its
# warning about missing checkpoint callbacks, and a drawing callback complaining it has no TensorBoard
NOISE = ("dirpath has changed", "callbacks used to create the checkpoint", "has no TensorBoardLogger")


def tiny(epochs: int = 1) -> list[str]:
    """The tiny recipe on one CPU process; logs in the working folder's logs/ (a preset may change the logger)."""
    return [
        "--config",
        str(TINY),
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        f"--trainer.max_epochs={epochs}",
        "--trainer.log_every_n_steps=2",
        "--trainer.enable_progress_bar=false",
    ]


def quiet(captured: str, caught: list[warnings.WarningMessage]) -> None:
    said = captured + "\n".join(str(w.message) for w in caught)
    for noise in NOISE:
        assert noise not in said, f"the run said {noise!r}"
    for drawer in ("ConfusionMatrixImage", "MisclassifiedImages", "LogSpectrograms"):
        assert not any(drawer in str(w.message) for w in caught), f"{drawer} warned"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """last.ckpt of a one-epoch tiny run."""
    folder = tmp_path_factory.mktemp("trained")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        cli = main(["fit", *tiny()])
        return Path(cli.trainer.checkpoint_callbacks[-1].dirpath).resolve() / "last.ckpt"
    finally:
        os.chdir(cwd)


# --- where presets come from and where they go --------------------------------------------------------


def test_every_generic_preset_ships_with_a_comment_for_each_file():
    for name in GENERIC:
        text = (presets_dir() / f"{name}.yaml").read_text()
        assert text.startswith(f"# `--preset {name}`"), f"{name}.yaml opens with what it is for"
        assert yaml.safe_load(text)["trainer"], name


def test_presets_stack_after_the_recipe_and_before_the_command_line_keys():
    debug, csv = preset_path("debug", None), preset_path("csv", None)
    args, defaults = prepare_args(["fit", "--config", str(TINY), "--trainer.max_epochs=1", "--preset", "debug"])
    assert args == ["fit", "--config", str(TINY), "--config", debug, "--trainer.max_epochs=1"]
    args, _ = prepare_args(["fit", "--preset=csv", f"--config={TINY}", "--seed_everything=1", "--preset=debug"])
    assert args == ["fit", f"--config={TINY}", "--config", csv, "--config", debug, "--seed_everything=1"]
    assert prepare_args(args) == (args, defaults), "a DDP re-launch reads the prepared arguments again"


def test_a_preset_is_never_the_recipe():
    """`fit` with only presets trains the default recipe under them; a preset file given with --config too."""
    default = default_recipe()
    args, defaults = prepare_args(["fit", "--preset", "debug", "--trainer.max_epochs=1"])
    assert defaults[-1] == default and args == [
        "fit",
        "--config",
        preset_path("debug", default),
        "--trainer.max_epochs=1",
    ]
    as_file = ["fit", "--config", str(presets_dir() / "debug.yaml")]
    assert prepare_args(as_file) == (as_file, defaults)


def test_an_evaluation_rebuilds_its_run_from_the_checkpoint_under_the_preset(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"trainer": {"max_epochs": 7}}))
    ckpt = str(run / "checkpoints" / "last.ckpt")
    args, _ = prepare_args(["test", "--ckpt_path", ckpt, "--preset", "csv"])
    assert args[:2] == ["test", "--config"] and yaml.safe_load(args[2]) == {"trainer": {"max_epochs": 7}}
    assert args[3:] == ["--config", preset_path("csv", None), "--ckpt_path", ckpt]


def test_a_recipe_s_own_preset_wins_over_the_generic_one(tmp_path):
    """Beside the recipe: presets/NAME/<recipe>.yaml, then presets/NAME.yaml; then the shipped presets/NAME.yaml."""
    recipe = tmp_path / "configs" / "mine.yaml"
    recipe.parent.mkdir()
    recipe.write_text(TINY.read_text())
    own = tmp_path / "configs" / "presets"
    assert preset_path("quick", str(recipe)) == str(presets_dir().resolve() / "quick.yaml")
    (own / "quick").mkdir(parents=True)
    (own / "quick.yaml").write_text("trainer: {max_epochs: 2}\n")
    assert preset_path("quick", str(recipe)) == str(own / "quick.yaml")
    (own / "quick" / "mine.yaml").write_text("trainer: {max_epochs: 1}\n")
    (own / "quick" / "other.yaml").write_text("trainer: {max_epochs: 5}\n")
    assert preset_path("quick", str(recipe)) == str(own / "quick" / "mine.yaml")
    (own / "fork_only.yaml").write_text("trainer: {max_epochs: 3}\n")
    args, _ = prepare_args(["fit", "--config", str(recipe), "--preset", "quick", "--preset", "fork_only"])
    assert args[3:] == ["--config", str(own / "quick" / "mine.yaml"), "--config", str(own / "fork_only.yaml")]
    with pytest.raises(ConfigError, match="fork_only"):  # a fork's preset belongs to its own recipes
        preset_path("fork_only", str(TINY))
    assert preset_path(str(own / "fork_only.yaml"), str(TINY)) == str(own / "fork_only.yaml"), "a path as given"


def test_a_shipped_recipe_finds_its_own_quick_preset_first():
    for recipe in shipped().values():
        own = recipe.parent / "presets" / "quick" / recipe.name
        expected = own if own.is_file() else presets_dir() / "quick.yaml"
        assert Path(preset_path("quick", str(recipe))).resolve() == expected.resolve()


def test_an_unknown_preset_is_one_clear_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a folder of the user's, no recipe or preset in it
    with pytest.raises(Refused) as refused:  # exit status 2, an `error:` line, no traceback (tests/catalogue.py)
        cli("fit", "--preset", "fastest")
    assert "--preset fastest: no such preset" in str(refused.value)
    assert all(name in str(refused.value) for name in GENERIC), refused.value


def test_a_preset_flag_without_a_name_is_refused():
    with pytest.raises(ConfigError, match="--preset needs a name"):
        prepare_args(["fit", "--preset", "--trainer.max_epochs=1"])


# --- honest outputs -------------------------------------------------------------------------------------


def _printed(args: list[str], capsys) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_print_config_shows_the_precision_that_runs(capsys):
    asked = ["--config", str(TINY), "--trainer.precision=bf16-mixed"]
    assert _printed(asked, capsys)["trainer"]["precision"] == "32-true", "no GPU: 32-true is what runs"
    kept = _printed([*asked, "--trainer.accelerator=cpu"], capsys)["trainer"]
    assert kept["precision"] == "bf16-mixed", "an explicit CPU keeps the precision asked for"


def test_quick_profile_and_debug_stack_over_the_recipe(tmp_path, capsys):
    recipe = tmp_path / "big_batches.yaml"
    recipe.write_text(TINY.read_text().replace("batch_size: 16", "batch_size: 64"))
    printed = _printed(["--config", str(recipe), "--preset", "quick", "--preset", "profile"], capsys)
    trainer = printed["trainer"]
    assert trainer["precision"] == "32-true" and trainer["limit_train_batches"] < 1
    assert trainer["profiler"]["class_path"].endswith("SimpleProfiler")
    assert printed["data"]["init_args"]["batch_size"] == 64, "the recipe's keys stay"
    assert trainer["logger"]["init_args"]["name"] == "tiny"
    debug = _printed(["--config", str(recipe), "--preset", "debug"], capsys)
    assert debug["trainer"]["fast_dev_run"] == 2 and debug["data"]["init_args"]["batch_size"] == 16


def test_debug_runs_fit_validate_test_and_predict_in_seconds_and_writes_nothing(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = main(["fit", *tiny(epochs=5), "--preset", "debug"])
        assert cli.trainer.global_step == 2 and cli.trainer.num_training_batches == 2
        for command in ("validate", "test", "predict"):
            cli = main([command, "--config", str(TINY), f"--ckpt_path={trained}", "--preset", "debug"])
            assert cli.trainer.fast_dev_run == 2
    assert time.perf_counter() - start < 60
    out = capsys.readouterr().out
    quiet(out, caught)
    assert "nothing was logged or saved" in out and "Predictions for 32 samples made" in out
    assert list(tmp_path.iterdir()) == [], "no logs, checkpoints, configs or predictions"


def test_overfit_memorises_a_few_batches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = main(["fit", *tiny(), "--preset", "overfit", "--preset", "csv", "--trainer.max_epochs=25"])
    assert cli.trainer.overfit_batches == 4 and cli.trainer.num_training_batches == 4
    rows = (Path(cli.trainer.logger.log_dir) / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")

    def column(name: str) -> list[float]:
        return [float(v) for row in rows[1:] if (v := row.split(",")[header.index(name)])]

    losses = column(f"{metrics.TRAIN_LOSS}_epoch")  # per epoch, over the same 4 batches each time
    assert losses[-1] < losses[0] / 2, f"train loss {losses[0]:.3f} -> {losses[-1]:.3f}"
    assert column(metrics.TRAIN_ACC)[-1] > 0.95


# MLflow's store is the slowest to set up
@pytest.mark.parametrize("logger", ["tensorboard", "csv", pytest.param("mlflow", marks=pytest.mark.slow), "nologger"])
def test_loggers_and_the_profile_land_in_the_run_folder(logger, trained, tmp_path, monkeypatch, capsys):
    """csv/mlflow/nologger put their files where their comments say; the profile lands in the run folder
    for each, on fit and on an evaluation, and nothing warns about a callback the preset idled."""
    monkeypatch.chdir(tmp_path)
    if logger == "mlflow":
        needs_extra("mlflow")
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")  # restores the variable's state after the test
        monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")  # the CLI asks for the file store itself
    chosen = [] if logger == "tensorboard" else ["--preset", logger]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = main(["fit", *tiny(), *chosen, "--preset", "profile"])
        folder = Path(cli.trainer.checkpoint_callback.dirpath).parent
        tested = main(["test", "--config", str(TINY), f"--ckpt_path={trained}", *chosen, "--preset", "profile"])
    quiet(capsys.readouterr().out, caught)
    expected = {
        "tensorboard": tmp_path / "logs" / "tiny" / "version_0",
        "csv": tmp_path / "logs" / "tiny" / "version_0",
        "nologger": tmp_path / "logs" / "tiny" / "version_0",  # the recipe names its runs, whatever the logger
    }
    if logger == "mlflow":
        assert folder.parent.parent.resolve() == tmp_path / "logs" / "mlruns"
        assert (folder.parent / "meta.yaml").is_file()
    else:
        assert folder.resolve() == expected[logger]
    for name in ("config.yaml", "checkpoints/last.ckpt", "fit-profile.txt"):
        assert (folder / name).is_file(), name
    assert "Action" in (folder / "fit-profile.txt").read_text()
    assert (folder / "metrics.csv").is_file() == (logger == "csv")
    assert any(folder.glob("fit/events.out.tfevents.*")) == (logger == "tensorboard")
    evaluated = Path(tested.trainer.profiler.dirpath)
    assert evaluated != folder and (evaluated / "test-profile.txt").is_file() and (evaluated / "config.yaml").is_file()
    assert metrics.TEST_ACC in tested.trainer.callback_metrics


def test_without_the_default_recipe_a_fork_is_told_to_pass_a_config(tmp_path, monkeypatch):
    """A fork that deletes the default recipe's file: `fit` alone names what to do, and `--ckpt_path`
    naming a folder is still reported for what it is."""
    monkeypatch.setattr(settings, "DEFAULT_RECIPE", "deleted_by_the_fork")
    with pytest.raises(ConfigError, match=r"no --config given .*deleted_by_the_fork.* is not there.*DEFAULT_RECIPE"):
        prepare_args(["fit"])
    with pytest.raises(CheckpointError, match="is a folder"):
        prepare_args(["test", f"--ckpt_path={tmp_path}"])
