"""The study: where it is stored, how it resumes, when it stops, and what it writes at the end."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import sqlalchemy
from optuna.trial import TrialState

from project.engine import best
from project.engine.internals import fail_running_trial
from project.engine.multirun import StudyError, one_device, resolved_config, save_dir
from project.engine.sweep import results
from project.engine.sweep.space import Param, check_keys
from project.engine.sweep.trial import is_dead_here, retry_callback, run_trial

# Optuna's median pruner: a trial is stopped when its value at an epoch is worse than the median of
# earlier trials at that epoch. Not before 5 trials have completed (a median of fewer says little),
# and never in a trial's first epoch, whose accuracy says more about the warm-up than about the run.
PRUNER_STARTUP_TRIALS, PRUNER_WARMUP_EPOCHS = 5, 1
SCALE_OUT = (
    "To use several GPUs, start one sweep per GPU on the same study, e.g. "
    "`CUDA_VISIBLE_DEVICES=1 python -m project.sweep ...` (see docs/sweep.md)."
)


class SweepError(StudyError):
    pass


class Interrupted(RuntimeError):
    pass


@dataclass
class Sweep:
    recipe: str
    search: str
    space: list[Param]
    trials: int
    study: str
    storage: str | None = None
    overrides: list[str] = field(default_factory=list)
    seed: int | None = None
    prune: bool = True
    heartbeat: int = 60


def run(sweep: Sweep) -> optuna.Study:
    """Run trials until the study holds `sweep.trials` finished ones, then print the ranked table and
    write the best config."""
    base_args = ["fit", "--config", sweep.recipe, *sweep.overrides, f"--trainer.logger.init_args.name={sweep.study}"]
    config = resolved_config(base_args, sweep.recipe)
    check_keys(sweep.space, config, sweep.search, sweep.recipe)
    monitor, mode = best.of_config(config)  # the objective: what the recipe's checkpoints keep as best
    base_args += one_device(config, SCALE_OUT)
    study_dir = Path(save_dir(config, sweep.recipe, "the sweep")) / sweep.study
    study = _open_study(sweep, study_dir, best.direction(mode))
    _check_same_search(study, sweep, study_dir)
    _rerun_dead_trials(study)

    done = len(results.finished(study.get_trials(deepcopy=False)))
    if done < sweep.trials:
        print(f"Study {sweep.study}: {done} of {sweep.trials} trials finished; running the rest. Runs: {study_dir}")
        try:
            study.optimize(
                lambda trial: run_trial(trial, base_args, sweep.space, monitor, mode),
                n_trials=sweep.trials - done,  # this process's share at most; _StopAt ends it when others finish trials
                catch=(Exception,),
                callbacks=[_StopAt(sweep.trials)],
            )
        except KeyboardInterrupt:
            raise Interrupted(
                f"Interrupted. Run the same command to resume: the interrupted trial runs again with the same "
                f"values, and the finished ones are kept in the study ({sweep.study})."
            ) from None
    table = results.table(study, monitor)
    study_dir.mkdir(parents=True, exist_ok=True)  # with --storage, this node may have run no trial
    (study_dir / "trials.txt").write_text(table + "\n")
    print(f"\nStudy {sweep.study} ({study_dir}):\n{table}")
    try:
        chosen = results.write_best_config(study, study_dir / "best.yaml", monitor)
    except FileNotFoundError as err:  # the best trial ran on another machine
        print(err)
        return study
    if chosen is None:
        print("No trial completed, so there is no best config yet.")
    else:
        print(f"\nBest config: {chosen}\nTrain it:    python -m project.cli fit --config {chosen}")
    return study


def _rerun_dead_trials(study: optuna.Study) -> None:
    """Mark failed, and queue to run again, the trials still `running` whose process on this host is gone
    (killed): waiting for their heartbeat to go stale would let this start finish the study without them."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_dead_here(trial.user_attrs.get("process")):
            continue
        failed = fail_running_trial(study, trial)
        if failed is None:
            continue  # another process got there first
        retry_callback()(study, failed)
        print(f"Trial {trial.number}'s process is gone: marked failed, and its values run again.")


