"""`--help` a person reads: each command described in full, and `fit --help` opening with the recipe's
own main keys and the presets before the exhaustive list. On the tests' own tiny recipe."""

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


def test_fit_help_opens_with_the_recipes_main_keys_and_presets(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    out = _help(["fit", "--config", str(TINY), "--preset", "debug", "--help"], capsys)
    opening, _, rest = out.partition("options:")
    assert opening.count("\n") < 40, "a short synopsis, not every option"
    assert f"Main keys of this recipe ({TINY}) with --preset debug" in opening
    assert "  --data.batch_size     16" in opening
    assert "  --model.net           tests.recipes.TinyNet" in opening
    assert "  --model.optimizer     torch.optim.SGD" in opening
    assert "  --trainer.max_epochs  3" in opening
    assert "Presets (--preset NAME, repeatable):" in opening and "quick" in opening
    assert "--trainer.max_epochs" in rest, "the exhaustive list follows"
