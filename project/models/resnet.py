"""A small ResNet for 32x32 images, the ResNet-9 layout of Myrtle.ai's DAWNBench CIFAR-10 entry: three stages,
each halving the resolution. Wide and shallow: at 32x32 depth buys little, and wide convs keep a GPU busy."""

import torch
from torch import Tensor, nn

from project.engine.errors import ConfigError


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),  # BatchNorm supplies the bias
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNet(nn.Module):
    """Image classifier: (B, C, H, W) float images -> (B, num_classes) logits.

    Args:
        num_classes: output logits; the data's class count replaces the default (project/engine/sizes.py).
        in_channels: 3 for RGB.
        widths: channels of the stem and of each stage.
        residual: for each stage, whether it ends in a residual block.
        logit_scale: multiplies the logits; a small value keeps the initial softmax soft, which
            lets the high learning rates of a one-cycle schedule work from the first step.
        channels_last: run convolutions in NHWC memory layout, faster on tensor cores.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        residual: tuple[bool, ...] = (True, False, True),
        logit_scale: float = 0.125,
        channels_last: bool = True,
    ):
        super().__init__()
        if len(residual) != len(widths) - 1:
            raise ConfigError(
                f"model.net.residual has {len(residual)} entries but widths {widths} define "
                f"{len(widths) - 1} stages; give one true/false per stage."
            )
        stages: list[nn.Module] = [conv_bn(in_channels, widths[0])]
        for c_in, c_out, res in zip(widths[:-1], widths[1:], residual, strict=True):
            stages += [conv_bn(c_in, c_out), nn.MaxPool2d(2)]
            if res:
                stages.append(Residual(c_out))
        self.features = nn.Sequential(*stages)
        self.head = nn.Linear(widths[-1], num_classes)
        self.logit_scale = logit_scale
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.features(x)  # (B, C, H/2^s, W/2^s)
        x = torch.amax(x, dim=(2, 3))  # global max pool: (B, C)
        return self.head(x) * self.logit_scale
