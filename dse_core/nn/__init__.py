"""Layers shared by the families and the encoder: equalized lr, FIR resampling."""

from .layers import EqualConv2d, EqualLinear, bias_act
from .resample import downsample2d, filter2d, setup_filter, upsample2d

__all__ = ["EqualConv2d", "EqualLinear", "bias_act", "downsample2d", "filter2d", "setup_filter", "upsample2d"]
