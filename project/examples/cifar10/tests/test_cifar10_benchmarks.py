"""The CIFAR-10 benchmark scripts run to their tables on tiny synthetic data (no timing is checked)."""

import pytest

from tests.scripts import run_script


@pytest.mark.slow
def test_cifar10_benchmark_pairs_both_recipes(cifar_root):
    out = run_script(
        "project/examples/cifar10/benchmarks/cifar10_fast.py", str(cifar_root), "--device", "cpu", "--runs", "1",
        "--epochs", "1",
        "--batch-size", "50", "--precision", "32-true", "--standard-epochs", "1",
        "--extra=--data.val_size=100", "--extra=--model.net.init_args.widths=[8,16,16]",
        "--extra=--model.net.init_args.whitening_images=100",
        "--standard-extra=--data.val_size=100", "--standard-extra=--model.net.init_args.widths=[8,8,8,8]",
    )  # fmt: skip
    assert "fast: Lightning overhead" in out and "standard: Lightning overhead" in out, out[-3000:]


@pytest.mark.slow
def test_input_pipeline_benchmark_runs_without_data():
    out = run_script(
        "project/examples/cifar10/benchmarks/input_pipeline.py", "--synthetic", "1024", "--repeats", "1",
        "--batches", "1",
        "--share-steps", "1", "--share-extra=--model.net.init_args.widths=[8,8,8,8]",
    )  # fmt: skip
    assert "project / torchvision" in out and "loader's share of a step" in out, out[-3000:]
