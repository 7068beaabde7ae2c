"""Optional checks on the real CIFAR-10 (a JPEG copy, see tests/conftest.py); skipped where it is absent."""

import subprocess
import sys

import pytest
import torch

from project.examples.cifar10.tests.cifar_format import cifar10_data
from project.examples.cifar10.tests.conftest import cifar10_converter
from tests.conftest import real_data_file


@pytest.mark.slow
def test_reads_the_real_cifar10(tmp_path):
    # The converted folder's bytes differ from the official archive: it must be read as it is
    real_data_file("cifar10-jpeg.tar.xz")
    subprocess.run([sys.executable, str(cifar10_converter()), str(tmp_path)], check=True, capture_output=True)
    dm = cifar10_data(tmp_path, download=False)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (45000, 5000, 10000)
    assert torch.bincount(dm.test_set.labels).tolist() == [1000] * 10
    mean = dm.train_set.inputs.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=0.01), "channel order or layout is off"
