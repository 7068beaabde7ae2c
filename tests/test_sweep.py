"""Hyperparameter search (`python -m project.sweep`) on a tiny recipe of its own (tests/sweep_recipe.py).

"No trial lost or run twice" means: every trial that finished (completed, pruned or failed) is kept
and never run again when the sweep resumes; a trial cut short by Ctrl-C or a killed process is run
again exactly once, with the same values, and only that re-run counts towards --trials.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from project.engine.cli import main as cli_main
from project.engine.recipes import shipped
from tests.extras import needs_extra
from tests.sweep_recipe import SPACE, write_recipe

optuna = needs_extra("optuna")  # the `sweep` extra: without it, this module skips in one line
from optuna.trial import TrialState  # noqa: E402

from project.engine.sweep.__main__ import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def sabotage(nan: str = "", interrupt: str = "") -> str:
    init_args = json.dumps({"nan": nan, "interrupt": interrupt})
    return f'--trainer.callbacks+={{"class_path": "tests.sweep_recipe.Sabotage", "init_args": {init_args}}}'


def load(folder: Path, study: str = "space_sweep") -> optuna.Study:
    url = f"sqlite:///{folder / 'logs' / study / 'study.db'}"
    return optuna.load_study(study_name=study, storage=url)


def by_number(study: optuna.Study) -> dict[int, optuna.trial.FrozenTrial]:
    return {t.number: t for t in study.get_trials()}


@pytest.mark.slow  # seven fits; the quick tests check the sweep's parts
def test_sweep_goes_on_after_a_failure_and_resumes_after_an_interrupt(tmp_path, capsys):
    recipe, space = write_recipe(tmp_path)
    # Trial 1's loss turns NaN; trial 2 is interrupted (Ctrl-C) in its second epoch
    command = ["--config", str(recipe), "--search", str(space), "--trials", "3", "--seed", "0"]
    with pytest.raises(SystemExit) as exit:
        main([*command, "--", sabotage(nan="trial_1", interrupt="trial_2")])
    assert exit.value.code == 130
    assert "Run the same command to resume" in capsys.readouterr().err

    trials = by_number(load(tmp_path))
    assert [trials[n].state for n in range(3)] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert "NonFiniteLossError" in trials[1].user_attrs["error"], "the NaN trial failed and the study went on"
    assert trials[3].state == TrialState.WAITING and trials[3].params == trials[2].params
    runs = tmp_path / "logs" / "space_sweep"
    first_fit = {p: p.stat().st_mtime_ns for p in (runs / "trial_0").rglob("*")}

    main([*command, "--", sabotage(nan="trial_1", interrupt="trial_2")])  # the same command resumes
    out = capsys.readouterr().out

    study = load(tmp_path)
    trials = by_number(study)
    assert sorted(trials) == [0, 1, 2, 3], "one re-run of the interrupted trial, and no other new trial"
    complete, fail = TrialState.COMPLETE, TrialState.FAIL
    assert [trials[n].state for n in range(4)] == [complete, fail, fail, complete]
    assert trials[3].params == trials[2].params and trials[3].system_attrs["retry_history"] == [2]
    assert {p: p.stat().st_mtime_ns for p in (runs / "trial_0").rglob("*")} == first_fit, "trial 0 was run again"
    for n in (0, 3):
        # Optuna's Lightning callback reported val/acc at every epoch (what the pruner decides on)
        assert sorted(trials[n].intermediate_values) == [0, 1, 2]
        assert trials[n].value == max(trials[n].intermediate_values.values()) > 0.9
        run = runs / f"trial_{n}"
        assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
        assert list(run.glob("fit/events.out.tfevents.*")), "each trial is a normal run with TensorBoard logs"
    assert "interrupted; re-run as trial 3" in out and "NonFiniteLossError" in out
    table = [line.split() for line in (runs / "trials.txt").read_text().splitlines()[2:]]
    assert [row[:2] for row in table][-2:] == [["1", "fail"], ["2", "fail"]], "failures rank below completed trials"
    assert table[0][0] == str(study.best_trial.number)

    # The best trial's config, ready for `fit --config`: its own values, the trial's folder name dropped
    best = yaml.safe_load((runs / "best.yaml").read_text())
    net = best["model"]["init_args"]["net"]
    assert net["init_args"]["hidden"] == study.best_trial.params["model.net.init_args.hidden"]
    assert best["trainer"]["logger"]["init_args"]["version"] is None
    with pytest.raises(SystemExit) as exit:
        cli_main(["fit", "--config", str(runs / "best.yaml"), "--print_config"])
    assert exit.value.code == 0

    # The study holds its 3 finished trials: the command now only reports
    main([*command, "--", sabotage()])
    assert sorted(by_number(load(tmp_path))) == [0, 1, 2, 3]


@pytest.mark.slow
def test_a_killed_sweep_resumes_with_no_trial_lost_or_run_twice(tmp_path):
    recipe, space = write_recipe(tmp_path)
    command = [sys.executable, "-m", "project.sweep", "--config", str(recipe), "--search", str(space)]
    command += ["--trials", "3", "--heartbeat", "1", "--", "--trainer.max_epochs=10"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = tmp_path / "logs" / "space_sweep" / "trial_1" / "fit" / "hparams.yaml"
    deadline = time.monotonic() + 120
    while not running.exists() and sweep.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    sweep.send_signal(signal.SIGKILL)  # mid-trial 1: no handler, no clean-up
    sweep.wait()
    trials = by_number(load(tmp_path))
    assert trials[0].state == TrialState.COMPLETE and trials[1].state == TrialState.RUNNING
    time.sleep(2.5)  # the killed trial's heartbeat (every second) goes stale after two

    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = by_number(load(tmp_path))
    states = {n: t.state for n, t in trials.items()}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.FAIL, 2: TrialState.COMPLETE, 3: TrialState.COMPLETE}
    assert trials[2].params == trials[1].params and trials[2].system_attrs["retry_history"] == [1]
    assert "interrupted; re-run as trial 2" in done.stdout


@pytest.mark.slow
def test_two_processes_share_one_study(tmp_path):
    recipe, space = write_recipe(tmp_path)
    command = [sys.executable, "-m", "project.sweep", "--config", str(recipe), "--search", str(space)]
    command += ["--trials", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    trials = load(tmp_path).get_trials()
    # Each stops once 4 have finished; the other's trial then running finishes too
    assert 4 <= len(trials) <= 5 and all(t.state == TrialState.COMPLETE for t in trials)
    folders = {t.user_attrs["run_dir"] for t in trials}
    assert len(folders) == len(trials), "every trial has a run folder of its own"
    ran = [out.count("finished with value") for out in outputs]
    assert sum(ran) == len(trials), f"each trial ran in exactly one of the processes: {ran}"


def write_space(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- model.label_smoothing\n", "expected a mapping of LightningCLI keys"),
        ("a: [\n", "not valid YAML"),
        ("model.label_smoothing: {type: normal, low: 0, high: 1}\n", "type float, int or categorical"),
        ("model.label_smoothing: {type: float, low: 0.3, high: 0.1}\n", "'low' (0.3) must be below 'high' (0.1)"),
        ("model.label_smoothing: {type: float, low: 0.0}\n", "'high' is missing"),
        ("model.label_smoothing: {type: float, low: zero, high: 1}\n", "'low' must be a number, got 'zero'"),
        ("model.optimizer.init_args.lr: {type: float, low: 0, high: 1, log: true}\n", "log scale needs 'low' above 0"),
        ("model.label_smoothing: {type: float, low: 0, high: 1, lgo: true}\n", "unknown field(s) ['lgo']"),
        ("model.net.init_args.hidden: {type: int, low: 8, high: 32.5}\n", "'high' must be an integer"),
        ("model.net.init_args.activation: {type: categorical, choices: []}\n", "'choices' must be a non-empty list"),
        ("model.net.init_args.activation: {type: categorical, choices: [relu, relu]}\n", "lists a value twice"),
        ("trainer.logger.init_args.version: {type: int, low: 0, high: 3}\n", "the sweep sets this key itself"),
        (
            "model.net.init_args.hiden: {type: int, low: 8, high: 32}\n",
            "no such key in the config of RECIPE (see `python -m project.cli fit --config RECIPE --print_config`). "
            "Did you mean model.net.init_args.hidden?",
        ),
    ],
)
def test_a_bad_search_space_is_refused_with_a_clear_error(tmp_path, capsys, text, message):
    recipe, _ = write_recipe(tmp_path)
    space = write_space(tmp_path, text)
    with pytest.raises(SystemExit) as exit:
        main(["--config", str(recipe), "--search", str(space), "--trials", "1"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {space}: ") and message.replace("RECIPE", str(recipe)) in err, err
    assert not (tmp_path / "logs" / "space_sweep").exists(), "nothing is created before the space is valid"


def test_resuming_with_another_search_space_or_a_bad_storage_is_refused(tmp_path, capsys):
    recipe, space = write_recipe(tmp_path)
    command = ["--config", str(recipe), "--search", str(space)]
    main([*command, "--trials", "0"])  # creates the study; runs nothing
    assert load(tmp_path).user_attrs["search_space"].keys() == SPACE.keys()

    space.write_text(yaml.safe_dump({**SPACE, "model.label_smoothing": {"type": "float", "low": 0, "high": 0.2}}))
    with pytest.raises(SystemExit) as exit:
        main([*command, "--trials", "3"])
    assert exit.value.code == 2
    assert "was started with another search space (differences: model.label_smoothing)" in capsys.readouterr().err

    with pytest.raises(SystemExit) as exit:
        main([*command, "--trials", "3", "--study", "other", "--storage", "nodb://nowhere"])
    assert exit.value.code == 2
    assert "--storage nodb://nowhere: cannot open the study's database" in capsys.readouterr().err


def test_the_command_line_prints_errors_without_a_traceback(tmp_path, capsys):
    recipe, _ = write_recipe(tmp_path)
    space = write_space(tmp_path, "model.net.init_args.hiden: {type: int, low: 8, high: 32}\n")
    with pytest.raises(SystemExit) as exit:  # `python -m project.sweep` runs this main
        main(["--config", str(recipe), "--search", str(space), "--trials", "2"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "Did you mean model.net.init_args.hidden?" in err and "Traceback" not in err


SEARCHED = {name: path for name, path in shipped().items() if (path.parent / "search" / path.name).is_file()}


@pytest.mark.parametrize("name", sorted(SEARCHED))
def test_the_shipped_search_spaces_fit_their_recipes(name, tmp_path):
    """Every key of a recipe's search/NAME.yaml beside it exists in the recipe (checked as a sweep checks it)."""
    from project.engine.sweep.space import check_keys, load_space
    from project.engine.sweep.study import resolved_config

    recipe = SEARCHED[name]
    space = load_space(recipe.parent / "search" / recipe.name)
    config = resolved_config(["fit", "--config", str(recipe)], name)
    check_keys(space, config, f"search/{recipe.name}", recipe.name)


def test_a_trial_whose_process_died_on_this_host_is_rerun_at_the_next_start(tmp_path):
    """Killed (SIGKILL) long before its heartbeat goes stale: the next start of the same command fails it
    and runs its values again, instead of finishing the study without it."""
    from project.engine.sweep.study import _rerun_dead_trials
    from project.engine.sweep.trial import this_process

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=3600)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    killed = study.ask({"lr": optuna.distributions.FloatDistribution(1e-3, 1.0)})
    killed.set_user_attr("process", {**this_process(), "pid": int(dead.stdout)})
    alive = study.ask({"lr": optuna.distributions.FloatDistribution(1e-3, 1.0)})
    alive.set_user_attr("process", this_process())  # this very process: still running
    _rerun_dead_trials(study)
    trials = by_number(study)
    assert trials[0].state == TrialState.FAIL and trials[1].state == TrialState.RUNNING
    assert trials[2].state == TrialState.WAITING and trials[2].params == trials[0].params
    assert trials[2].system_attrs["retry_history"] == [0]
