"""What a study leaves behind: a ranked table of its trials, and the best trial's config for `fit --config`."""

import os
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

_ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def retried(trials: list[FrozenTrial]) -> dict[int, int]:
    """{number of an interrupted or killed trial: number of the trial that re-ran its values}."""
    return {t.system_attrs["retry_history"][-1]: t.number for t in trials if t.system_attrs.get("retry_history")}


def finished(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count towards --trials: completed, pruned or failed, but not one that was
    interrupted and queued to run again (its re-run counts instead)."""
    rerun = retried(trials)
    return [t for t in trials if t.state in _ENDED and t.number not in rerun]


def ranked(trials: list[FrozenTrial], direction: optuna.study.StudyDirection) -> list[FrozenTrial]:
    """Completed trials best first, then pruned ones by their last value, then the rest by number."""
    sign = -1 if direction == optuna.study.StudyDirection.MAXIMIZE else 1
    order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1}

    def key(t: FrozenTrial) -> tuple:
        has_value = t.value is not None and t.state in order
        return (order.get(t.state, 2), sign * t.value if has_value else 0.0, t.number)

    return sorted(trials, key=key)


def table(study: optuna.Study, metric: str) -> str:
    trials = study.get_trials(deepcopy=False)
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    names = _short_names(keys)
    rerun = retried(trials)
    header = ["trial", "state", metric, *(names[k] for k in keys), "note"]
    rows = [header]
    for t in ranked(trials, study.direction):
        value = "" if t.value is None else f"{t.value:.4f}"
        params = [(f"{v:.3g}" if isinstance(v := t.params.get(k, ""), float) else str(v)) for k in keys]
        rows.append([str(t.number), t.state.name.lower(), value, *params, _note(t, rerun)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _note(t: FrozenTrial, rerun: dict[int, int]) -> str:
    if t.number in rerun:
        return f"interrupted; re-run as trial {rerun[t.number]}"
    notes = []
    if t.system_attrs.get("retry_history"):
        notes.append(f"re-run of trial {t.system_attrs['retry_history'][-1]}")
    if t.state == TrialState.FAIL and t.user_attrs.get("error"):
        error = t.user_attrs["error"].splitlines()[0]
        notes.append(error if len(error) <= 80 else error[:77] + "...")
    if t.state == TrialState.RUNNING:
        notes.append("running elsewhere, or its process was killed (re-run once its heartbeat is stale)")
    return "; ".join(notes)


def _short_names(keys: list[str]) -> dict[str, str]:
    """The shortest dotted suffix that still tells the keys apart: `lr`, `hidden_size`."""
    names = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[-n:])
            if sum(k == name or k.endswith("." + name) for k in keys) == 1:
                break
        names[key] = name.removeprefix("init_args.")
    return names


def write_best_config(study: optuna.Study, path: Path, metric: str) -> Path | None:
    """The best completed trial's own config.yaml (None before one completes), for `fit --config PATH`; its logger
    keeps the study's name and drops the trial's version, so a fit of it lands beside the trials."""
    try:
        best = study.best_trial
    except ValueError:  # no completed trial
        return None
    run_dir = best.user_attrs.get("run_dir")
    source = Path(run_dir) / "config.yaml" if run_dir else None
    if source is None or not source.is_file():
        raise FileNotFoundError(
            f"The best trial ({best.number}) ran in {run_dir}, whose config.yaml is not on this machine; "
            "run the sweep command there (with --trials 0) to write the best config."
        )
    config = yaml.safe_load(source.read_text())
    logger = config.get("trainer", {}).get("logger")
    if isinstance(logger, dict) and isinstance(logger.get("init_args"), dict):
        logger["init_args"]["version"] = None
    header = (
        f"# The best trial ({best.number}) of study {study.study_name}: {metric} = {best.value:.4f}\n"
        f"# with {best.params}.\n"
        f"# Its run: {run_dir}. Train it again (all data, longer, other seeds) with:\n"
        f"#   python -m project.cli fit --config {path}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # several sweep processes may write it at once
    tmp.write_text(header + yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, path)
    return path
