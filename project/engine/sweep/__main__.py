"""python -m project.sweep --config RECIPE --search SPACE --trials N [--study NAME] [--storage URL] [-- OVERRIDES]

Runs Optuna trials of a recipe, each a normal `fit` run folder, until the study holds N finished
(completed, pruned or failed) trials; the same command resumes an interrupted sweep, and several
processes or machines given one --storage share the work. Anything after `--` is passed to every
trial's `fit` (e.g. `-- --trainer.max_epochs 10`).
"""

import argparse
import sys
import warnings
from pathlib import Path

import optuna

from project.engine.multirun import StudyError
from project.engine.sweep.space import SearchSpaceError, load_space
from project.engine.sweep.study import Interrupted, Sweep, run


def parse(argv: list[str]) -> Sweep:
    ours, overrides = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(
        prog="python -m project.sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="the recipe, by name or path: e.g. features")
    parser.add_argument("--search", required=True, help="the search space, e.g. configs/search/features.yaml")
    parser.add_argument(
        "--trials", required=True, type=int, help="finished trials the study should hold in total (0: only report)"
    )
    parser.add_argument("--study", help="study name (default: <search file name>_sweep); also its logs folder")
    parser.add_argument(
        "--storage", help="SQLAlchemy URL of the study's database (default: sqlite file <logs>/<study>/study.db)"
    )
    parser.add_argument("--seed", type=int, help="seed of the sampler (default: random)")
    parser.add_argument("--no-pruning", action="store_true", help="run every trial to its last epoch")
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=60,
        help="seconds between a trial's signs of life in the database; one silent for twice this long "
        "(its process was killed) is run again (default: 60)",
    )
    args = parser.parse_args(ours)
    if args.trials < 0 or args.heartbeat < 1:
        parser.error("--trials must be 0 or more, and --heartbeat 1 or more")
    space = load_space(args.search)
    return Sweep(
        recipe=args.config,
        search=args.search,
        space=space,
        trials=args.trials,
        study=args.study or f"{Path(args.search).stem}_sweep",
        storage=args.storage,
        overrides=overrides,
        seed=args.seed,
        prune=not args.no_pruning,
        heartbeat=args.heartbeat,
    )


def main(argv: list[str] | None = None) -> None:
    # Each trial calls the CLI with its own argument list, which Lightning would flag at every trial
    # as a possible mix-up with the sweep's own sys.argv
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    # The heartbeat and the retry of killed trials have been "experimental" in Optuna since 2.8/2.9
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        run(parse(sys.argv[1:] if argv is None else argv))
    except (SearchSpaceError, StudyError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)  # the shell's code for Ctrl-C
    except KeyboardInterrupt:  # before any trial started
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
