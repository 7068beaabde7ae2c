"""Running a cross-validation study: each fold a normal `fit` then `test` through the CLI, in
`<save_dir>/<study>/fold<i>`, resumable. The fold's record (crossval_fold.json) notes the checkpoint to test
when its fit ends, and the test metrics; run again, the study runs nothing finished twice."""

import gc
import json
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from project.engine.cli import CLI, main
from project.engine.crossval import results
from project.engine.multirun import InterruptWatch, StudyError, one_device, resolved_config, save_dir

SCALE_OUT = (
    "To use several GPUs, run the folds as separate jobs, one per GPU: `--print-commands` prints them "
    "(see docs/crossval.md)."
)
STUDY_RECORD = "crossval_study.json"


class Interrupted(RuntimeError):
    pass


class FoldFailed(RuntimeError):
    pass


@dataclass
class CrossVal:
    recipe: str
    num_folds: int
    study: str
    group: str | None = None
    checkpoint: Literal["best", "last"] = "best"
    overrides: list[str] = field(default_factory=list)

    def about(self) -> dict[str, Any]:
        """What makes two runs of the command one study; recorded, and checked on every later run."""
        return {k: v for k, v in asdict(self).items() if k != "study"}

    def fold_args(self, fold: int) -> list[str]:
        """The overrides that make a run fold `fold` of this study."""
        group = [f"--data.fold_groups={self.group}"] if self.group else []
        return [
            f"--data.fold={fold}",
            f"--data.num_folds={self.num_folds}",
            *group,
            f"--trainer.logger.init_args.name={self.study}",
            f"--trainer.logger.init_args.version=fold{fold}",
        ]

    def command(self, fold: int | str | None = None, collect: bool = False) -> str:
        """This study's command line, for one fold (`fold`) or for the summary (`collect`)."""
        args = ["python", "-m", "project.crossval", "--config", self.recipe, "--num_folds", str(self.num_folds)]
        args += ["--group", self.group] if self.group else []
        args += ["--study", self.study]
        args += ["--checkpoint", self.checkpoint] if self.checkpoint != "best" else []
        text = shlex.join(args)
        if fold is not None:
            text += f" --fold {fold}"  # unquoted: may be a shell variable
        if collect:
            text += " --collect"
        return text + (" -- " + shlex.join(self.overrides) if self.overrides else "")


def prepare(cv: CrossVal) -> tuple[list[str], Path]:
    """(the `fit` arguments every fold shares, the study's folder), after checking the recipe, the
    overrides and the fold keys with the CLI, and that the study's folder holds this study."""
    fit_args = ["fit", "--config", cv.recipe, *cv.overrides]
    config = resolved_config([*fit_args, *cv.fold_args(0)], cv.recipe)
    fit_args += one_device(config, SCALE_OUT)
    study_dir = Path(save_dir(config, cv.recipe, "cross-validation")) / cv.study
    recorded = study_dir / STUDY_RECORD
    # Looked at before the record: a process starting the same study writes its record before any fold folder
    folds_there = any(study_dir.glob("fold*"))
    if recorded.is_file():
        before = json.loads(recorded.read_text())
        changed = sorted(k for k in before.keys() | cv.about().keys() if before.get(k) != cv.about().get(k))
        if changed and folds_there:  # with no fold run yet, nothing stands in the way of other settings
            raise StudyError(
                f"Study {cv.study} ({study_dir}) was started with other settings (differences: {', '.join(changed)}; "
                f"see {recorded}). Go on with the same ones, or start a new study with --study NAME."
            )
    elif folds_there:
        raise StudyError(
            f"{study_dir} already holds fold folders of a study that has no {STUDY_RECORD}. Choose another "
            "--study name, or move those folders away."
        )
    return fit_args, study_dir


def run_fold(cv: CrossVal, fold: int, fit_args: list[str], study_dir: Path) -> dict[str, Any]:
    """Fit fold `fold` (or finish its fit) and test it; returns its record. Skips what is done."""
    folder = results.fold_dir(study_dir, fold)
    record = results.read_record(study_dir, fold)
    if results.tested(record):
        print(f"Fold {fold}: tested already ({folder}); skipped.")
        return record
    if record is None:
        record = _fit(cv, fold, fit_args, folder)
        results.write_json(folder / results.RECORD, record)
    else:
        print(f"Fold {fold}: its fit finished already; testing {record['checkpoint']}.")
    counted = CountTested()
    args = ["test", f"--config={folder / 'config.yaml'}", f"--ckpt_path={record['checkpoint']}"]
    tester = _call(args, fold, counted)
    data = tester.datamodule
    record["test"] = {k: float(v) for k, v in tester.trainer.callback_metrics.items() if k.startswith("test/")}
    record["test_samples"] = counted.samples
    record["held_out"] = getattr(data, "held_out_groups", None)
    results.write_json(folder / results.RECORD, record)
    return record


