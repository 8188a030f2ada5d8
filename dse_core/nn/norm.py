"""Pixel norm (PGGAN, StyleGAN's z): each sample's vector scaled to unit second moment over its channels."""

from __future__ import annotations

import torch
from torch import nn


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x^2 over dim) + eps)``: NVlabs' name for pixel norm."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class PixelNorm(nn.Module):
    """:func:`normalize_2nd_moment` over the channels (dim 1) of (N, C) vectors or (N, C, H, W) maps."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_2nd_moment(x, 1, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
