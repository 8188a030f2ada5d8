"""Layers the families and the encoder build on: equalized lr, FIR resampling, the upsampling conv's kernel, pixel
norm, the style mapping network."""

from .layers import LRELU_GAIN, EqualConv2d, EqualLinear, bias_act
from .mapping import MappingNetwork
from .norm import PixelNorm, normalize_2nd_moment
from .resample import downsample2d, filter2d, setup_filter, upsample2d, upsample_conv_kernel

__all__ = ["LRELU_GAIN", "EqualConv2d", "EqualLinear", "MappingNetwork", "PixelNorm", "bias_act", "downsample2d",
           "filter2d", "normalize_2nd_moment", "setup_filter", "upsample2d", "upsample_conv_kernel"]
