"""The fast recipe's parts: GPU-style augmentation, the airbench net and its whitening, TTA, callbacks,
and a tiny fit of project/examples/cifar10/configs/cifar10_fast.yaml through the CLI."""

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from project.engine.callbacks import FreezeParameters, Lookahead
from project.engine.cli import main
from project.engine.data.transforms import ImageTrainTransform
from project.examples.cifar10 import AirbenchNet
from project.examples.cifar10.airbench import BatchNorm
from project.examples.cifar10.tests.cifar_format import cifar10_data
from project.examples.cifar10.tta import tta_logits, views

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _images(n: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("flip", ["random", "alternating", "none"])
def test_train_transform_shapes_dtype_and_determinism(flip):
    aug = ImageTrainTransform(MEAN, STD, pad=2, flip=flip)
    images = _images()
    out = aug(images, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.float32
    assert torch.equal(out, aug(images, torch.Generator().manual_seed(1))), "same seed, same batch"
    assert not torch.equal(out, aug(images, torch.Generator().manual_seed(2))), "another seed, other crops"


def test_alternating_flip_mirrors_the_whole_batch_in_odd_epochs_only():
    aug = ImageTrainTransform(MEAN, STD, pad=2, flip="alternating")
    images = _images()
    even = aug(images, torch.Generator().manual_seed(3), epoch=2)
    odd = aug(images, torch.Generator().manual_seed(3), epoch=5)
    assert torch.equal(odd, even.flip(-1))


def test_bad_augmentation_settings_are_refused():
    with pytest.raises(ValueError, match="flip must be"):
        ImageTrainTransform(MEAN, STD, flip="sometimes")
    with pytest.raises(ValueError, match="pad"):
        ImageTrainTransform(MEAN, STD, pad=-1)


def test_tta_views_and_weights():
    x = torch.randn(4, 3, 8, 8)
    assert views(x, 0).shape == (4, 3, 8, 8) and views(x, 2).shape == (24, 3, 8, 8)
    assert torch.equal(views(x, 2)[4:8], x.flip(-1))

    def per_image_sum(v):
        return v.sum(dim=(2, 3))  # (B, 3): blind to mirroring

    assert torch.allclose(tta_logits(per_image_sum, x, 1), per_image_sum(x), atol=1e-5)

    def left_column(v):
        return v[..., 0].mean(-1)  # (B, 3): sees only the left edge

    expected = (left_column(x) + left_column(x.flip(-1))) / 2
    assert torch.allclose(tta_logits(left_column, x, 1), expected, atol=1e-6)
    with pytest.raises(ValueError, match="TTA level must be one of"):
        tta_logits(left_column, x, 3)


def _net(num_classes: int = 7, **kwargs) -> AirbenchNet:
    return AirbenchNet(num_classes=num_classes, widths=(8, 16, 16), whitening_images=32, **kwargs)


def test_whitening_decorrelates_input_patches():
    torch.manual_seed(0)
    net = _net(whitening_eps=1e-6)
    mixing = torch.randn(3, 3)  # correlated colour channels
    images = torch.einsum("dc,nchw->ndhw", mixing, torch.randn(32, 3, 32, 32)) + 0.5
    net.init_from_data(lambda n: images[:n])
    out = nn.functional.conv2d(images, net.whiten.weight[:12])  # (N, 12, 31, 31): one sign of each filter
    flat = out.permute(1, 0, 2, 3).reshape(12, -1)  # (12, P)
    covariance = flat @ flat.T / flat.shape[1]
    assert torch.allclose(covariance, torch.eye(12), atol=1e-2), "whitened patches have identity covariance"
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12])


def test_net_shapes_gradients_and_tta_in_eval_mode():
    torch.manual_seed(0)
    net = _net(num_classes=7, channels_last=False)
    x = torch.randn(6, 3, 32, 32)
    net.init_from_data(lambda n: x)
    logits = net(x)
    assert logits.shape == (6, 7) and torch.isfinite(logits).all()
    logits.square().sum().backward()
    no_grad = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not no_grad, f"parameters without a gradient: {no_grad}"
    assert net.whiten.weight.grad is None, "the whitening filters are set from data, never trained"
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (6, 7)
        assert torch.allclose(net(x), tta_logits(net.logits, x, 2))
        net.tta_level = 0
        assert torch.equal(net(x), net.logits(x))
    with pytest.raises(ValueError, match="tta_level"):
        _net(tta_level=5)


def test_batchnorm_shift_learns_lr_scale_times_faster():
    bn = BatchNorm(4, lr_scale=64.0)
    x = torch.randn(8, 4, 5, 5)
    target = torch.randn(8, 4, 5, 5)
    (bn(x) * target).sum().backward()
    plain_grad = target.sum(dim=(0, 2, 3))  # what an ordinary bias would receive
    before = bn.shift.detach() * bn.gain
    torch.optim.SGD(bn.parameters(), lr=0.01).step()
    after = bn.shift.detach() * bn.gain
    assert torch.allclose(after - before, -0.01 * 64 * plain_grad, rtol=1e-4)


def test_lookahead_averages_weights_from_the_start_epoch():
    layer = nn.Linear(2, 2, bias=False)
    lookahead = Lookahead(start_epoch=1, every_n_steps=2, decay=0.5, decay_power=0.0)
    lookahead.step(layer, epoch=0, step=2, total_steps=10)
    assert lookahead.average is None, "no averaging before start_epoch"
    lookahead.step(layer, epoch=1, step=2, total_steps=10)  # the first call takes a copy
    start = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(4.0)
    lookahead.step(layer, epoch=1, step=3, total_steps=10)  # off-step: nothing happens
    assert torch.equal(layer.weight, start + 4.0)
    lookahead.step(layer, epoch=1, step=4, total_steps=10)
    # rho = 0.5 ** 2: the average moves 3/4 of the way to the weights, and the weights follow it
    assert torch.allclose(layer.weight, start + 3.0)
    assert torch.allclose(lookahead.average[0], start + 3.0)


