"""Users' images as rows: one conversion for every source (``image_folder``, WebDataset tars,
a Parquet column of encoded images), so that the same files give the same rows.

A decoded image is converted to ``L`` (1 channel) or ``RGB`` (3), resized to (height, width)
bilinearly, and scaled from [0, 255] to [-1, 1] as a flat (C*H*W,) float32 row in (C, H, W)
order. Its original (mode, size) comes back beside it: a source refuses mixed modes or sizes,
since one of the images is then probably not what the user meant, and resizing would hide it.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "image_row"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def image_row(source: str | Path | IO[bytes], size: tuple[int, int] | list[int],
              channels: int) -> tuple[np.ndarray, tuple]:
    """(row (C*H*W,) float32 in [-1, 1], (mode, (width, height)) as decoded) of the image in
    ``source`` (a path or a binary file object). An image that does not decode raises
    ``OSError`` (PIL's ``UnidentifiedImageError`` is one)."""
    from PIL import Image  # imported where it decodes: the driver's start-up stays light

    height, width = size
    with Image.open(source) as img:
        img.load()
        kind = (img.mode, img.size)
        resized = img.convert("L" if channels == 1 else "RGB").resize(
            (width, height), Image.Resampling.BILINEAR)
        arr = np.asarray(resized)
    arr = arr.reshape(height, width, channels).transpose(2, 0, 1)  # (C, H, W)
    return arr.astype(np.float32).reshape(-1) / 127.5 - 1.0, kind
