"""Encoder plans shared by families: the paper's Table I widths, and the plan of the style-based generators."""

from __future__ import annotations

import math
from typing import Mapping

from .config import EncoderConfig

# Table I: the finest block's width at each image size; widths double per block up to TABLE_I_MAX_CHANNELS.
TABLE_I_START_CHANNELS = {256: 64, 512: 32, 1024: 16}
TABLE_I_MAX_CHANNELS = 512


def table_i_channels(resolution: int) -> dict[int, int]:
    """Input width of each block, image size first: startf, 2 * startf, ... at most 512."""
    start = TABLE_I_START_CHANNELS[resolution]
    levels = int(math.log2(resolution)) - 1
    return {resolution >> i: min(TABLE_I_MAX_CHANNELS, start << i) for i in range(levels)}


def encoder_widths(resolution: int, channels: Mapping[int, int]) -> dict[int, int]:
    """The encoder's block widths, image size first: Table I's at 256, 512 and 1024 px, else the generator mirrored.

    Mirrored: the encoder block at each resolution as wide as the generator's ``channels`` there (the small
    demo models, other sizes).
    """
    if resolution in TABLE_I_START_CHANNELS:
        return table_i_channels(resolution)
    return {res: channels[res] for res in sorted(channels, reverse=True)}


def style_encoder_plan(family: str, resolution: int, channels: Mapping[int, int], img_channels: int, w_dim: int,
                       num_ws: int) -> EncoderConfig:
    """The DSE encoder of a style-based generator (StyleGAN, StyleGAN2): 2 style heads per block emitting w_dim-sized w,
    widths from :func:`encoder_widths`."""
    return EncoderConfig(family=family, resolution=resolution, channels=encoder_widths(resolution, channels),
                         img_channels=img_channels, w_dim=w_dim, num_ws=num_ws)