class _StopAt:
    """Stops this process once the study as a whole holds `n` finished trials: with several processes
    on one study, each ends when the total is reached (the trials still running elsewhere finish too,
    so the total can exceed `n` by one per other process). Ours, not Optuna's `MaxTrialsCallback`: that
    one counts a killed trial queued to run again as finished, and would end the study before its re-run."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if len(results.finished(study.get_trials(deepcopy=False))) >= self.n:
            study.stop()


def _open_study(sweep: Sweep, study_dir: Path, direction: str) -> optuna.Study:
    url = sweep.storage
    engine_kwargs = {}
    if url is None:
        study_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(study_dir / 'study.db').resolve()}"
    if url.startswith("sqlite"):
        # Several processes on one SQLite file take turns writing; wait for the lock rather than fail
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        storage = _storage(url, engine_kwargs, sweep.heartbeat)
    except Exception as err:  # a malformed URL, a missing database driver, an unreachable server
        raise SweepError(
            f"--storage {url}: cannot open the study's database: {type(err).__name__}: {err}. The URL is "
            "SQLAlchemy's, e.g. sqlite:////abs/path/study.db or postgresql://user:password@host/dbname "
            "(which needs `pip install psycopg2-binary`)."
        ) from None
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS)
        if sweep.prune
        else optuna.pruners.NopPruner()
    )
    try:
        study = optuna.create_study(
            study_name=sweep.study,
            storage=storage,
            direction=direction,
            pruner=pruner,
            load_if_exists=True,  # resume an interrupted sweep, or join one that other processes run
        )
    except ValueError as err:  # e.g. a study of that name optimises in the other direction
        raise SweepError(f"Study {sweep.study} in {url}: {err}") from None
    # A resumed sweep with the seed it started with would draw the same random first values again:
    # offset it by the trials already in the study
    seed = None if sweep.seed is None else sweep.seed + len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    return study


def _storage(url: str, engine_kwargs: dict, heartbeat: int, attempts: int = 5) -> optuna.storages.RDBStorage:
    attempt = 0
    while True:
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                # A trial whose process stops beating for two intervals (killed, node lost) is marked
                # failed and its values queued to run again
                heartbeat_interval=heartbeat,
                heartbeat_stale_trial_callback=retry_callback(),
            )
        except sqlalchemy.exc.DBAPIError:
            # Processes started together on a new database race to create its tables (the loser gets
            # an IntegrityError), or find it locked: the tables are there a moment later
            attempt += 1
            if attempt == attempts:
                raise
            time.sleep(attempt)


def _check_same_search(study: optuna.Study, sweep: Sweep, study_dir: Path) -> None:
    """A study is one search: resuming it with another space or recipe would rank runs that are not
    comparable. The first process records them; later ones must match."""
    space = {p.key: optuna.distributions.distribution_to_json(p.distribution) for p in sweep.space}
    recorded = study.user_attrs.get("search_space")
    if recorded is None:
        trials = sorted(p.name for p in study_dir.glob("trial_*"))
        if not study.trials and trials:
            raise SweepError(
                f"{study_dir} already holds run folders ({', '.join(trials[:3])}, ...) of a study that is not in "
                "the database. Choose another --study name, or move those folders away."
            )
        study.set_user_attr("search_space", space)
        study.set_user_attr("recipe", sweep.recipe)
        return
    if recorded != space:
        changed = sorted(k for k in space.keys() | recorded.keys() if space.get(k) != recorded.get(k))
        raise SweepError(
            f"Study {sweep.study} was started with another search space (differences: {', '.join(changed)}). "
            f"Resume it with the same {sweep.search}, or start a new study with --study NAME."
        )
    if study.user_attrs.get("recipe") != sweep.recipe:
        raise SweepError(
            f"Study {sweep.study} runs the recipe {study.user_attrs.get('recipe')}, not {sweep.recipe}. "
            "Resume it with the same --config, or start a new study with --study NAME."
        )
