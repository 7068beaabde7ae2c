"""Test-time augmentation for image classifiers: averaging the logits of mirrored and shifted views removes
part of what a net trained with flips and translations has left of them, about half a point of CIFAR-10
accuracy for a larger evaluation batch (airbench's `tta_level`)."""

from collections.abc import Callable

import torch
from torch import Tensor

from project.engine.errors import ConfigError

# (view weights) per level: the original pair weighs as much as the two shifted pairs together
LEVELS = {
    0: (1.0,),
    1: (1 / 2, 1 / 2),
    2: (1 / 4, 1 / 4, 1 / 8, 1 / 8, 1 / 8, 1 / 8),
}


def views(images: Tensor, level: int) -> Tensor:
    """The views of a batch, stacked along the batch: (V·B, C, H, W). Level 0: the images; 1: and their mirror
    images; 2: and both shifted one pixel up-left and down-right (reflect padding keeps the border plausible)."""
    if level not in LEVELS:
        raise ConfigError(f"TTA level must be one of {sorted(LEVELS)}, got {level}.")
    stack = [images]
    if level >= 1:
        stack.append(images.flip(-1))
    if level >= 2:
        padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")  # (B, C, H+2, W+2)
        up_left, down_right = padded[..., :-2, :-2], padded[..., 2:, 2:]
        stack += [up_left, up_left.flip(-1), down_right, down_right.flip(-1)]
    return torch.cat(stack)


def tta_logits(logits_fn: Callable[[Tensor], Tensor], images: Tensor, level: int) -> Tensor:
    """Weighted mean of `logits_fn` over the views of `images`, (B, num_classes), in one forward pass; the net
    must be in eval mode, so that BatchNorm treats the views independently."""
    logits = logits_fn(views(images, level))  # checks the level
    weights = LEVELS[level]
    logits = logits.view(len(weights), images.shape[0], -1)  # (V, B, num_classes)
    return sum(w * view for w, view in zip(weights, logits.unbind(0), strict=True))
