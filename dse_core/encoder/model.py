"""The DSE encoder E: image -> (w', z'_c[, z']), the generator mirrored (paper Sec. III-C, Fig. 4)."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import nn

from dse_core.hub import PretrainedMixin

from .block import DSEBlock
from .config import EncoderConfig, block_resolutions
from .layers import FromRGB, ZHead, init_weights


class EncoderOutput(NamedTuple):
    """What E predicts for a batch of N images."""

    w: torch.Tensor | None  # (N, num_ws, w_dim) in generator layer order (w[:, 0] feeds G's first layer); None without style heads
    zc: torch.Tensor  # (N, C, 4, 4): the final feature map z'_c, the counterpart of G's constant input (not fed to G)
    z: torch.Tensor | None  # (N, z_dim) from the final linear head; None without one


class Encoder(nn.Module, PretrainedMixin):
    """``E(x, cond=None) -> EncoderOutput``: FromRGB, then one :class:`DSEBlock` per resolution down to 4x4.

    Blocks are named ``b{res}`` after their input size (``b256`` ... ``b4``). Style
    vectors come out finest block first; reversing them gives generator order,
    where the 4x4 block's second w is the generator's first.
    """

    kind: ClassVar[str] = "encoder"
    config_class: ClassVar[type] = EncoderConfig

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.family = config.family  # per instance: one Encoder class serves every family
        self.resolution, self.img_channels, self.w_dim = config.resolution, config.img_channels, config.w_dim
        self.num_ws, self.z_dim, self.cond_dim = config.num_ws, config.z_dim, config.cond_dim
        self.resolutions = block_resolutions(config.resolution)
        self.from_rgb = FromRGB(config.img_channels, config.channels[config.resolution])
        for res in self.resolutions:
            setattr(self, f"b{res}", self._block(config, res))
        last = config.channels[4]
        self.z_head = ZHead(last * 16, config.z_head) if config.z_head else None
        init_weights(self, config.weight_init)

    @staticmethod
    def _block(config: EncoderConfig, res: int) -> DSEBlock:
        down = res > 4
        return DSEBlock(
            config.channels[res], config.channels[res // 2] if down else config.channels[res], down=down,
            w_dim=config.w_dim, style_heads=config.num_ws > 0, noise=config.noise, norm=config.norm,
            cond_dim=config.cond_dim, downsample=config.downsample, residual_weight=config.residual_weight,
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> EncoderOutput:
        """x (N, img_channels, resolution, resolution); cond (N, cond_dim) when the norm is conditional."""
        self._check_inputs(x, cond)
        x = self.from_rgb(x)
        styles: list[torch.Tensor] = []
        for res in self.resolutions:
            x, block_styles = getattr(self, f"b{res}")(x, cond)
            styles.extend(block_styles)
        w = torch.stack(styles[::-1], dim=1) if styles else None
        z = self.z_head(x) if self.z_head is not None else None
        return EncoderOutput(w=w, zc=x, z=z)

    def _check_inputs(self, x: torch.Tensor, cond: torch.Tensor | None) -> None:
        want = (self.img_channels, self.resolution, self.resolution)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"encoder: x must be (N, {', '.join(map(str, want))}), got {tuple(x.shape)}")
        if self.cond_dim and (cond is None or tuple(cond.shape) != (x.shape[0], self.cond_dim)):
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"encoder: cond must be (N, {self.cond_dim}) for this conditional encoder, got {got}")
