"""Normalizations of the encoder's conv path, all called as ``norm(x, c)``.

The StyleGAN and PGGAN encoders use instance norm (``c`` ignored); the BigGAN
encoder replaces it with conditional batch norm driven by the condition vector c
(the authors' BigGAN encoder: on fixed stored statistics).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import EqualLinear


class EncoderNorm(nn.Module, ABC):
    """``forward(x, c)``: NCHW features -> normalized features; ``c`` is (N, c_dim) or None."""

    @abstractmethod
    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor: ...


class InstanceNorm(EncoderNorm):
    """Per-sample, per-channel normalization without affine parameters (removes the style the heads read)."""

    def __init__(self, channels: int, eps: float = 1e-8):
        super().__init__()
        self.channels, self.eps = channels, eps

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return F.instance_norm(x, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


class ConditionalBatchNorm(EncoderNorm):
    """Batch norm whose scale ``1 + gamma(c)`` and offset ``beta(c)`` come from the condition vector."""

    def __init__(self, channels: int, c_dim: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=eps, momentum=momentum, affine=False)
        self.gamma = EqualLinear(c_dim, channels)
        self.beta = EqualLinear(c_dim, channels)
        self.c_dim = c_dim

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        _check_c(self, x, c)
        scale = 1 + self.gamma(c)
        return self.bn(x) * scale[:, :, None, None] + self.beta(c)[:, :, None, None]


class FrozenConditionalBatchNorm(EncoderNorm):
    """``(x - mean) / sqrt(var + eps) * (1 + scale(c)) + offset(c)`` on fixed statistics, train and eval alike.

    The authors' BigGAN encoder normalizes so (their ``BigGANBatchNorm``): its statistics are never
    updated, and it reads one row of them (the one truncation 0.4 selects), which ``mean`` / ``var``
    hold. ``scale`` / ``offset`` have no bias; a reader bakes their spectral norm into the weights.
    """

    def __init__(self, channels: int, c_dim: int, eps: float = 1e-12):
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("var", torch.ones(channels))
        self.scale = EqualLinear(c_dim, channels, bias=False)
        self.offset = EqualLinear(c_dim, channels, bias=False)
        self.c_dim, self.eps = c_dim, eps

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        _check_c(self, x, c)
        x = (x - self.mean[:, None, None]) / torch.sqrt(self.var[:, None, None] + self.eps)
        return x * (1 + self.scale(c))[:, :, None, None] + self.offset(c)[:, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.mean.shape[0]}, c_dim={self.c_dim}, eps={self.eps}"


def _check_c(norm: EncoderNorm, x: torch.Tensor, c: torch.Tensor | None) -> None:
    if c is None or c.ndim != 2 or c.shape != (x.shape[0], norm.c_dim):
        got = None if c is None else tuple(c.shape)
        raise ValueError(f"{type(norm).__name__} needs c of shape ({x.shape[0]}, {norm.c_dim}), got {got}")


def make_norm(kind: str, channels: int, c_dim: int = 0) -> EncoderNorm:
    if kind == "instance":
        return InstanceNorm(channels)
    if kind == "cbn":
        return ConditionalBatchNorm(channels, c_dim)
    if kind == "frozen_cbn":
        return FrozenConditionalBatchNorm(channels, c_dim)
    raise ValueError(f"unknown norm {kind!r}; expected 'instance', 'cbn' or 'frozen_cbn'")
