"""A small, fast CIFAR-10 net in the spirit of airbench94 (Keller Jordan, 2024: 94% in a few seconds), with
the known tricks of the CIFAR-10 speed runs:
- a frozen first conv whose 2x2 filters whiten the input patches (`init_from_data`), so the first trained
  layer sees decorrelated inputs;
- three conv-pool-BN-GELU groups, 64/256/256 wide: busy on a GPU, shallow enough to need few steps;
- BatchNorm without a learned scale, whose shift learns `bias_lr_scale` times faster (reparametrised, so
  one plain SGD optimizer from the YAML does it);
- 3x3 convs that start as the identity on their first input channels (an implicit residual path);
- scaled-down logits, and test-time augmentation (project/examples/cifar10/tta.py) in eval mode."""

from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from project.engine.errors import ConfigError
from project.examples.cifar10.tta import LEVELS, tta_logits


class BatchNorm(nn.Module):
    """BatchNorm2d with a fixed unit scale and a shift that trains `lr_scale` times faster: stored divided by
    sqrt(lr_scale) and multiplied back in `forward`, so SGD moves it lr_scale times faster while weight decay
    shrinks it as any other parameter (airbench's separate parameter group, without a second optimizer group)."""

    def __init__(self, channels: int, momentum: float = 0.4, eps: float = 1e-12, lr_scale: float = 64.0):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.momentum = momentum
        self.eps = eps
        self.gain = lr_scale**0.5

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, None, self.shift * self.gain, self.training, self.momentum, self.eps
        )


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding="same", bias=False)  # BatchNorm supplies the bias
    with torch.no_grad():
        # The first c_in filters start as the identity: a residual path without a residual branch
        nn.init.dirac_(conv.weight[: min(c_in, c_out)])
    return conv


class ConvGroup(nn.Module):
    """conv -> 2x2 max-pool -> BN -> GELU -> conv -> BN -> GELU, halving the resolution; pooling right after
    the first conv runs the rest at a quarter of the pixels."""

    def __init__(self, c_in: int, c_out: int, bn_momentum: float, bn_lr_scale: float):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out)
        self.norm1 = BatchNorm(c_out, bn_momentum, lr_scale=bn_lr_scale)
        self.conv2 = conv3x3(c_out, c_out)
        self.norm2 = BatchNorm(c_out, bn_momentum, lr_scale=bn_lr_scale)

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))  # (B, C_out, H/2, W/2)
        return F.gelu(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """Image classifier: normalised (B, C, H, W) float images -> (B, num_classes) logits.

    Call `init_from_data` before training (the recipe's `WhiteningInit` callback does, at the start of a fit):
    until then the whitening filters are zero and the net sees nothing.

    Args:
        num_classes: output logits; the data's class count replaces the default (project/engine/sizes.py).
        in_channels: 3 for RGB.
        widths: channels of the three conv groups.
        whitening_kernel: side of the whitening filters; the layer has 2·C·k² of them (each eigenvector
            and its negation, so the GELU after it loses no information).
        whitening_eps: added to the eigenvalues before the division; keeps the near-null directions
            (noise) from being amplified without bound.
        whitening_images: training images whose patches estimate the covariance.
        bn_momentum: weight of the newest batch in BatchNorm's running statistics (PyTorch's convention);
            high, because a short run must track fast-moving weights.
        bn_lr_scale: how much faster the BatchNorm shifts learn than the weights.
        logit_scale: multiplies the logits; small logits keep the early softmax soft at high learning rates.
        tta_level: test-time augmentation in eval mode: 0 none, 1 mirror, 2 mirror and one-pixel shifts.
        channels_last: run the convs in NHWC memory layout, the fast one for tensor cores.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: tuple[int, int, int] = (64, 256, 256),
        whitening_kernel: int = 2,
        whitening_eps: float = 5e-4,
        whitening_images: int = 5000,
        bn_momentum: float = 0.4,
        bn_lr_scale: float = 64.0,
        logit_scale: float = 1 / 9,
        tta_level: int = 2,
        channels_last: bool = True,
    ):
        super().__init__()
        if len(widths) != 3:
            raise ConfigError(f"model.net.widths must give the widths of 3 conv groups, got {widths}.")
        if tta_level not in LEVELS:
            raise ConfigError(f"model.net.tta_level must be one of {sorted(LEVELS)}, got {tta_level}.")
        whitening_width = 2 * in_channels * whitening_kernel**2
        self.whiten = nn.Conv2d(in_channels, whitening_width, whitening_kernel, bias=True)
        nn.init.zeros_(self.whiten.weight)
        nn.init.zeros_(self.whiten.bias)
        # Set from the data, never by gradients; its bias trains (see callbacks.FreezeParameters)
        self.whiten.weight.requires_grad_(False)
        self.groups = nn.Sequential(
            ConvGroup(whitening_width, widths[0], bn_momentum, bn_lr_scale),
            ConvGroup(widths[0], widths[1], bn_momentum, bn_lr_scale),
            ConvGroup(widths[1], widths[2], bn_momentum, bn_lr_scale),
        )
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.whitening_eps = whitening_eps
        self.whitening_images = whitening_images
        self.logit_scale = logit_scale
        self.tta_level = tta_level
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def init_from_data(self, sample: Callable[[int], Tensor]) -> None:
        """Set the whitening filters from `sample(n)`, n normalised training images (n, C, H, W): eigenvectors of the
        k x k patches' covariance, divided by the root of their eigenvalues (decorrelated outputs, unit variance)."""
        images = sample(self.whitening_images).to(self.whiten.weight.device, torch.float32)
        c, k = images.shape[1], self.whiten.kernel_size[0]
        patches = images.unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H-k+1, W-k+1, k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)  # (P, C·k·k), as conv weights
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
        filters = eigenvectors.T / torch.sqrt(eigenvalues + self.whitening_eps)[:, None]
        filters = filters.flip(0).view(c * k * k, c, k, k)  # strongest direction first
        self.whiten.weight.copy_(torch.cat([filters, -filters]))

    def logits(self, images: Tensor) -> Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        x = F.gelu(self.whiten(images))  # (B, 2·C·k², H-k+1, W-k+1)
        x = self.groups(x)  # (B, C, H/8, W/8)
        x = torch.amax(x, dim=(2, 3))  # global max pool: (B, C)
        return self.head(x) * self.logit_scale

    def forward(self, images: Tensor) -> Tensor:
        if self.training or self.tta_level == 0:
            return self.logits(images)
        return tta_logits(self.logits, images, self.tta_level)


class WhiteningInit(L.Callback):
    """Sets the whitening filters of the model's `AirbenchNet` (any net with `init_from_data`) from training images
    once, before the first step of a new fit; a resumed fit keeps the filters from its checkpoint.

    The data module hands the images: `sample_train_images(n)` returns n normalised training images, as
    ImageDataModule does."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path is not None:
            return
        nets = [m for m in pl_module.modules() if callable(getattr(m, "init_from_data", None))]
        if not nets:
            raise ConfigError(
                f"WhiteningInit: the model ({type(pl_module).__name__}) has no net with `init_from_data`; "
                "remove the callback from trainer.callbacks"
            )
        sample = getattr(trainer.datamodule, "sample_train_images", None)
        if sample is None:
            raise ConfigError(
                f"WhiteningInit: the data ({type(trainer.datamodule).__name__}) has no `sample_train_images(n)`. "
                "Add one that returns n normalised training images, as ImageDataModule does."
            )
        for net in nets:
            net.init_from_data(sample)
