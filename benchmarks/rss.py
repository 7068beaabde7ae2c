"""Peak memory of a command and of every process it starts (DataLoader and LitData workers), from /proc (Linux).

The main process's peak is the kernel's (`os.wait4`, what `/usr/bin/time -v` prints as "Maximum resident set
size"). The tree's is sampled every 50 ms: the largest sum of the processes' resident set sizes (RSS, which
counts pages shared by forked workers once per process) and of their proportional set sizes (PSS, which
splits shared pages among their sharers: what the tree really takes).
"""

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def children(pid: int) -> list[int]:
    """Every live descendant of `pid`."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


@dataclass
class Peaks:
    main: int = 0  # bytes: the main process's peak RSS (kernel)
    tree_rss: int = 0  # the largest sum of RSS over the main process and its descendants (sampled)
    tree_pss: int = 0  # the same for PSS
    processes: int = 1  # processes in the tree at its RSS peak
    returncode: int = 0
    seconds: float = 0.0


def run(command: list[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> Peaks:
    """Run `command` (output to `log`) and measure its peaks."""
    peaks = Peaks()
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                tree = [proc.pid, *children(proc.pid)]
                total = sum(rss(p) for p in tree)
                if total > peaks.tree_rss:
                    peaks.tree_rss, peaks.processes = total, len(tree)
                peaks.tree_pss = max(peaks.tree_pss, sum(pss(p) for p in tree))
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    peaks.main, peaks.returncode = usage.ru_maxrss * 1024, proc.returncode  # Linux reports kilobytes
    peaks.seconds = time.perf_counter() - start
    return peaks
