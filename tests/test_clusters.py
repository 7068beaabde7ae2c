"""docs/clusters.md's torchrun commands and SLURM script, each run in its single-machine form: 2 CPU processes
(gloo) for 8 GPUs on 2 nodes, two `torchrun`s on this machine for the two nodes, a stand-in `srun` that
starts the tasks with SLURM's variables (and a stand-in `scontrol`). Each is stopped in the middle of a step
and resumed as the page says, and must end bit-identical to the same command never stopped."""

import re
import shlex
import signal
import sys
import threading
from pathlib import Path

import pytest

from tests.ddp import ROOT, differences, free_port, last_checkpoint, load, run, signal_at
from tests.recipes import TINY
from tests.test_ddp_stops import uninterrupted

pytestmark = pytest.mark.slow

PAGE = ROOT / "docs" / "clusters.md"
# The tiny recipe in place of the page's, on the CPU, deterministic, 2 epochs of 5 steps on each of 2 processes
TEST_ARGS = [
    "--trainer.accelerator=cpu",
    "--trainer.deterministic=true",
    "--trainer.max_epochs=2",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


def blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S)


def shown(word: str, *, resume: bool) -> str:
    """The page's command (or script) holding `word`: the one with `--ckpt_path` or the one without."""
    found = [b for b in blocks() if word in b and ("--ckpt_path" in b) == resume]
    assert len(found) == 1, f"docs/clusters.md should show one {word} block{' that resumes' if resume else ''}"
    return found[0]


def single_machine(command: str, folder: Path, extra: list[str] = ()) -> str:
    """The page's command for this machine: one process a node (torchrun) or two tasks on one node (SLURM),
    the tiny recipe for the recipe of yours, logs under `folder`, the test's settings (and `extra`) after the page's."""
    one = {
        "--nproc_per_node 8": "--nproc_per_node 1",
        "--config my_recipe.yaml": f"--config {TINY}",
        "--nodes=2": "--nodes=1",
        "--ntasks-per-node=8": "--ntasks-per-node=2",
        "--gpus-per-node=8": "--gpus-per-node=0",
        "--trainer.default_root_dir logs/": f"--trainer.default_root_dir {folder}/logs/",
    }
    for shown_text, ours in one.items():
        command = command.replace(shown_text, ours)
    args = [*TEST_ARGS, f"--trainer.logger.init_args.save_dir={folder / 'logs'}", *extra]
    return command.rstrip("\n") + " " + " ".join(shlex.quote(a) for a in args) + "\n"


# ------------------------------------------------------------------------------------------------ torchrun


def _torchrun(command: str, folder: Path, extra: list[str] = ()) -> list[tuple[int, str]]:
    """The page's torchrun command on two "nodes" of this machine: (exit status, output) of each."""
    port = free_port()
    script = single_machine(command, folder, extra).replace("--master_port 29500", f"--master_port {port}")
    results: list[tuple[int, str]] = [(-1, "")] * 2

    def launch(node: int) -> None:
        env = {
            "NODE_RANK": str(node),
            "MASTER_HOST": "127.0.0.1",
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        }
        results[node] = run(["bash", "-c", script], env=env)

    threads = [threading.Thread(target=launch, args=(node,)) for node in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_torchrun_on_two_nodes_stops_on_sigterm_and_resumes_exactly(tmp_path, tmp_path_factory):
    command = shown("torchrun", resume=False)
    assert "--nnodes 2" in command and "--trainer.num_nodes 2" in command
    command = command.replace("--trainer.devices 8", "--trainer.devices 1")

    # The scheduler's SIGTERM to torchrun on both nodes, in the middle of step 3
    stopped = _torchrun(command, tmp_path / "runs", [signal_at(signal.SIGTERM, 3, rank=-1, to="parent")])
    output = "\n".join(out for _, out in stopped)
    last = last_checkpoint(tmp_path / "runs")
    assert f"Interrupted (stopped by SIGTERM); saved {last}" in output, output[-4000:]
    assert 3 < load(last)["global_step"] <= 5

    resume = shown("torchrun", resume=True).replace("--trainer.devices 8", "--trainer.devices 1")
    resumed = _torchrun(resume, tmp_path / "runs", [signal_at(signal.SIGTERM, 3, rank=-1, to="parent")])  # as made
    assert all(code == 0 for code, _ in resumed), resumed[0][1][-3000:]
    again = load(last)  # the resume continued the run in its own folder
    assert again["global_step"] == 10 and not differences(uninterrupted("memory", None, tmp_path_factory), again)


# ------------------------------------------------------------------------------------------------ SLURM

FAKE_SRUN = """#!{python}
# srun on one node: $SLURM_NTASKS tasks with SLURM's variables; signals are for the tasks
import os, signal, subprocess, sys
for s in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
    signal.signal(s, signal.SIG_IGN)
tasks = int(os.environ["SLURM_NTASKS"])
procs = [
    subprocess.Popen(sys.argv[1:], env={{**os.environ, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)}},
                     preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL) for s in (signal.SIGUSR1, signal.SIGTERM)])
    for r in range(tasks)
]
codes = [p.wait() for p in procs]
sys.exit(next((c for c in codes if c), 0))
"""


def _slurm(script: str, folder: Path) -> tuple[int, str]:
    """The page's SLURM script, run as SLURM runs a job 4242 (and its requeue) on one node."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text(FAKE_SRUN.format(python=sys.executable))
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {folder / "scontrol.log"}\n')
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    path = folder / "train.sh"
    path.write_text(script)
    env = {
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "127.0.0.1",
    }
    return run(["bash", str(path)], env=env)


def test_the_slurm_script_requeues_on_sigusr1_and_resumes_exactly(tmp_path, tmp_path_factory):
    script = shown("#SBATCH", resume=False)
    assert "--signal=SIGUSR1@90" in script and "--requeue" in script and "srun python -m project.cli fit" in script
    script = script.replace("--trainer.num_nodes 2 --trainer.devices 8", "--trainer.num_nodes 1 --trainer.devices 2")
    job_dir = tmp_path / "job"
    job_dir.mkdir()

    # SLURM's SIGUSR1 to every task, in the middle of step 3: both save that step's hpc checkpoint, requeue, stop
    code, output = _slurm(single_machine(script, job_dir, [signal_at(signal.SIGUSR1, 3, rank=-1)]), job_dir)
    assert code == 138, output[-4000:]
    assert (job_dir / "scontrol.log").read_text().split() == ["requeue", "4242"]
    hpc = sorted((job_dir / "logs" / "slurm-4242").glob("hpc_ckpt_*.ckpt"))
    assert len(hpc) == 1, output[-3000:]
    assert 3 < load(hpc[0])["global_step"] <= 5 and "Traceback" not in output, output[-4000:]

    # The requeued job: the same script and job id, without the signal; Lightning resumes from the hpc checkpoint
    code, output = _slurm(single_machine(script, job_dir), job_dir)
    assert code == 0, output[-4000:]
    assert f"Restoring states from the checkpoint path at {hpc[0]}" in output, output[-3000:]
    finished = load(last_checkpoint(job_dir / "logs"))
    assert finished["global_step"] == 10
    assert not differences(uninterrupted("memory", None, tmp_path_factory), finished)
