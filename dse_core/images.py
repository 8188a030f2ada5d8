"""Tensors to pictures: clamping, grids and PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config import write_bytes_atomic


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """NCHW in [-1, 1] (clamped here) -> NHWC uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """Tile NCHW images into one CHW image, ``nrow`` per row (default: a near-square grid)."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = images.new_full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), -1.0)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i]
    return grid


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
