"""The StyleGAN2 DSE encoder plan: paper Table I for 256/512/1024 px, the generator mirrored otherwise."""

from __future__ import annotations

import math

from dse_core import EncoderConfig

from .model import Generator, StyleGAN2Config

# Table I: the finest block's width at each image size; widths double per block up to TABLE_I_MAX_CHANNELS.
TABLE_I_START_CHANNELS = {256: 64, 512: 32, 1024: 16}
TABLE_I_MAX_CHANNELS = 512


def table_i_channels(resolution: int) -> dict[int, int]:
    """Input width of each block, image size first: startf, 2 * startf, ... at most 512."""
    start = TABLE_I_START_CHANNELS[resolution]
    levels = int(math.log2(resolution)) - 1
    return {resolution >> i: min(TABLE_I_MAX_CHANNELS, start << i) for i in range(levels)}


def encoder_plan(G: Generator | StyleGAN2Config) -> EncoderConfig:
    """The encoder that inverts ``G``: 2 style heads per block emitting ``G.w_dim``-sized w, ``num_ws`` from G.

    At the paper's sizes the widths are Table I's; any other generator (e.g. the
    small demo models) gets the encoder block at each resolution as wide as G's
    layers there, so the encoder is G mirrored.
    """
    cfg = G if isinstance(G, StyleGAN2Config) else G.config
    if cfg.resolution in TABLE_I_START_CHANNELS:
        channels = table_i_channels(cfg.resolution)
    else:
        channels = {res: cfg.channels[res] for res in sorted(cfg.channels, reverse=True)}
    return EncoderConfig(family="stylegan2", resolution=cfg.resolution, channels=channels,
                         img_channels=cfg.img_channels, w_dim=cfg.w_dim, num_ws=cfg.num_ws)
