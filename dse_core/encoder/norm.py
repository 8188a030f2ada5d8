"""Normalizations of the encoder's conv path, all called as ``norm(x, cond)``.

The StyleGAN and PGGAN encoders use instance norm (``cond`` ignored); the BigGAN
encoder replaces it with conditional batch norm driven by the class vector.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from dse_core.nn import EqualLinear


class EncoderNorm(nn.Module, ABC):
    """``forward(x, cond)``: NCHW features -> normalized features; ``cond`` is (N, cond_dim) or None."""

    @abstractmethod
    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor: ...


class InstanceNorm(EncoderNorm):
    """Per-sample, per-channel normalization without affine parameters (removes the style the heads read)."""

    def __init__(self, channels: int, eps: float = 1e-8):
        super().__init__()
        self.channels, self.eps = channels, eps

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return F.instance_norm(x, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


class ConditionalBatchNorm(EncoderNorm):
    """Batch norm whose scale ``1 + gamma(cond)`` and offset ``beta(cond)`` come from the condition vector."""

    def __init__(self, channels: int, cond_dim: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=eps, momentum=momentum, affine=False)
        self.gamma = EqualLinear(cond_dim, channels)
        self.beta = EqualLinear(cond_dim, channels)
        self.cond_dim = cond_dim

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None or cond.ndim != 2 or cond.shape != (x.shape[0], self.cond_dim):
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"ConditionalBatchNorm needs cond of shape ({x.shape[0]}, {self.cond_dim}), got {got}")
        scale = 1 + self.gamma(cond)
        return self.bn(x) * scale[:, :, None, None] + self.beta(cond)[:, :, None, None]


def make_norm(kind: str, channels: int, cond_dim: int = 0) -> EncoderNorm:
    if kind == "instance":
        return InstanceNorm(channels)
    if kind == "cbn":
        return ConditionalBatchNorm(channels, cond_dim)
    raise ValueError(f"unknown norm {kind!r}; expected 'instance' or 'cbn'")
