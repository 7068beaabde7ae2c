"""The audio and memory benchmark scripts run to their tables on tiny synthetic data (no timing is checked)."""

import pytest

from project.examples.fsdd.tests.fsdd_format import write_fsdd
from tests.scripts import run_script

# A synthetic FSDD of 2 speakers: a subset, small batches and a narrow net
TINY_FSDD = [
    "--data.source.init_args.expected_recordings=0",
    "--data.batch_size=8",
    "--model.net.init_args.hidden_size=16",
]


@pytest.mark.slow
def test_fsdd_benchmark_prints_every_figure(tmp_path):
    root = write_fsdd(tmp_path / "fsdd", takes=7)
    extra = [f"--extra={flag}" for flag in TINY_FSDD]
    out = run_script(
        "project/examples/fsdd/benchmarks/fsdd.py",
        str(root),
        "--epochs",
        "1",
        "--runs",
        "1",
        "--to-accuracy",
        "0.99",
        *extra,
    )
    for row in ("imports", "start-up", "decoding the WAVs (fsdd)", "template / plain loop", "speaker overlay"):
        assert row in out, out[-3000:]


@pytest.mark.slow
def test_memory_benchmark_measures_a_recipe(tmp_path):
    root = write_fsdd(tmp_path / "fsdd", takes=7)
    extra = [f"--extra={flag}" for flag in TINY_FSDD]
    out = run_script(
        "benchmarks/memory.py",
        "--fsdd",
        str(root),
        "--recipes",
        "fsdd",
        "--steps",
        "1",
        *extra,
    )
    row = next(line for line in out.splitlines() if line.startswith("| fsdd |"))
    assert " MB |" in row and "bytes" in row, out[-3000:]


@pytest.mark.slow
def test_ctc_benchmark_prints_every_figure(tmp_path):
    root = write_fsdd(tmp_path / "fsdd", speakers=("george", "theo"), takes=12)
    extra = [
        "--data.source.init_args.expected_recordings=0",
        "--data.source.init_args.val_utterances=8",
        "--data.source.init_args.test_utterances=8",
        "--data.batch_size=8",
    ]
    out = run_script(
        "project/examples/fsdd/benchmarks/fsdd_ctc.py",
        str(root),
        "--preset",
        "quick",
        "--epochs",
        "1",
        "--runs",
        "1",
        "--train-utterances",
        "24",
        *(f"--extra={flag}" for flag in extra),
    )
    for row in ("making the utterances", "template: fit, s (3 steps)", "plain loop: test WER", "template / plain loop"):
        assert row in out, out[-3000:]
