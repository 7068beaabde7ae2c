"""Write small image-folder data sets (one sub-folder of PNG/JPEG files per class) for tests."""

from pathlib import Path

import torch
from PIL import Image

CLASSES = ("circle", "square", "triangle")


def class_image(label: int, generator: torch.Generator, size: tuple[int, int] = (20, 24)) -> torch.Tensor:
    """uint8 (3, H, W): a class colour plus noise, easy enough to learn in a few steps."""
    palette = torch.tensor([[220, 40, 40], [40, 200, 40], [40, 40, 220], [200, 200, 40], [40, 200, 200]])
    noise = torch.randn(3, *size, generator=generator) * 20
    return (palette[label % len(palette)].view(3, 1, 1) + noise).clamp(0, 255).to(torch.uint8)


def write_image_tree(
    root: Path, classes: tuple[str, ...] = CLASSES, per_class: int = 8, seed: int = 0, size: tuple[int, int] = (20, 24)
) -> Path:
    """root/<class>/NNN.png (even NNN) and .jpg (odd), so both decoders are exercised."""
    generator = torch.Generator().manual_seed(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = class_image(label, generator, size)
            if i % 2:
                to_pil(image).save(root / name / f"{i:03d}.jpg", quality=95)
            else:
                to_pil(image).save(root / name / f"{i:03d}.png")
    return root


def truncate(path: Path) -> Path:
    """Cut a file to half its bytes, as an interrupted copy or download would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def to_pil(image: torch.Tensor) -> Image.Image:
    """uint8 (3, H, W) -> a Pillow RGB image."""
    return Image.fromarray(image.permute(1, 2, 0).numpy())
