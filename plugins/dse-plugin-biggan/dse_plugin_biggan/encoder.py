"""The DSE encoder of a BigGAN-deep generator (paper Table II), with a class head beyond the paper."""

from __future__ import annotations

from dse_core import EncoderConfig, encoder_widths

from .model import BigGANConfig, Generator

MAX_WIDTH = 512  # BigGAN-deep is 2048 wide at 4x4; Table I's encoders stop at 512


def widths_by_resolution(cfg: BigGANConfig) -> dict[int, int]:
    """The generator's width at each resolution: the input of the first block that works at that size."""
    widths, res = {}, 4
    for width, up in zip(cfg.channels, cfg.upsample):
        widths.setdefault(res, width)
        res *= 2 if up else 1
    widths.setdefault(res, cfg.channels[-1])
    return widths


def encoder_plan(G: Generator | BigGANConfig) -> EncoderConfig:
    """The encoder that inverts ``G``: the generic block with conditional batch norm, z' from linear layers on
    the final map (Table II), and a class head, so that a photo needs no class from the user.

    The norms read the class vector c, not the paper's [z, class embedding]: z is what the encoder
    predicts, and the class is what a user can give or the head can predict (it predicts first,
    then conditions on its prediction: :class:`dse_core.EncoderConfig`).
    """
    cfg = G if isinstance(G, BigGANConfig) else G.config
    widths = {res: min(MAX_WIDTH, w) for res, w in encoder_widths(cfg.resolution, widths_by_resolution(cfg)).items()}
    return EncoderConfig(family="biggan", resolution=cfg.resolution, channels=widths, img_channels=cfg.img_channels,
                         num_ws=0, noise=False, norm="cbn", c_dim=cfg.c_dim, condition="class", z_head=(cfg.z_dim,),
                         num_classes=cfg.c_dim)
