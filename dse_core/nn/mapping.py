"""The style mapping network of StyleGAN and StyleGAN2: z (and a label c) -> w, broadcast to ws."""

from __future__ import annotations

import torch
from torch import nn

from ..interfaces import check_latents, truncate
from .layers import EqualLinear
from .norm import normalize_2nd_moment


class MappingNetwork(nn.Module):
    """``num_layers`` equalized-lr leaky-ReLU layers from pixel-normed z (and embedded c) to w; holds ``w_avg``.

    Sub-modules ``embed`` (when ``c_dim`` > 0) and ``fc0`` ... ``fc{num_layers - 1}``, and the ``w_avg``
    buffer, as NVlabs names them. ``forward`` returns ws (N, num_ws, w_dim) truncated towards ``w_avg``.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 hidden: int | None = None, lr_mul: float = 0.01, embed_features: int | None = None):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        hidden = hidden or w_dim  # the layers' width; None: w_dim
        embed = (embed_features or w_dim) if c_dim else 0  # label embedding size; None: w_dim
        features = [z_dim + embed] + [hidden] * (num_layers - 1) + [w_dim]
        if c_dim:
            self.embed = EqualLinear(c_dim, embed)
        for i in range(num_layers):
            setattr(self, f"fc{i}", EqualLinear(features[i], features[i + 1], lr_mul=lr_mul, act="lrelu"))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        """z (N, z_dim) -> ws (N, num_ws, w_dim), truncated towards ``w_avg`` on the first ``truncation_cutoff``."""
        check_latents("mapping", z, self.z_dim, c, self.c_dim)
        x = normalize_2nd_moment(z)
        if self.c_dim:
            x = torch.cat([x, normalize_2nd_moment(self.embed(c.to(x.dtype)))], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"
