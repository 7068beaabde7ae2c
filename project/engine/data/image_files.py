"""Image files into uint8 tensors: decoded with Pillow (torchvision's decoders are deprecated since 0.29),
resized without distortion, in threads, with an error naming any file that is not a readable image."""

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as F

from project.engine.errors import DataError

log = logging.getLogger(__name__)

SKIP_BAD_FILES = "--data.source.init_args.skip_bad_files"  # ImageFolder's switch; it works when streaming too
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")


def decode_image_file(path: Path, size: int) -> Tensor:
    """uint8 (3, size, size): the shorter side resized to `size`, then the central square."""
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so a truncated file fails here with its name
            if image.mode.startswith("I"):  # 16-bit greyscale (PNG, TIFF): keep the 8 most significant bits
                image = Image.fromarray((np.asarray(image).clip(0, 65535).astype(np.uint16) >> 8).astype(np.uint8))
            rgb = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:  # UnidentifiedImageError is an OSError
        raise DataError(
            f"{path} is not a readable image ({err}): it may be truncated (an interrupted copy or download) "
            f"or not an image at all. Replace or delete it, or pass {SKIP_BAD_FILES} true to leave out every "
            "unreadable file (each is logged)."
        ) from err
    tensor = F.pil_to_tensor(rgb)  # (3, H, W) uint8
    tensor = F.resize(tensor, [size], antialias=True)
    return F.center_crop(tensor, [size, size])


def decode_stacked(files: list[Path], size: int, skip_bad_files: bool) -> tuple[Tensor, list[int]]:
    """The images of `files` as one uint8 (N, 3, size, size) tensor, each decoded (in parallel) straight into its
    place, and the indices of the files they came from. An unreadable file raises its error, or with
    `skip_bad_files` is logged and left out. The set is held once: a list of decoded images gathered by
    `torch.stack` held it twice, and the freed list's many small blocks stayed in the process (a third copy
    by the time the validation split was held out)."""
    out = torch.empty((len(files), 3, size, size), dtype=torch.uint8)

    def decode(i: int) -> ValueError | None:
        try:
            out[i] = decode_image_file(files[i], size)
        except ValueError as err:
            return err
        return None

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        errors = list(pool.map(decode, range(len(files))))
    kept = [i for i, err in enumerate(errors) if err is None]
    for path, err in zip(files, errors, strict=True):
        if err is not None:
            if not skip_bad_files:
                raise err
            log.warning("Skipping %s: %s", path, err)
    if len(kept) < len(files):
        log.warning(
            "Skipped %d unreadable file(s) of %d (data.source.init_args.skip_bad_files).",
            len(files) - len(kept),
            len(files),
        )
        out = out[torch.tensor(kept, dtype=torch.int64)] if kept else out[:0]
    return out, kept


def find_image_files(folder: Path, skip_bad_files: bool = False) -> list[Path]:
    """Every image file under `folder`, recursively, sorted, hidden ones aside. Any other file is an error naming
    it, or with `skip_bad_files` is logged and left out."""
    files = []
    for path in sorted(folder.rglob("*")):
        if path.is_dir() or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # .DS_Store and other hidden files are not data
        if path.suffix.lower() in IMAGE_SUFFIXES:
            files.append(path)
        elif skip_bad_files:
            log.warning("Skipping %s: not an image file (expected one of %s).", path, ", ".join(IMAGE_SUFFIXES))
        else:
            raise DataError(
                f"{path} is not an image file (expected one of {', '.join(IMAGE_SUFFIXES)}). Move it out of "
                f"{folder}, or pass {SKIP_BAD_FILES} true to leave such files out (each is logged)."
            )
    return files


def read_predict_folder(folder: Path, size: int, skip_bad_files: bool = False) -> tuple[Tensor, list[str]]:
    """Every image under `folder` (recursively, in sorted order) as uint8 (N, 3, size, size), with each
    file's path relative to `folder` as its name."""
    if not folder.is_dir():
        raise FileNotFoundError(f"data.predict_dir {folder.resolve()} does not exist; point it at a folder of images.")
    files = find_image_files(folder, skip_bad_files)
    if not files:
        raise DataError(f"data.predict_dir {folder.resolve()} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    images, kept = decode_stacked(files, size, skip_bad_files)
    if not kept:
        raise DataError(f"No readable image is left in {folder}; see the warnings above for each file.")
    return images, [str(files[i].relative_to(folder)) for i in kept]
