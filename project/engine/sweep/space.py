"""A search space in YAML: LightningCLI keys mapped to distributions, checked before any trial runs.

    model.optimizer.init_args.weight_decay: {type: float, low: 1e-5, high: 1e-2, log: true}
    model.net.init_args.hidden_size: {type: int, low: 64, high: 256, step: 64}
    model.net.init_args.cell: {type: categorical, choices: [gru, lstm]}

Every mistake is reported as `SearchSpaceError` naming the file, the key and what to write instead.
"""

import contextlib
import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from project.engine.config_yaml import load_config_file

# Set by the sweep for every trial (each trial's run folder); a search over them would break the study's layout
RESERVED_KEYS = ("trainer.logger.init_args.name", "trainer.logger.init_args.version")

_FIELDS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


class SearchSpaceError(ValueError):
    pass


@dataclass(frozen=True)
class Param:
    key: str  # a LightningCLI key, e.g. model.optimizer.init_args.lr; also the Optuna parameter name
    distribution: optuna.distributions.BaseDistribution

    def suggest(self, trial: optuna.Trial) -> Any:
        d = self.distribution
        if isinstance(d, optuna.distributions.FloatDistribution):
            return trial.suggest_float(self.key, d.low, d.high, log=d.log, step=d.step)
        if isinstance(d, optuna.distributions.IntDistribution):
            return trial.suggest_int(self.key, d.low, d.high, log=d.log, step=d.step)
        return trial.suggest_categorical(self.key, d.choices)


def cli_args(params: dict[str, Any]) -> list[str]:
    """Sampled values as CLI overrides. Strings go as they are (the CLI takes a str-typed value
    verbatim, quotes included); other values as JSON, which the CLI parses as YAML: null, true, 0.001."""
    return [f"--{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in params.items()]


def load_space(path: str | Path) -> list[Param]:
    path = Path(path)
    if not path.is_file():
        raise SearchSpaceError(f"{path}: no such search-space file (see configs/search/ for examples).")
    try:
        raw = load_config_file(path)  # bounded: no YAML bomb, no duplicate key
    except yaml.YAMLError as err:
        raise SearchSpaceError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict) or not raw:
        raise SearchSpaceError(
            f"{path}: expected a mapping of LightningCLI keys to distributions, e.g.\n"
            "  model.optimizer.init_args.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}"
        )
    return [_param(path, key, spec) for key, spec in raw.items()]


def _param(path: Path, key: Any, spec: Any) -> Param:
    where = f"{path}: {key}"
    if not isinstance(key, str) or not key or key.startswith("-") or " " in key:
        raise SearchSpaceError(f"{where}: a key is a LightningCLI key without dashes, e.g. model.label_smoothing.")
    if key in RESERVED_KEYS:
        raise SearchSpaceError(f"{where}: the sweep sets this key itself (each trial's run folder); remove it.")
    if not isinstance(spec, dict) or spec.get("type") not in _FIELDS:
        raise SearchSpaceError(
            f"{where}: expected a mapping with type float, int or categorical, got {spec!r}. "
            "E.g. {type: float, low: 0.0, high: 0.3} or {type: categorical, choices: [gru, lstm]}."
        )
    kind = spec["type"]
    unknown = set(spec) - _FIELDS[kind]
    if unknown:
        raise SearchSpaceError(
            f"{where}: unknown field(s) {sorted(unknown)} for type {kind}; allowed: {sorted(_FIELDS[kind])}."
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SearchSpaceError(f"{where}: 'choices' must be a non-empty list, got {choices!r}.")
        for choice in choices:
            if choice is not None and not isinstance(choice, bool | int | float | str):
                raise SearchSpaceError(
                    f"{where}: choice {choice!r} is not a single value; choices are numbers, strings, "
                    "true/false or null (Optuna stores them in its database)."
                )
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise SearchSpaceError(f"{where}: 'choices' lists a value twice: {choices}.")
        return Param(key, optuna.distributions.CategoricalDistribution(choices))

    number = int if kind == "int" else float
    low, high = (_number(where, spec, name, number, required=True) for name in ("low", "high"))
    step = _number(where, spec, "step", number, required=False)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SearchSpaceError(f"{where}: 'log' must be true or false, got {log!r}.")
    if low >= high:
        raise SearchSpaceError(f"{where}: 'low' ({low}) must be below 'high' ({high}).")
    if step is not None and step <= 0:
        raise SearchSpaceError(f"{where}: 'step' must be positive, got {step}.")
    if log and low <= 0:
        raise SearchSpaceError(f"{where}: a log scale needs 'low' above 0, got {low}.")
    if log and step is not None and not (kind == "int" and step == 1):
        raise SearchSpaceError(f"{where}: give either 'log: true' or 'step', not both.")
    if kind == "int":
        return Param(key, optuna.distributions.IntDistribution(low, high, log=log, step=step or 1))
    return Param(key, optuna.distributions.FloatDistribution(low, high, log=log, step=step))


def _number(where: str, spec: dict, name: str, number: type, required: bool) -> int | float | None:
    value = spec.get(name)
    if value is None:
        if required:
            raise SearchSpaceError(f"{where}: '{name}' is missing.")
        return None
    # YAML 1.1 reads 1e-4 (no dot) as a string; it is the number the user meant
    if isinstance(value, str) and number is float:
        with contextlib.suppress(ValueError):
            value = float(value)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (number is int and value != int(value)):
        kind = "an integer" if number is int else "a number"
        raise SearchSpaceError(f"{where}: '{name}' must be {kind}, got {value!r}.")
    return number(value)


def check_keys(space: list[Param], config: dict, search_path: str | Path, recipe: str) -> None:
    """Every key must name a value of the recipe's full config (as `fit --print_config` shows it), so a
    typo stops the sweep before the first trial rather than failing every trial."""
    full = _flatten(config)
    # as the command line takes them too: a class's arguments without the `init_args` level (model.net.init_args.x
    # for model.init_args.net.init_args.x)
    known = {short for key in full for short in _short_forms(key)}
    for param in space:
        if param.key not in known:
            close = difflib.get_close_matches(param.key, sorted(known, key=len), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise SearchSpaceError(
                f"{search_path}: {param.key}: no such key in the config of {recipe} "
                f"(see `python -m project.cli fit --config {recipe} --print_config`).{hint}"
            )


def _short_forms(key: str) -> set[str]:
    """`key` with each `init_args` level kept or dropped."""
    forms = {""}
    for part in key.split("."):
        forms = {f"{f}.{part}" if f else part for f in forms} | (forms if part == "init_args" else set())
    return forms


def _flatten(config: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, value in config.items():
        key = f"{prefix}{name}"
        keys.append(key)
        if isinstance(value, dict):
            keys += _flatten(value, f"{key}.")
    return keys
