"""Every config is YAML read with bounds (project/engine/config_yaml.py): a bomb is refused at once and without
memory, a duplicate key is refused naming it, and what real configs use (anchors, merge keys) still reads."""

import time
import tracemalloc

import pytest
import yaml

from project.engine.config_yaml import config_problem, load_config_file
from project.engine.errors import ConfigError
from project.engine.recipes import presets_dir, recipes_dir
from tests.catalogue import Refused, cli
from tests.test_bad_inputs import bomb


def _within_a_second_and_a_few_mb(attempt) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        attempt()
    finally:
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    assert peak < 50 * 2**20, f"peaked at {peak / 2**20:.0f} MB"


def test_a_bomb_file_is_refused_within_a_second_and_without_memory(tmp_path):
    (tmp_path / "bomb.yaml").write_text("unused:\n" + "".join(f"  {line}\n" for line in bomb().splitlines()))

    def load():
        with pytest.raises(ConfigError, match=r"bomb\.yaml: its aliases .* YAML bomb"):
            load_config_file(tmp_path / "bomb.yaml")

    _within_a_second_and_a_few_mb(load)


def test_a_bomb_on_the_command_line_is_refused_without_memory(tmp_path):
    (tmp_path / "bomb.yaml").write_text(bomb())
    tracemalloc.start()
    try:
        with pytest.raises(Refused, match=r"bomb\.yaml: its aliases"):
            cli("fit", f"--config={tmp_path / 'bomb.yaml'}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20, f"peaked at {peak / 2**20:.0f} MB"


@pytest.mark.parametrize("levels", [3, 4])
def test_aliases_within_the_bound_are_read(levels):
    assert config_problem(bomb(levels), "small.yaml") is None  # 9**4 = 6,561 values
    assert len(yaml.safe_load(bomb(levels))) == levels


def test_merge_keys_and_reused_anchors_are_not_duplicates():
    text = "base: &b {lr: 0.1, momentum: 0.9}\nsgd:\n  <<: *b\n  lr: 0.2\nagain: *b\n"
    assert config_problem(text, "ok.yaml") is None


def test_the_same_key_in_two_mappings_is_not_a_duplicate():
    assert config_problem("trainer: {max_epochs: 1}\nmodel: {max_epochs: 2}\n", "ok.yaml") is None


@pytest.mark.parametrize(
    "config", sorted([*recipes_dir().glob("*.yaml"), *presets_dir().rglob("*.yaml")]), ids=lambda p: p.name
)
def test_every_shipped_config_passes_the_checks(config):
    load_config_file(config)
