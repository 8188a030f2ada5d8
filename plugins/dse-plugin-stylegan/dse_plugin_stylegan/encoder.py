"""The StyleGAN DSE encoder plan: the StyleGAN2 plan (paper Table I, the generator mirrored otherwise) with
StyleGAN's layer count (num_ws = 2 per resolution, w_dim from G)."""

from __future__ import annotations

from dse_core import EncoderConfig, style_encoder_plan

from .model import Generator, StyleGANConfig


def encoder_plan(G: Generator | StyleGANConfig) -> EncoderConfig:
    """The encoder that inverts ``G``: 2 style heads per block emitting ``G.w_dim``-sized w, ``num_ws`` from G."""
    cfg = G if isinstance(G, StyleGANConfig) else G.config
    return style_encoder_plan("stylegan", cfg.resolution, cfg.channels, cfg.img_channels, cfg.w_dim, cfg.num_ws)
