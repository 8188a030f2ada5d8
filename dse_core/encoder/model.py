"""The DSE encoder E: image -> latents by name, the generator mirrored (paper Sec. III-C, Fig. 4)."""

from __future__ import annotations

import contextlib
from typing import ClassVar

import torch
from torch import nn

from ..models.pretrained import PretrainedMixin
from .block import BigSumBlock, DSEBlock, SumBlock
from .config import EncoderConfig
from .layers import FlatHead, FromRGB, init_weights


class Encoder(nn.Module, PretrainedMixin):
    """``E(x, c=None) -> {name: latent}``: FromRGB, then one block per resolution down to the final map (4x4).

    A conditional encoder (``c_dim``) reads c through its norms; with a class head it first predicts
    the class, then reads that (see :class:`EncoderConfig`); without one it ``needs_c``.

    The latents are named as the generator names them (``latent_shapes``): ``ws`` (N, num_ws,
    w_dim) in generator layer order (``ws[:, 0]`` feeds G's first layer) from the style heads,
    ``z`` (N, z_dim) from the linear head on the final map, ``c`` (N, num_classes) class
    probabilities from the class head. Blocks are named ``b{res}`` after their input size
    (``b256`` ... ``b4``); style vectors come out finest block first, and reversing them gives
    generator order, where the 4x4 block's second w is the generator's first.
    """

    kind: ClassVar[str] = "encoder"
    config_class: ClassVar[type] = EncoderConfig

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.family = config.family  # per instance: one Encoder class serves every family
        self.resolution, self.img_channels, self.c_dim = config.resolution, config.img_channels, config.c_dim
        self.latent_shapes = config.latent_shapes
        self.from_rgb = FromRGB(config.img_channels, config.channels[config.resolution])
        for res in reversed(config.resolutions):  # registered in the order they run
            setattr(self, f"b{res}", self._block(config, res))
        self.z_head = FlatHead(config.final_features, config.z_head) if config.z_head else None
        self.class_head = FlatHead(config.final_features, (config.num_classes,)) if config.num_classes else None
        init_weights(self, config.weight_init)

    @staticmethod
    def _block(config: EncoderConfig, res: int) -> DSEBlock | SumBlock | BigSumBlock:
        down = res > config.final_resolution
        if config.block == "sum":
            return SumBlock(config.channels[res], config.channels[res // 2] if down else config.channels[res],
                            down=down, noise=config.noise)
        if config.block == "big":
            return BigSumBlock(config.channels[res], config.channels[res // 2] if down else config.channels[res],
                               config.c_dim, down=down, noise=config.noise)
        return DSEBlock(
            config.channels[res], config.channels[res // 2] if down else config.channels[res], down=down,
            w_dim=config.w_dim, style_heads=config.num_ws > 0, noise=config.noise, norm=config.norm,
            c_dim=config.c_dim, downsample=config.downsample, residual_weight=config.residual_weight,
        )

    @property
    def needs_c(self) -> bool:
        """Whether forward needs the condition: a conditional encoder that predicts no class itself."""
        return self.c_dim > 0 and self.class_head is None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """x (N, img_channels, resolution, resolution); c (N, c_dim) the condition of a conditional encoder
        (optional with a class head: its prediction conditions it then)."""
        probs = None
        if self.class_head is not None and self.c_dim:  # predict the class, then condition on it (or on a given c)
            uniform = x.new_full((x.shape[0], self.c_dim), 1 / self.c_dim)
            with self._running_statistics():
                probs = self.class_head(self.features(x, uniform)[0]).softmax(dim=1)
            c = probs if c is None else c
        features, styles = self.features(x, c)
        latents = {}
        if styles:
            latents["ws"] = torch.stack(styles[::-1], dim=1)
        if self.z_head is not None:
            latents["z"] = self.z_head(features)
        if self.class_head is not None:
            latents["c"] = probs if probs is not None else self.class_head(features).softmax(dim=1)
        return latents

    @contextlib.contextmanager
    def _running_statistics(self):
        """Batch norms on their running statistics, not updating them: the class pass in training sees the features
        as inference will, whatever the batch holds (one class per batch would otherwise tell the head the class)."""
        norms = [m for m in self.modules() if isinstance(m, nn.BatchNorm2d) and m.training]
        for norm in norms:
            norm.eval()
        try:
            yield
        finally:
            for norm in norms:
                norm.train()

    def features(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(the final map z'_c, the counterpart of G's constant input; the style vectors, finest block first)."""
        self._check_inputs(x, c)
        x = self.from_rgb(x)
        styles: list[torch.Tensor] = []
        for res in reversed(self.config.resolutions):
            x, block_styles = getattr(self, f"b{res}")(x, c)
            styles.extend(block_styles)
        return x, styles

    def _check_inputs(self, x: torch.Tensor, c: torch.Tensor | None) -> None:
        want = (self.img_channels, self.resolution, self.resolution)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"encoder: x must be (N, {', '.join(map(str, want))}), got {tuple(x.shape)}")
        if self.c_dim and (c is None or tuple(c.shape) != (x.shape[0], self.c_dim)):
            got = None if c is None else tuple(c.shape)
            raise ValueError(f"encoder: c must be (N, {self.c_dim}) for this conditional encoder, got {got}")