def _fit(cv: CrossVal, fold: int, fit_args: list[str], folder: Path) -> dict[str, Any]:
    args = [*fit_args, *cv.fold_args(fold)]
    last = folder / "checkpoints" / "last.ckpt"
    if last.is_file():
        print(f"Fold {fold}: resuming its fit from {last}.")
        args.append(f"--ckpt_path={last}")
    elif (folder / "config.yaml").is_file():  # a fit stopped before its first checkpoint
        aside = _free_name(folder.with_name(f"{folder.name}_unfinished"))
        folder.rename(aside)
        print(f"Fold {fold}: {folder} held a fit stopped before its first checkpoint; moved to {aside}.")
    else:
        print(f"Fold {fold} of {cv.num_folds}: fitting into {folder}.")
    fitter = _call(args, fold)
    if cv.checkpoint == "last":
        checkpoint = last
    else:
        callbacks = fitter.trainer.checkpoint_callbacks
        best = next((cb for cb in callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor), None)
        checkpoint = Path(best.best_model_path) if best is not None and best.best_model_path else None
    if checkpoint is None or not checkpoint.is_file():
        raise FoldFailed(
            f"Fold {fold}: its fit left no {cv.checkpoint} checkpoint in {folder / 'checkpoints'} to test; the recipe "
            "must validate at least once and monitor a metric (best), and save last.ckpt (last)."
        )
    return {"fold": fold, "num_folds": cv.num_folds, "group": cv.group, "checkpoint": str(checkpoint)}


class CountTested(L.Callback):
    """Counts the samples a test went through (this process's), whatever the data module: the size of each
    batch's first tensor, known without reading it back."""

    samples = 0

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        first = next(iter(_tensors(batch)), None)
        self.samples += len(first) if first is not None else 0


def _tensors(batch: Any) -> list[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        return [batch]
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, list | tuple) else []
    return [t for item in items for t in _tensors(item)]


def _call(args: list[str], fold: int, *callbacks: L.Callback) -> CLI:
    interrupts = InterruptWatch()
    try:
        return main(args, callbacks=[interrupts, *callbacks])
    except KeyboardInterrupt:
        raise _interrupted(fold) from None
    except SystemExit as exit:
        if interrupts.interrupted:
            raise _interrupted(fold) from None
        raise FoldFailed(
            f"Fold {fold} stopped: the CLI exited with status {exit.code} (its message is above)."
        ) from None
    finally:
        gc.collect()  # this fold's trainer, model and data
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _interrupted(fold: int) -> Interrupted:
    return Interrupted(
        f"Interrupted in fold {fold}. Run the same command to go on: the folds already tested are kept, and "
        f"fold {fold} resumes from its last checkpoint."
    )


def _free_name(path: Path) -> Path:
    n = 0
    while path.with_name(f"{path.name}{n or ''}").exists():
        n += 1
    return path.with_name(f"{path.name}{n or ''}")


def run(cv: CrossVal, folds: list[int] | None = None) -> Path | None:
    """Run `folds` (all by default) one after the other, then write the summary once every fold of the
    study has its test metrics; returns the summary's CSV, or None while folds are missing."""
    fit_args, study_dir = prepare(cv)
    recorded = study_dir / STUDY_RECORD
    if not recorded.is_file() or json.loads(recorded.read_text()) != cv.about():
        results.write_json(recorded, cv.about())
    for fold in range(cv.num_folds) if folds is None else folds:
        run_fold(cv, fold, fit_args, study_dir)
    summary = collect(cv, study_dir, quiet_if_missing=folds is not None)
    if summary is None:
        done = sum(results.tested(results.read_record(study_dir, fold)) for fold in range(cv.num_folds))
        print(f"\n{done} of {cv.num_folds} folds tested; the last to finish writes the summary ({study_dir}).")
    return summary


def collect(cv: CrossVal, study_dir: Path | None = None, quiet_if_missing: bool = False) -> Path | None:
    """Print the table of the tested folds; with all of them, write crossval.csv and crossval.json."""
    if study_dir is None:
        _, study_dir = prepare(cv)
    found = {fold: results.read_record(study_dir, fold) for fold in range(cv.num_folds)}
    records = [r for r in found.values() if results.tested(r)]
    missing = [fold for fold, r in found.items() if not results.tested(r)]
    if missing:
        if not quiet_if_missing:
            done = results.table(records, None) if records else "(no fold tested yet)"
            print(f"\nStudy {cv.study} ({study_dir}): tested folds:\n{done}")
            print(f"\nFolds {', '.join(map(str, missing))} have no test result yet; run them, e.g.")
            print("\n".join(f"  {cv.command(fold)}" for fold in missing))
        return None
    csv_path, json_path = results.write_summary(study_dir, cv.about(), records)
    print(f"\nStudy {cv.study} ({study_dir}):\n{results.table(records, results.summary(records))}")
    print(f"Written: {csv_path} and {json_path}")
    return csv_path
