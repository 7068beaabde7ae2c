"""Pictures for TensorBoard, drawn with matplotlib and returned as (3, H, W) uint8 arrays ready for
`SummaryWriter.add_image(..., dataformats="CHW")`.

Each function draws on its own `Figure` with the Agg canvas, never through pyplot: nothing is
registered in pyplot's global list of open figures, so nothing needs closing and no window can open,
whatever backend the user's matplotlib is set to. Sizes are chosen to be read at TensorBoard's default
image size (about 600 px wide) without zooming. The callbacks call these at validation or test end
only, on global rank 0.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

DPI = 100
COLOUR_MAP = "magma"  # perceptually uniform, and readable in greyscale print


def figure(width: float, height: float, layout: str | None = "constrained"):
    """A matplotlib Figure (inches) on an Agg canvas; matplotlib is imported only when a picture is drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def to_image(fig) -> np.ndarray:
    """The figure rendered as a (3, H, W) uint8 array."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())  # (H, W, 4)
    image = np.ascontiguousarray(rgba[..., :3].transpose(2, 0, 1))
    fig.clear()
    return image


def confusion_matrix(counts: Tensor, names: Sequence[str], normalize: bool = False) -> np.ndarray:
    """(C, C) counts, rows the true class -> the matrix with class names on both axes.

    Each row is shaded by its share (the class's recall on the diagonal); the cells show the counts,
    or with `normalize` the row shares.
    """
    counts = counts.double().cpu()
    shares = (counts / counts.sum(dim=1, keepdim=True).clamp(min=1)).numpy()
    n = len(names)
    side = min(max(4.0, 0.45 * n + 2.0), 16.0)
    fig = figure(side + 1.0, side)
    ax = fig.add_subplot()
    shading = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(shading, ax=ax, shrink=0.8, label="share of the true class (row)")
    slanted = max(len(name) for name in names) > 3  # long names overlap side by side
    ax.set_xticks(range(n), labels=names, rotation=45 if slanted else 0, ha="right" if slanted else "center")
    ax.set_yticks(range(n), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix, rows normalised" if normalize else "Confusion matrix (counts)")
    if n <= 20:  # beyond that the numbers crowd their cells (and take seconds to draw); the shading reads
        size = 10 if n <= 12 else 7
        for i in range(n):
            for j in range(n):
                text = f"{shares[i, j]:.2f}" if normalize else str(int(counts[i, j]))
                colour = "white" if shares[i, j] > 0.5 else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=size, color=colour)
    return to_image(fig)


def spectrogram(
    features: Tensor, seconds_per_frame: float | None, title: str, frequency_label: str = "mel band"
) -> np.ndarray:
    """(T, F) log-mel features of one clip -> a heat map, time along x (seconds when known) and
    frequency up y, low bands at the bottom."""
    values = features.float().cpu().T.numpy()  # (F, T)
    frames, bands = values.shape[1], values.shape[0]
    fig = figure(6.0, 3.2)
    ax = fig.add_subplot()
    extent = (0.0, frames * (seconds_per_frame or 1.0), 0.0, float(bands))
    shown = ax.imshow(values, origin="lower", aspect="auto", cmap=COLOUR_MAP, extent=extent, interpolation="nearest")
    fig.colorbar(shown, ax=ax, label="log power")
    ax.set_xlabel("time (s)" if seconds_per_frame else "frame")
    ax.set_ylabel(frequency_label)
    ax.set_title(title)
    return to_image(fig)


def image_grid(images: Sequence[Tensor], titles: Sequence[str], columns: int = 8) -> np.ndarray:
    """Images (C, H, W), each stretched to its own range, in a grid with a title above each.

    One mosaic in one axes, the titles placed over it: a subplot per image would cost ten times more
    to draw."""
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    tiles = [displayable(image) for image in images]
    tiles = [tile if tile.ndim == 3 else np.repeat(tile[..., None], 3, axis=2) for tile in tiles]  # (H, W, 3)
    height, width = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    gap, caption = max(2, width // 8), max(height // 2, 20)  # pixels between tiles, above each for its title
    mosaic = np.ones((rows * (height + caption + gap), columns * (width + gap), 3))
    for k, tile in enumerate(tiles):
        top, left = (k // columns) * (height + caption + gap) + caption, (k % columns) * (width + gap)
        mosaic[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    side = 1.5 * columns  # inches: about 150 px a tile, titles at 8 pt
    fig = figure(side, side * mosaic.shape[0] / mosaic.shape[1], layout=None)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(mosaic, interpolation="nearest")
    for k, title in enumerate(titles):
        top, left = (k // columns) * (height + caption + gap) + caption, (k % columns) * (width + gap)
        ax.text(left + width / 2, top - 1, title, ha="center", va="bottom", fontsize=8)
    ax.axis("off")
    return to_image(fig)


def displayable(image: Tensor) -> np.ndarray:
    """(C, H, W) of any range -> (H, W, 3) or (H, W) in [0, 1], the image's own range stretched."""
    image = image.detach().float().cpu()
    image = (image - image.min()) / (image.max() - image.min()).clamp(min=1e-6)
    if image.shape[0] == 1:
        return image[0].numpy()
    return image[:3].permute(1, 2, 0).numpy()  # (H, W, 3)


def thumbnails(images: Tensor, size: int = 32) -> Tensor:
    """(N, C, H, W) -> (N, 3, size, size) in [0, 1], each image stretched to its own range: the
    projector's sprite."""
    images = images.detach().float().cpu()
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    high = images.amax(dim=(1, 2, 3), keepdim=True)
    images = (images - low) / (high - low).clamp(min=1e-6)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    images = images[:, :3]
    if images.shape[-2:] != (size, size):
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
    return images.clamp(0, 1)
