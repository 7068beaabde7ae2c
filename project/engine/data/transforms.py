"""Batch transforms for uint8 images, run on the device after transfer (4x less to copy than float32), one
batched op each, randomness from an explicit generator so that augmentation is a function of seed and step."""

from typing import Literal

import torch
from torch import Tensor

from project.engine.errors import DataError


class ImageEvalTransform:
    """uint8 (B, C, H, W) -> normalised float (B, C, H, W)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        self.mean = torch.tensor(mean).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std).view(1, -1, 1, 1) * 255

    def __call__(self, images: Tensor, generator: torch.Generator | None = None, epoch: int = 0) -> Tensor:
        if self.mean.device != images.device:
            # Moved once and kept: a blocking host-to-GPU copy every step would stall the GPU queue
            self.mean, self.std = self.mean.to(images.device), self.std.to(images.device)
        return (images.float() - self.mean) / self.std


class ImageTrainTransform(ImageEvalTransform):
    """Random crop after reflect padding (a translation of up to `pad` pixels), horizontal flip, normalisation.
    `flip="alternating"` mirrors the whole batch in odd epochs only: with a random half of the set mirrored
    once up front, every image is seen both ways in any two consecutive epochs, not by chance."""

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        pad: int = 4,
        flip: Literal["random", "alternating", "none"] = "random",
    ):
        super().__init__(mean, std)
        if flip not in ("random", "alternating", "none"):
            raise DataError(f"flip must be 'random', 'alternating' or 'none', got {flip!r}.")
        if pad < 0:
            raise DataError(f"pad (the translation in pixels) must be 0 or more, got {pad}.")
        self.pad = pad
        self.flip = flip

    def __call__(self, images: Tensor, generator: torch.Generator | None = None, epoch: int = 0) -> Tensor:
        if self.pad > 0:
            images = random_translate(images, self.pad, generator)
        if self.flip == "random":
            images = random_flip(images, generator)
        elif self.flip == "alternating" and epoch % 2 == 1:
            images = images.flip(-1)
        return super().__call__(images)


def random_translate(images: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """Per-image random crop of the original size from the reflect-padded images, in one gather."""
    b, _, h, w = images.shape
    # reflect padding is not implemented for uint8; the crop only moves values, so the round trip is exact
    padded = torch.nn.functional.pad(images.float(), (pad, pad, pad, pad), mode="reflect").to(images.dtype)
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b, 1), device=images.device, generator=generator)
    rows = dy + torch.arange(h, device=images.device)  # (B, H)
    cols = dx + torch.arange(w, device=images.device)  # (B, W)
    batch = torch.arange(b, device=images.device).view(b, 1, 1)
    # Index (B, H', W', C) on its first three dims: (B, H, W, C)
    crops = padded.permute(0, 2, 3, 1)[batch, rows.view(b, h, 1), cols.view(b, 1, w)]
    # (B, C, H, W) view of channels-last memory, the layout convolutions prefer on tensor cores
    return crops.permute(0, 3, 1, 2)


def random_flip(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Mirror a random half of the images left-right, without a data-dependent branch (no host sync)."""
    flip = torch.rand(images.shape[0], 1, 1, 1, device=images.device, generator=generator) < 0.5
    return torch.where(flip, images.flip(-1), images)
