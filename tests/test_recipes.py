"""Every recipe found by name (configs/ and each example's or task's configs/, shipped or a fork's own) parses,
builds its model and data, and trains a couple of steps on a synthetic stand-in for its data set (the real ones
are not downloaded in tests).

Recipes are found as `--config NAME` finds them, so adding one needs no edit here; its source's stand-in comes
from a `stand_ins*.py` module in tests/ or in a `tests/` folder inside the package (tests/stand_ins.py says how
to add one). A recipe whose source has no stand-in is reported as skipped, naming what to add, not failed.
"""

import importlib
from pathlib import Path

import pytest
import yaml

from project.engine.cli import main
from project.engine.recipes import PACKAGE, shipped
from tests.recipes import classifier
from tests.stand_ins import StandIn

ROOT = Path(__file__).resolve().parents[1]
RECIPES = shipped()


def stand_ins() -> dict[str, StandIn]:
    found: dict[str, StandIn] = {}
    package = ROOT / PACKAGE
    modules = [*Path(__file__).parent.glob("stand_ins*.py"), *package.glob("**/tests/stand_ins*.py")]
    for module in sorted(modules):
        name = ".".join(module.relative_to(ROOT).with_suffix("").parts)
        found.update(importlib.import_module(name).STAND_INS)
    return found


def _source(recipe: Path) -> str | None:
    data = ((yaml.safe_load(recipe.read_text()) or {}).get("data") or {}).get("init_args") or {}
    source = data.get("source") or {}
    return source.get("class_path") if isinstance(source, dict) else None


# A few steps of each shipped recipe: the examples, not the machinery (which tiny recipes test quickly)
@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_trains_a_few_steps_on_a_stand_in(recipe, tmp_path):
    path = RECIPES[recipe]
    source = _source(path)
    stand_in = stand_ins().get(source)
    if stand_in is None:
        pytest.skip(f"{path.name}: no stand-in for its source {source}; add one to a stand_ins*.py module in tests/")
    cli = main(
        [
            "fit",
            f"--config={path}",
            *stand_in(tmp_path / "data"),
            "--data.batch_size=8",
            "--trainer.fast_dev_run=2",
            "--trainer.accelerator=cpu",
            "--trainer.precision=32-true",
            f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}",
        ]
    )
    assert cli.trainer.global_step == 2
    if "num_classes" in cli.model.hparams:  # a classifier's, filled from the data
        assert cli.model.hparams.num_classes == cli.datamodule.num_classes == len(cli.datamodule.classes)


def test_a_recipe_without_a_stand_in_is_reported_not_failed(tmp_path, monkeypatch):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"init_args": {"source": {"class_path": "my.Source"}}}}))
    monkeypatch.setitem(RECIPES, "mine", recipe)
    with pytest.raises(pytest.skip.Exception, match=r"mine\.yaml: no stand-in for its source my\.Source"):
        test_recipe_trains_a_few_steps_on_a_stand_in("mine", tmp_path)


def test_a_forks_own_audio_recipe_trains_on_the_wav_folder_stand_in(tmp_path, monkeypatch):
    """A recipe a fork adds on a generic source is trained, not skipped: here an audio one on WavFolder."""
    recipe = {
        "trainer": {"logger": {"init_args": {"name": "my_sounds"}}, "callbacks": [], "precision": "32-true"},
        "model": classifier(
            net={"class_path": "project.models.RNNClassifier", "init_args": {"hidden_size": 8, "n_mels": 16}}
        ),
        "data": {
            "class_path": "project.engine.data.AudioDataModule",
            "init_args": {"source": {"class_path": "project.engine.data.WavFolder", "init_args": {"root": "data"}}},
        },
    }
    (tmp_path / "my_sounds.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.setitem(RECIPES, "my_sounds", tmp_path / "my_sounds.yaml")
    test_recipe_trains_a_few_steps_on_a_stand_in("my_sounds", tmp_path)
