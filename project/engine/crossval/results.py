"""A study's record of each fold (`fold<i>/crossval_fold.json`) and its summary: the folds' test
metrics with their mean and spread, as a table, crossval.csv and crossval.json."""

import csv
import io
import json
import os
import statistics
from pathlib import Path
from typing import Any

RECORD = "crossval_fold.json"
STATS = ("mean", "std", "min", "max")


def fold_dir(study_dir: Path, fold: int) -> Path:
    return study_dir / f"fold{fold}"


def read_record(study_dir: Path, fold: int) -> dict[str, Any] | None:
    path = fold_dir(study_dir, fold) / RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, content: Any) -> None:
    """Written whole or not at all: folds run as separate jobs may write at the same moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(content, indent=2) + "\n")
    os.replace(tmp, path)


def tested(record: dict[str, Any] | None) -> bool:
    return record is not None and bool(record.get("test"))


def summary(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{stat: {metric: value}} over the folds, for every test metric all folds logged. `std` is the
    sample standard deviation across folds (n - 1)."""
    names = [m for m in records[0]["test"] if all(m in r["test"] for r in records)]
    values = {m: [r["test"][m] for r in records] for m in names}
    return {
        "mean": {m: statistics.fmean(v) for m, v in values.items()},
        "std": {m: statistics.stdev(v) if len(v) > 1 else 0.0 for m, v in values.items()},
        "min": {m: min(v) for m, v in values.items()},
        "max": {m: max(v) for m, v in values.items()},
    }


def _rows(records: list[dict[str, Any]], stats: dict[str, dict[str, float]] | None, digits: int) -> list[list[str]]:
    names = sorted({m for r in records for m in r["test"]})
    rows = [["fold", "held out", "test samples", *names]]
    for r in records:
        held_out = " ".join(r.get("held_out") or [])
        values = (f"{r['test'][m]:.{digits}f}" if m in r["test"] else "" for m in names)
        rows.append([str(r["fold"]), held_out, str(r.get("test_samples", "")), *values])
    for stat in STATS if stats else ():
        rows.append([stat, "", "", *(f"{stats[stat][m]:.{digits}f}" if m in stats[stat] else "" for m in names)])
    return rows


def table(records: list[dict[str, Any]], stats: dict[str, dict[str, float]] | None) -> str:
    rows = _rows(records, stats, digits=4)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if stats:
        lines.append(f"Mean ± standard deviation over {len(records)} folds:")
        lines += [f"  {name}: {stats['mean'][name]:.4f} ± {stats['std'][name]:.4f}" for name in stats["mean"]]
    return "\n".join(lines)


def write_summary(study_dir: Path, about: dict[str, Any], records: list[dict[str, Any]]) -> tuple[Path, Path]:
    """crossval.csv (a row per fold with its run folder, then the mean, std, min and max) and
    crossval.json (the same, and what the study ran) in the study's folder."""
    stats = summary(records)
    rows = _rows(records, stats, digits=6)
    runs = [str(fold_dir(study_dir, r["fold"])) for r in records]
    rows = [[*row, run] for row, run in zip(rows, ["run", *runs, *[""] * len(STATS)], strict=True)]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    csv_path, json_path = study_dir / "crossval.csv", study_dir / "crossval.json"
    tmp = csv_path.with_name(f".{csv_path.name}.tmp-{os.getpid()}")
    tmp.write_text(buffer.getvalue())
    os.replace(tmp, csv_path)
    write_json(json_path, {**about, "folds": records, **stats})
    return csv_path, json_path
