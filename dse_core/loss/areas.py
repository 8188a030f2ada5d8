"""Three-scale areas (Sec. III-B): the image areas AT1 and AT2 compared besides the whole image.

For centre-aligned images (faces) the areas are fixed boxes around the centre;
another :class:`~dse_core.interfaces.Attention` (e.g. Grad-CAM for misaligned
images) can be passed to :class:`~dse_core.loss.DSELoss` instead.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..interfaces import Attention


def crop_box(height: int, width: int, fraction: tuple[float, float]) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` left after cutting ``fraction`` of (height, width) off each side.

    Rounded down, so for power-of-two sizes AT2's 5/32 equals the code's ``H//8 + H//32``.
    """
    dy = math.floor(height * fraction[0] + 1e-9)
    dx = math.floor(width * fraction[1] + 1e-9)
    return dy, height - dy, dx, width - dx


class CentreCrops(Attention):
    """AT1, AT2, ... as centred boxes, one per ``(height, width)`` cut fraction."""

    def __init__(self, crops: Sequence[tuple[float, float]]):
        self.crops = tuple(tuple(c) for c in crops)

    def areas(self, x: torch.Tensor, x_rec: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        height, width = x.shape[-2:]
        pairs = []
        for fraction in self.crops:
            top, bottom, left, right = crop_box(height, width, fraction)
            pairs.append((x[..., top:bottom, left:right], x_rec[..., top:bottom, left:right]))
        return pairs

    def __repr__(self) -> str:
        return f"CentreCrops(crops={self.crops})"


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of an area back to the full image size (Sec. III-D)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def pool_to(x: torch.Tensor, max_size: int | None) -> torch.Tensor:
    """Average-pool by 2 while the height exceeds ``max_size``, as the code does before SSIM and LPIPS."""
    while max_size is not None and x.shape[-2] > max_size:
        x = F.avg_pool2d(x, 2)
    return x
