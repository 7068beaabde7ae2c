"""Pictures for TensorBoard, drawn with matplotlib as (3, H, W) uint8 arrays for `add_image`, sized for its
default image card (about 600 px wide). Each draws on its own Agg `Figure`, never through pyplot: nothing
joins pyplot's open figures and no window opens, whatever the user's backend."""

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


CARD_INCHES = 3.4  # TensorBoard's image card shows about 340 px (at DPI 100) unscaled; wider pictures shrink


def confusion_matrix(counts: Tensor, names: Sequence[str], normalize: bool = False) -> np.ndarray:
    """(C, C) counts, rows the true class -> the matrix, each row shaded by its share, the cells showing counts
    or, with `normalize`, shares. Sized to TensorBoard's image card (`CARD_INCHES`), so that it is shown unscaled
    and its numbers keep the size they are drawn at; a set of many classes grows past it (the names need a row
    each). Margins from the names' lengths: the layout engine took 0.4 s of a 0.5 s draw."""
    counts = counts.double().cpu()
    shares = (counts / counts.sum(dim=1, keepdim=True).clamp(min=1)).numpy()
    n = len(names)
    longest = min(max(len(name) for name in names), 16)
    names = [_fit(name, 16) for name in names]
    label_pt = 7.5 if n <= 12 else 6.0
    name_in = 0.6 * label_pt / 72 * longest  # DejaVu Sans averages about 0.6 em a character
    slanted = longest > 2  # long names overlap side by side
    left, right, top = name_in + 0.32, 0.08, 0.32
    bottom = (0.72 * name_in if slanted else 0.12) + 0.3
    cell = max((CARD_INCHES - left - right) / n, 0.11 if n > 12 else 0.2)  # inches; a name a row at the least
    width, height = left + n * cell + right, bottom + n * cell + top
    fig = figure(width, height, layout=None)
    ax = fig.add_axes((left / width, bottom / height, n * cell / width, n * cell / height))
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(n), labels=names, rotation=45 if slanted else 0, ha="right" if slanted else "center")
    ax.set_yticks(range(n), labels=names)
    ax.tick_params(labelsize=label_pt, length=2, pad=1.5)
    ax.set_xlabel("predicted class", fontsize=label_pt, labelpad=2)
    ax.set_ylabel("true class", fontsize=label_pt, labelpad=2)
    numbered = n <= 20  # beyond that the numbers crowd their cells (and take seconds to draw); the shading reads
    texts = [[f"{shares[i, j]:.2f}" if normalize else str(int(counts[i, j])) for j in range(n)] for i in range(n)]
    what = ("shares of the true class" if normalize else "counts") if numbered else "no numbers at this size"
    ax.set_title(f"Confusion matrix: {what}, shaded by row", fontsize=8, pad=3)
    if numbered:
        chars = max(len(text) for row in texts for text in row)
        # as large as the widest number allows in its cell (0.6 em a digit), from 5.5 to 10 points
        size = min(10.0, max(5.5, cell * 72 * 0.85 / (0.6 * chars)))
        for i in range(n):
            for j in range(n):
                colour = "white" if shares[i, j] > 0.5 else "black"
                ax.text(j, i, texts[i][j], ha="center", va="center", fontsize=size, color=colour)
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


def pr_curves(precision: Tensor, recall: Tensor, names: Sequence[str]) -> np.ndarray:
    """(T, C) precision and recall at T rising thresholds -> a small chart per class titled with its average
    precision; three columns of about 120 px fit TensorBoard's card unscaled. Fixed margins: the layout engine
    would cost most of the draw."""
    n = len(names)
    columns, rows = min(n, 3), -(-n // 3)
    width, height = 0.6 + 1.2 * columns, 0.75 + 1.2 * rows  # inches: the margins hold the axis names
    fig = figure(width, height, layout=None)
    fig.subplots_adjust(left=0.5 / width, right=1 - 0.1 / width, bottom=0.5 / height, top=1 - 0.25 / height)
    fig.subplots_adjust(hspace=0.55, wspace=0.35)
    fig.supxlabel("recall", fontsize=9)
    fig.supylabel("precision", fontsize=9)
    for k, ax in enumerate(fig.subplots(rows, columns, squeeze=False).flat):
        if k >= n:
            ax.axis("off")
            continue
        p, r = precision[:, k].numpy(), recall[:, k].numpy()
        average = float(np.sum((r - np.append(r[1:], 0.0)) * p))  # each step down in recall at its precision
        ax.plot(r, p, color="#1f5fa8")
        ax.set(xlim=(0, 1), ylim=(0, 1.03), xticks=(0, 0.5, 1), yticks=(0, 0.5, 1))
        ax.tick_params(labelsize=6, length=2, pad=1)
        ax.set_title(f"{_fit(names[k], 12)} · AP {average:.2f}", fontsize=8, pad=3)
    return to_image(fig)


TILE, CELL, FONT_PT = 96, 130, 10  # image side and cell width in pixels; caption size in points
LINE = int(FONT_PT * DPI / 72 * 1.25)  # a caption line's height in pixels


def image_grid(
    images: Sequence[Tensor], captions: Sequence[tuple[str, str]], columns: int = 3, legend: str = ""
) -> np.ndarray:
    """Images (C, H, W), each stretched to its own range, in a grid with two caption lines under each, the second
    in red. Three columns of 130 px keep 10-pt captions readable in TensorBoard's 350 px card. One mosaic in one
    axes: a subplot per image would cost ten times more to draw."""
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    tiles = [displayable(image) for image in images]
    tiles = [tile if tile.ndim == 3 else np.repeat(tile[..., None], 3, axis=2) for tile in tiles]  # (H, W, 3)
    height, width = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    scale = max(1, TILE // max(height, width))  # whole pixels: small images stay crisp
    cell_w, top_margin = max(CELL, width * scale + 8), 30 if legend else 6
    cell_h = height * scale + 2 * LINE + 10  # the image, two caption lines, a gap
    mosaic = np.ones((top_margin + rows * cell_h, columns * cell_w, 3))
    fig = figure(mosaic.shape[1] / DPI, mosaic.shape[0] / DPI, layout=None)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    chars = int(cell_w / (0.6 * FONT_PT * DPI / 72))  # DejaVu Sans averages about 0.6 em a character
    for k, (tile, (first, second)) in enumerate(zip(tiles, captions, strict=True)):
        big = tile.repeat(scale, axis=0).repeat(scale, axis=1)
        top = top_margin + (k // columns) * cell_h
        left = (k % columns) * cell_w + (cell_w - big.shape[1]) // 2
        mosaic[top : top + big.shape[0], left : left + big.shape[1]] = big
        centre, below = (k % columns) * cell_w + cell_w / 2, top + height * scale + 2
        ax.text(centre, below, _fit(first, chars), ha="center", va="top", fontsize=FONT_PT)
        ax.text(centre, below + LINE, _fit(second, chars), ha="center", va="top", fontsize=FONT_PT, color="#c00000")
    if legend:
        ax.text(mosaic.shape[1] / 2, 6, legend, ha="center", va="top", fontsize=FONT_PT - 1, color="#444444")
    ax.imshow(mosaic, interpolation="nearest", extent=(0, mosaic.shape[1], mosaic.shape[0], 0))
    ax.set_xlim(0, mosaic.shape[1])
    ax.set_ylim(mosaic.shape[0], 0)
    ax.axis("off")
    return to_image(fig)


def _fit(text: str, chars: int) -> str:
    """`text` cut to `chars` characters with an ellipsis, so that long class names keep to their cell."""
    return text if len(text) <= chars else text[: max(1, chars - 1)] + "…"


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
