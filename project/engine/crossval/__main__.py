"""python -m project.crossval --config RECIPE --num_folds K [--group KEY] [--fold I | --collect | --print-commands]
    [-- OVERRIDES]

K-fold cross-validation of a recipe: every sample the data source has (train, val and test
together) is dealt into K folds, stratified by class or with whole groups (--group speaker); run i
trains on the other folds (choosing its checkpoint on a held-out part of them) and tests on fold i.
Each run is a normal run folder, <save_dir>/<study>/fold<i>; the mean and spread of the test metrics
go to crossval.csv and crossval.json beside them. The same command resumes an interrupted study.
Anything after `--` is passed to every fold's `fit` (e.g. `-- --trainer.max_epochs 10`).
"""

import argparse
import sys
import warnings
from pathlib import Path

from project.engine.crossval.study import CrossVal, FoldFailed, Interrupted, collect, prepare, run
from project.engine.errors import run_command


def parse(argv: list[str]) -> tuple[CrossVal, argparse.Namespace]:
    ours, overrides = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(
        prog="python -m project.crossval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", required=True, help="the recipe, by name or path: e.g. features or configs/features.yaml"
    )
    parser.add_argument("--num_folds", required=True, type=int, help="K, the number of folds (2 or more)")
    parser.add_argument(
        "--group",
        help="keep each group of this kind whole in one fold instead of stratifying by class, e.g. speaker "
        "(a key the data source tells); with K = the number of groups, each fold holds one group out",
    )
    parser.add_argument(
        "--study", help="study name (default: <recipe>_<K>folds[_by_<group>]); also its folder in the logs folder"
    )
    parser.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="best",
        help="which checkpoint of a fold's fit is tested: the best by validation (default) or the last",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--fold", type=int, help="run this fold only (one job of an array); 0 to K-1")
    action.add_argument(
        "--collect", action="store_true", help="run nothing: summarise the folds finished so far (separate jobs)"
    )
    action.add_argument(
        "--print-commands", action="store_true", help="run nothing: print one command per fold and a SLURM array"
    )
    args = parser.parse_args(ours)
    if args.num_folds < 2:
        parser.error(f"--num_folds must be 2 or more, got {args.num_folds}")
    if args.fold is not None and not 0 <= args.fold < args.num_folds:
        parser.error(
            f"--fold must be between 0 and {args.num_folds - 1} (--num_folds {args.num_folds}), got {args.fold}"
        )
    by_group = f"_by_{args.group}" if args.group else ""
    study = args.study or f"{Path(args.config).stem}_{args.num_folds}folds{by_group}"
    cv = CrossVal(
        recipe=args.config,
        num_folds=args.num_folds,
        study=study,
        group=args.group,
        checkpoint=args.checkpoint,
        overrides=overrides,
    )
    return cv, args


def slurm_script(cv: CrossVal) -> str:
    """The folds as a SLURM job array, one fold per task, then the summary."""
    return "\n".join(
        [
            "#!/bin/bash",
            f"#SBATCH --array=0-{cv.num_folds - 1}",
            "#SBATCH --gpus-per-task=1",
            f"srun {cv.command('$SLURM_ARRAY_TASK_ID')}",
        ]
    )


def print_commands(cv: CrossVal) -> None:
    prepare(cv)  # the same checks as a run, so the printed commands work
    print(
        f"# The {cv.num_folds} folds of study {cv.study}, one command each (any order, any machine sharing the logs):"
    )
    print("\n".join(cv.command(fold) for fold in range(cv.num_folds)))
    print("\n# Or as a SLURM job array (sbatch this file):")
    print(slurm_script(cv))
    print("\n# Then the summary (the last fold to finish also writes it):")
    print(cv.command(collect=True))


def crossval(argv: list[str]) -> None:
    cv, args = parse(argv)
    if args.print_commands:
        print_commands(cv)
    elif args.collect:
        if collect(cv) is None:
            sys.exit(1)
    else:
        run(cv, None if args.fold is None else [args.fold])


def main(argv: list[str] | None = None) -> None:
    # Each fold calls the CLI with its own argument list, which Lightning would flag at every fold as a
    # possible mix-up with this command's own sys.argv
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    try:
        run_command(lambda: crossval(sys.argv[1:] if argv is None else argv))
    except FoldFailed as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except (Interrupted, KeyboardInterrupt) as err:
        print(str(err) or "Interrupted.", file=sys.stderr)
        sys.exit(130)  # the shell's code for Ctrl-C


if __name__ == "__main__":
    main()
