"""How long `python -m project.cli fit --help` takes beside importing the libraries it stands on, side by side.

    python benchmarks/startup.py              # 7 rounds, about a minute on a 2-core CPU
    python benchmarks/startup.py --rounds 1   # a smoke test

Each round runs both commands in a process of their own, which one goes first alternating: `python -c "import torch,
lightning, torchvision, torchmetrics, jsonargparse"` (what any LightningCLI project pays) and `python -m project.cli
fit --help` (the parser of every key, the recipe's defaults read and checked, the help written). The bar: the help
within 1.2x of the imports, as the median of the per-round ratios of wall time; the ratio of CPU time (user + system,
from the kernel) beside it moves less on a busy machine.
"""

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "imports": [sys.executable, "-c", "import torch, lightning, torchvision, torchmetrics, jsonargparse"],
    "fit --help": [sys.executable, "-m", "project.cli", "fit", "--help"],
}


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of `command` in a process of its own, run from the repository's root."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    with open(os.devnull, "w") as null:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=null, stderr=null)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed with status {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="rounds of both commands")
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    names = list(COMMANDS)
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            runs[name].append(timed(COMMANDS[name]))
        (a, _), (b, _) = runs["imports"][-1], runs["fit --help"][-1]
        print(f"  round {round_}: imports {a:.2f} s, fit --help {b:.2f} s, ratio {b / a:.3f}", flush=True)

    def ratio(index: int) -> str:
        values = [h[index] / i[index] for i, h in zip(runs["imports"], runs["fit --help"], strict=True)]
        return f"**{statistics.median(values):.3f}** ({min(values):.3f}, {max(values):.3f})"

    median = {name: [statistics.median(r[k] for r in runs[name]) for k in (0, 1)] for name in COMMANDS}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    lines = [
        f"commit {commit.stdout.strip() or '?'}, {datetime.date.today().isoformat()}, load {load:.2f} before and "
        f"{os.getloadavg()[0]:.2f} after on {os.cpu_count()} cores",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| imports alone, median of {args.rounds}: wall, CPU | {median['imports'][0]:.2f} s, "
        f"{median['imports'][1]:.2f} s |",
        f"| `fit --help`, median of {args.rounds}: wall, CPU | {median['fit --help'][0]:.2f} s, "
        f"{median['fit --help'][1]:.2f} s |",
        f"| `fit --help` / imports, wall, median of the rounds' ratios (min, max) | {ratio(0)} |",
        f"| the same, CPU time | {ratio(1)} |",
    ]
    table = "\n".join(lines)
    print()
    print(table)
    return table


if __name__ == "__main__":
    main()
