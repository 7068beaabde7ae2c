"""The shipped recipes (configs/*.yaml): each parses, builds its model and data, and trains a couple
of steps on a synthetic stand-in for its data set (the real ones are not downloaded in tests)."""

from pathlib import Path

import pytest
import torch
import yaml

from project.cli import main
from project.data.sources.speech_commands import WORDS
from tests.cifar_format import write_cifar10
from tests.wav_format import write_fsdd, write_speech_commands

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Overlays are loaded over the recipe they change
RECIPES = [["cifar10.yaml"], ["cifar10_fast.yaml"], ["fsdd.yaml"], ["fsdd.yaml", "fsdd_speaker.yaml"]]
RECIPES += [["speech_commands.yaml"], ["features.yaml"]]


# A few generated recordings, not the release's count
AUDIO_STAND_IN = ["--data.source.init_args.download=false", "--data.source.init_args.expected_recordings=0"]


def _source(config: Path) -> str:
    return yaml.safe_load(config.read_text())["data"]["init_args"]["source"]["class_path"]


def stand_in(source: str, folder: Path) -> list[str]:
    """Write a small synthetic copy of `source`'s data set into `folder`; the overrides that point the
    recipe at it."""
    if source == "project.data.CIFAR10":
        write_cifar10(folder, per_batch=20)
        return [
            f"--data.source.init_args.root={folder}",
            "--data.source.init_args.download=false",
            "--data.val_size=20",
        ]
    if source == "project.data.FSDD":
        write_fsdd(folder, speakers=("george", "theo", "lucas"), takes=6)
        return [f"--data.source.init_args.root={folder}", *AUDIO_STAND_IN]
    if source == "project.data.SpeechCommands":
        write_speech_commands(folder / "speech_commands_v0.02", WORDS)
        return [f"--data.source.init_args.root={folder}", *AUDIO_STAND_IN]
    if source == "project.data.FeatureFiles":
        folder.mkdir(parents=True)
        for split in ("train", "test"):
            torch.save({"features": torch.randn(60, 16), "labels": torch.arange(60) % 3}, folder / f"{split}.pt")
        return [
            f"--data.source.init_args.train={folder / 'train.pt'}",
            f"--data.source.init_args.test={folder / 'test.pt'}",
        ]
    raise AssertionError(f"no synthetic stand-in for {source}: add one to tests/test_recipes.py")


def test_every_shipped_recipe_is_tested():
    tested = {name for recipe in RECIPES for name in recipe}
    assert tested == {path.name for path in CONFIGS.glob("*.yaml")} - {"base.yaml"}  # base.yaml: under every recipe


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: "+".join(r))
def test_recipe_trains_a_few_steps_on_a_stand_in(recipe, tmp_path):
    configs = [arg for name in recipe for arg in ("--config", str(CONFIGS / name))]
    data = stand_in(_source(CONFIGS / recipe[0]), tmp_path / "data")
    cli = main(
        [
            "fit",
            *configs,
            *data,
            "--data.batch_size=8",
            "--trainer.fast_dev_run=2",
            "--trainer.accelerator=cpu",
            "--trainer.precision=32-true",
            f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}",
        ]
    )
    assert cli.trainer.global_step == 2
    assert cli.model.hparams.num_classes == cli.datamodule.num_classes == len(cli.datamodule.classes)
