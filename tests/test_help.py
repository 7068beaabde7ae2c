"""`--help` a person reads: each command described in full; `fit --help` the recipe's own main keys, the presets
and how to reach a class's keys; every key only with `--help all`. On the tests' own tiny recipe."""

import pytest

from project.engine.cli import main
from project.engine.help import COMMANDS
from tests.recipes import TINY


def _help(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == 0
    return capsys.readouterr().out


def test_every_command_is_described_in_full(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    flat = " ".join(_help(["--help"], capsys).split())
    for command, text in COMMANDS.items():
        assert f"{command} {text}" in flat, command


def test_fit_help_is_the_recipes_main_keys_presets_and_how_to_reach_the_rest(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    out = _help(["fit", "--config", str(TINY), "--preset", "debug", "--help"], capsys)
    assert out.count("\n") < 40 and "options:" not in out, "a short synopsis, not every option"
    assert out.startswith("usage: python -m project.cli fit [--config RECIPE] [--preset NAME ...] [--KEY VALUE ...]")
    assert f"Main keys of this recipe ({TINY}) with --preset debug" in out
    assert "  --data.batch_size     16" in out
    assert "  --model.net           tests.recipes.TinyNet" in out
    assert "  --model.optimizer     torch.optim.SGD" in out
    assert "  --trainer.max_epochs  3" in out
    assert "Presets (--preset NAME, repeatable):" in out and "quick" in out
    flat = " ".join(out.split())
    assert "--model.net.help tests.recipes.TinyNet" in flat and "--model.optimizer.help torch.optim.SGD" in flat
    assert "python -m project.cli fit --help all" in flat, "where every key is"


def test_fit_help_all_lists_every_key_after_the_synopsis(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    out = _help(["fit", "--config", str(TINY), "--help", "all"], capsys)
    opening, _, rest = out.partition("options:")
    assert "Main keys of this recipe" in opening
    assert "--trainer.max_epochs" in rest and "--trainer.gradient_clip_val" in rest, "the exhaustive list follows"


def test_the_config_option_says_it_takes_a_recipe_name_or_file(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    flat = " ".join(_help(["--help"], capsys).split())
    assert "-c RECIPE, --config RECIPE a recipe: a shipped recipe's name or a YAML file" in flat
    assert "Path to a configuration file" not in flat


@pytest.mark.parametrize("command", ["fit", "validate", "test", "predict"])
def test_help_needs_no_recipe_in_a_fork_without_a_default(command, capsys, monkeypatch):
    from project import settings

    monkeypatch.setattr(settings, "DEFAULT_RECIPE", None)
    out = _help([command, "--help"], capsys)
    assert out.startswith(f"usage: python -m project.cli {command}")


@pytest.mark.parametrize("command", ["validate", "test", "predict"])
def test_an_evaluations_help_is_short(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    out = _help([command, "--help"], capsys)
    assert out.startswith(f"usage: python -m project.cli {command} --ckpt_path FILE [--config RECIPE]")
    assert out.count("\n") < 20 and f"python -m project.cli {command} --help all" in " ".join(out.split())
