"""The StyleGAN2 DSE encoder plan: paper Table I for 256/512/1024 px, the generator mirrored otherwise."""

from __future__ import annotations

from dse_core import EncoderConfig, style_encoder_plan

from .model import Generator, StyleGAN2Config


def encoder_plan(G: Generator | StyleGAN2Config) -> EncoderConfig:
    """The encoder that inverts ``G``: 2 style heads per block emitting ``G.w_dim``-sized w, ``num_ws`` from G."""
    cfg = G if isinstance(G, StyleGAN2Config) else G.config
    return style_encoder_plan("stylegan2", cfg.resolution, cfg.channels, cfg.img_channels, cfg.w_dim, cfg.num_ws)
