import subprocess
import sys

import pytest
import torch

from project.engine.data.transforms import ImageEvalTransform, ImageTrainTransform, random_flip, random_translate
from project.models import ResNet


@pytest.mark.parametrize("channels_last", [True, False])
def test_resnet_shapes_and_every_parameter_learns(channels_last):
    # 7 classes: an odd count catches a head wired to a hard-coded 10
    net = ResNet(num_classes=7, widths=(8, 16, 16, 16), channels_last=channels_last)
    logits = net(torch.randn(4, 3, 32, 32))
    assert logits.shape == (4, 7) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.arange(4)).backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.slow  # a fresh interpreter importing torch
def test_the_networks_import_only_torch():
    """A network is plain torch: using one elsewhere does not load Lightning (or the CLI's libraries)."""
    code = "import sys, project.models; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy = [m for m in ("lightning", "pytorch_lightning", "jsonargparse", "torchmetrics") if f"'{m}'" in loaded]
    assert not heavy, f"importing project.models loaded {heavy}"


def test_resnet_rejects_mismatched_stage_settings():
    with pytest.raises(ValueError, match=r"residual has 2 entries but widths .* define 3 stages"):
        ResNet(num_classes=10, widths=(8, 8, 8, 8), residual=(True, False))


def _images(b=6, seed=0):
    return torch.randint(0, 256, (b, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_translate_is_a_crop_of_the_reflect_padded_image():
    images = _images()
    out = random_translate(images, pad=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images.float(), (4, 4, 4, 4), mode="reflect")
    for i in range(len(images)):  # each output is one of the 81 crops of its own padded image
        crops = padded[i].unfold(1, 32, 1).unfold(2, 32, 1)  # (C, 9, 9, 32, 32)
        match = (crops == out[i].float()[:, None, None]).flatten(3).all(-1).all(0)
        assert match.any(), f"image {i} is not a crop of itself"
    assert torch.equal(random_translate(images, pad=0), images)


def test_augmentation_is_deterministic_per_generator_and_varies_across_seeds():
    images = _images(64)
    aug = ImageTrainTransform(mean=(0.5,) * 3, std=(0.25,) * 3)
    a = aug(images, torch.Generator().manual_seed(1))
    b = aug(images, torch.Generator().manual_seed(1))
    c = aug(images, torch.Generator().manual_seed(2))
    assert a.dtype == torch.float32 and a.shape == images.shape
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_flip_mirrors_about_half_and_keeps_the_rest():
    images = _images(200)
    out = random_flip(images, torch.Generator().manual_seed(0))
    flipped = (out == images.flip(-1)).flatten(1).all(1)
    kept = (out == images).flatten(1).all(1)
    assert (flipped | kept).all() and 60 < int(flipped.sum()) < 140


def test_eval_transform_normalises():
    images = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = ImageEvalTransform(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))(images)
    assert torch.allclose(out, torch.ones_like(out))