def test_lookahead_leaves_the_weights_alone_between_updates_and_ends_on_the_average():
    layer = nn.Linear(2, 2, bias=False)
    lookahead = Lookahead(every_n_steps=2, decay=0.5, decay_power=0.0)
    lookahead.step(layer, epoch=0, step=2, total_steps=5)  # takes the first copy
    start = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(4.0)
    lookahead.step(layer, epoch=0, step=4, total_steps=5)  # average and weights: start + 3
    with torch.no_grad():
        layer.weight.add_(1.0)
    assert torch.allclose(layer.weight, start + 4.0), "between updates the weights are training's own"
    # The last step is not an update step, and still the run ends on the average
    lookahead.step(layer, epoch=1, step=5, total_steps=5)
    assert torch.allclose(layer.weight, start + 3.0)


def test_freeze_parameters_drops_gradients_after_the_window():
    module = nn.Linear(2, 2)
    freeze = FreezeParameters(["bias"], after_epochs=2)
    freeze.frozen = [module.bias]
    module(torch.ones(1, 2)).sum().backward()
    freeze.apply(epoch=1)
    assert module.bias.grad is not None
    freeze.apply(epoch=2)
    assert module.bias.grad is None and module.weight.grad is not None


FAST = Path(__file__).resolve().parents[1] / "configs" / "cifar10_fast.yaml"


@pytest.mark.slow  # about 25 s on 2 CPU cores
def test_fast_config_fits_on_cpu_and_learns(cifar_root, tmp_path):
    """The shipped fast config, shrunk: whitening set from the data, a frozen bias stays put, it learns."""
    cli = main(
        [
            "fit",
            f"--config={FAST}",
            f"--data.source.init_args.root={cifar_root}",
            "--data.source.init_args.download=false",
            "--data.batch_size=50",
            "--data.val_size=100",
            "--model.net.init_args.widths=[8,16,16]",
            "--model.net.init_args.whitening_images=50",
            "--model.net.init_args.channels_last=false",
            "--model.compile=false",
            # A 1024-batch learning rate is too hot for 400 images and nets 8 channels wide
            "--model.scheduler.init_args.max_lr=0.3",
            "--model.net.init_args.logit_scale=1.0",
            "--trainer.precision=32-true",
            "--trainer.accelerator=cpu",
            "--trainer.max_epochs=3",
            "--trainer.check_val_every_n_epoch=3",
            "--trainer.callbacks.init_args.after_epochs=0",  # FreezeParameters (the last callback): from the start
            f"--trainer.logger.init_args.save_dir={tmp_path}",
        ]
    )
    net = cli.model.net
    assert net.whiten.weight.abs().sum() > 0, "on_fit_start must have set the whitening filters"
    assert not net.whiten.bias.any(), "a parameter frozen from epoch 0 never moves (no momentum, no decay)"
    val_acc = cli.trainer.callback_metrics["val/acc"]
    assert val_acc > 0.3, f"10 easy synthetic classes (chance 0.1): val/acc {val_acc:.2f}"


def test_alternating_flip_mirrors_a_fixed_half_of_the_training_set_up_front(cifar_root):
    def train_images(flip: str) -> torch.Tensor:
        data = cifar10_data(cifar_root, batch_size=50, val_size=100, download=False, flip=flip)
        data.setup("fit")
        return data.train_set.inputs

    plain, alternating = train_images("random"), train_images("alternating")
    mirrored = (alternating == plain.flip(-1)).flatten(1).all(1)
    kept = (alternating == plain).flatten(1).all(1)
    assert (mirrored | kept).all() and 150 < int(mirrored.sum()) < 250, "about half of 400, each one way"
    assert torch.equal(alternating, train_images("alternating")), "the same half in every run of a seed"


def _fit_counting_host_syncs(cifar_root: Path, log_dir: Path, epochs: int) -> int:
    """Host syncs (CUDA's sync debug mode) during a fit of the fast config on the GPU."""
    args = [
        "fit",
        f"--config={FAST}",
        f"--data.source.init_args.root={cifar_root}",
        "--data.source.init_args.download=false",
        "--data.batch_size=10",  # 40 steps an epoch: per-step syncs would dwarf per-epoch ones
        "--data.val_size=100",
        "--model.net.init_args.widths=[8,16,16]",
        "--model.net.init_args.whitening_images=50",
        "--trainer.accelerator=gpu",
        "--trainer.devices=1",
        f"--trainer.max_epochs={epochs}",
        f"--trainer.check_val_every_n_epoch={epochs}",
        f"--trainer.logger.init_args.save_dir={log_dir}",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            main(args)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(w.message) for w in caught)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs only matter on (and can only be seen on) a GPU")
def test_fast_config_does_not_sync_the_host_every_step(cifar_root, tmp_path):
    one = _fit_counting_host_syncs(cifar_root, tmp_path / "one", epochs=1)
    three = _fit_counting_host_syncs(cifar_root, tmp_path / "three", epochs=3)
    extra_steps = 2 * 40
    # Logging, the progress bar and the NaN guard read back once per epoch or per 48 steps: a handful.
    # One sync per step would add at least 80.
    assert three - one < extra_steps / 2, f"{three - one} host syncs in {extra_steps} more steps"
