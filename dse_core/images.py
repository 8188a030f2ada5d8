"""Tensors to pictures: clamping, grids and PNG files."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .config import write_bytes_atomic


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """NCHW in [-1, 1] (clamped here) -> NHWC uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2,
              labels: Sequence[str | None] | None = None) -> torch.Tensor:
    """Tile NCHW images into one CHW image, ``nrow`` per row (default: a near-square grid).

    ``labels`` (one per image, None for none): a caption strip under every row, each image's label in white
    under it (PIL's default font, cut to the image's width).
    """
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    strip = caption_height() if labels is not None else 0
    cell = h + strip + padding
    grid = images.new_full((c, rows * cell + padding, nrow * (w + padding) + padding), -1.0)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * cell, padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i]
        if labels is not None and labels[i]:
            grid[:, top + h : top + h + strip, left : left + w] = caption(labels[i], w, strip).to(grid)
    return grid


@functools.cache
def _font():
    from PIL import ImageFont

    return ImageFont.load_default()


def caption_height() -> int:
    """Pixel height of one line of caption text (the default font's), plus a pixel above and below."""
    top, bottom = _font().getbbox("Ag")[1::2]
    return bottom - top + 2


def caption(text: str, width: int, height: int) -> torch.Tensor:
    """(height, width) white text on black in [-1, 1]. Text too wide loses its middle words first (``207 golden
    retriever (83%)`` -> ``207 (83%)``: a class's index and probability outlast its name), then its end."""
    from PIL import ImageDraw

    font = _font()
    words = text.split(" ")
    while len(words) > 2 and font.getlength(" ".join(words)) > width - 2:
        del words[-2]
    text = " ".join(words)
    while text and font.getlength(text) > width - 2:
        text = text[:-1]
    strip = Image.new("L", (width, height), 0)
    ImageDraw.Draw(strip).text((1, 1 - font.getbbox("Ag")[1]), text, fill=255, font=font)
    return torch.from_numpy(np.asarray(strip, dtype=np.float32)) / 127.5 - 1


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write one CHW image (or a grid) in [-1, 1] to PNG/JPEG/WebP, atomically."""
    import io

    path = Path(path)
    array = to_uint8(image.unsqueeze(0))[0]
    picture = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    picture.save(buffer, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    write_bytes_atomic(path, buffer.getvalue())
    return path
