"""The DSE blocks: the paper's (Fig. 5), two normalized 3x3 convs with a bypass and style heads, and the authors'
PGGAN and BigGAN variants, which sum their paths."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from torch import nn

from ..nn import EqualConv2d

from .layers import EncoderConv, StyleHead
from .norm import make_norm


class DSEBlock(nn.Module):
    """``norm0 -> conv0 -> norm1 -> conv1`` plus a bypass, mixed as ``(1 - r) * x + r * residual``.

    ``forward(x, c)`` returns the output features and the w vectors the block predicts, in
    forward order (``num_styles`` of them: two with style heads, none otherwise); ``c`` is the
    condition vector a conditional norm reads, None otherwise.

    Before each conv a style head reads the features (the inverse of the generator's
    AdaIN) and predicts one w vector, so a block with heads emits two, in forward
    order. ``conv1`` widens to ``out_channels`` and halves the size; the last (4x4)
    block has no ``conv1`` (its second w is read from the first conv's output) and
    keeps size and width. A 1x1 ``skip`` conv adapts the bypass when widths differ.
    """

    def __init__(self, in_channels: int, out_channels: int, *, down: bool = True, w_dim: int = 512,
                 style_heads: bool = True, noise: bool = True, norm: str = "instance", c_dim: int = 0,
                 downsample: str = "avgpool", residual_weight: float = 0.889):
        super().__init__()
        if not down and in_channels != out_channels:
            raise ValueError(f"a block that keeps its size must keep its width, got {in_channels} -> {out_channels}")
        self.in_channels, self.out_channels, self.down = in_channels, out_channels, down
        self.num_styles = 2 if style_heads else 0
        self.residual_weight = residual_weight
        self.downsample = downsample
        if style_heads:
            self.style0 = StyleHead(in_channels, w_dim)
            self.style1 = StyleHead(in_channels, w_dim)
        self.norm0 = make_norm(norm, in_channels, c_dim)
        self.conv0 = EncoderConv(in_channels, in_channels, noise=noise)
        self.norm1 = make_norm(norm, in_channels, c_dim)
        if down:
            self.conv1 = EncoderConv(in_channels, out_channels, down=downsample, noise=noise)
        if in_channels != out_channels:
            self.skip = EqualConv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        styles = []
        residual = x
        if self.num_styles:
            styles.append(self.style0(x))
        x = self.conv0(self.norm0(x, c))
        if self.num_styles:
            styles.append(self.style1(x))
        x = self.norm1(x, c)
        if self.down:
            x = self.conv1(x)
            residual = F.avg_pool2d(residual, 2)
        if self.in_channels != self.out_channels:
            residual = self.skip(residual)
        # under autocast the conv path may be fp16/bf16 while the pooled residual is not: lerp wants one dtype
        return torch.lerp(x, residual.to(x.dtype), self.residual_weight), styles

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, down={self.down}, num_styles={self.num_styles}"


class SumBlock(nn.Module):
    """The authors' PGGAN encoder block (``E_PG.py``): the paths summed, then one activation, then the pooling.

    ``norm0 -> conv0 -> lrelu; norm1 -> conv1; + bypass -> lrelu -> 2x2 average pool``, where the bypass
    is the input, or a 1x1 conv then an affine instance norm where the width changes. The last block
    (``down=False``) is its first conv only. No style heads; ``forward(x, c)`` returns (features, []).
    """

    num_styles = 0

    def __init__(self, in_channels: int, out_channels: int, *, down: bool = True, noise: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.down = in_channels, out_channels if down else in_channels, down
        self.norm0 = make_norm("instance", in_channels)
        self.conv0 = EncoderConv(in_channels, in_channels, noise=noise)
        if down:
            self.norm1 = make_norm("instance", in_channels)
            self.conv1 = EncoderConv(in_channels, out_channels, noise=noise, activate=False)
            if in_channels != out_channels:
                self.skip = EqualConv2d(in_channels, out_channels, 1)
                self.skip_norm = nn.InstanceNorm2d(out_channels, affine=True, eps=1e-8)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        residual = x
        x = self.conv0(self.norm0(x, c))
        if not self.down:
            return x, []
        x = self.conv1(self.norm1(x, c))
        if self.in_channels != self.out_channels:
            residual = self.skip_norm(self.skip(residual))
        return F.avg_pool2d(F.leaky_relu_(x + residual, 0.2), 2), []

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, down={self.down}"


class BigSumBlock(nn.Module):
    """The authors' BigGAN encoder block (``E_BIG.py``): conditional norms, paths summed with no activation after.

    ``norm0 -> conv0 -> lrelu; norm1 -> conv1 -> lrelu; + bypass -> 2x2 average pool``, every norm a
    ``frozen_cbn`` on c. Where the width changes the bypass is ``skip(skip_norm(x))`` (1x1 conv) and the
    conv path gets a second lrelu, as the authors' code has it; else the bypass is the input. The last
    block (``down=False``) is its first conv only. No style heads; ``forward(x, c)`` returns (features, []).
    """

    num_styles = 0

    def __init__(self, in_channels: int, out_channels: int, c_dim: int, *, down: bool = True, noise: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.down = in_channels, out_channels if down else in_channels, down
        self.norm0 = make_norm("frozen_cbn", in_channels, c_dim)
        self.conv0 = EncoderConv(in_channels, in_channels, noise=noise)
        if down:
            self.norm1 = make_norm("frozen_cbn", in_channels, c_dim)
            self.conv1 = EncoderConv(in_channels, out_channels, noise=noise)
            if in_channels != out_channels:
                self.skip_norm = make_norm("frozen_cbn", in_channels, c_dim)
                self.skip = EqualConv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        residual = x
        x = self.conv0(self.norm0(x, c))
        if not self.down:
            return x, []
        x = self.conv1(self.norm1(x, c))
        if self.in_channels != self.out_channels:
            residual = self.skip(self.skip_norm(residual, c))
            x = F.leaky_relu(x, 0.2)
        return F.avg_pool2d(x + residual, 2), []

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, down={self.down}"
