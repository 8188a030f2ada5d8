"""The PGGAN DSE encoder plan (paper Table I footnote): the generic block without style heads or noise, the final
4x4 map through one linear layer to z' (z_dim); Table I widths at 256/512/1024 px, the generator mirrored otherwise."""

from __future__ import annotations

from dse_core import EncoderConfig, encoder_widths

from .model import Generator, PGGANConfig


def encoder_plan(G: Generator | PGGANConfig) -> EncoderConfig:
    """The encoder that inverts ``G``: z' = linear(final 4x4 map), plus a class head for a conditional G."""
    cfg = G if isinstance(G, PGGANConfig) else G.config
    return EncoderConfig(family="pggan", resolution=cfg.resolution, channels=encoder_widths(cfg.resolution, cfg.channels),
                         img_channels=cfg.img_channels, num_ws=0, noise=False, z_head=(cfg.z_dim,), num_classes=cfg.c_dim)
