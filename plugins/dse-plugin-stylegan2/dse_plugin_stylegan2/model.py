"""StyleGAN2 generator (Karras et al. 2020, config F, skip architecture), pure PyTorch.

Module and tensor names follow the architecture: ``mapping.fc{i}``,
``synthesis.b{res}.conv0`` (the upsampling conv), ``.conv1``, ``.torgb``. Weights use
the TensorFlow/NVlabs layout and equalized-lr storage, so checkpoints of every
popular implementation map onto this one by renaming (see ``convert.py``).

Speed: modulation scales activations instead of building per-sample weights, so
each layer is one ordinary batched convolution (no grouped conv), and resampling
uses separable FIR filters (``dse_core.nn.resample``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from dse_core import PretrainedMixin, StyleGenerator, channel_plan, check_noise_mode, check_ws, power_of_two, resolutions
from dse_core.nn import LRELU_GAIN, EqualLinear, MappingNetwork, filter2d, setup_filter, upsample2d


@attrs.frozen(hash=False)
class StyleGAN2Config:
    """Architecture of a StyleGAN2 generator; every field is read from checkpoints when converting."""

    resolution: int = attrs.field(validator=power_of_two)  # output image size (img_resolution)
    channels: dict[int, int] = attrs.field(validator=channel_plan)  # feature maps at each resolution 4..resolution
    z_dim: int = 512  # input latent size
    w_dim: int = 512  # intermediate latent size
    c_dim: int = 0  # conditioning label size, 0 = unconditional
    mapping_layers: int = 8  # fully connected layers in the mapping network
    mapping_features: int | None = None  # their hidden width; None = w_dim
    mapping_lr_mul: float = 0.01  # learning-rate multiplier of the mapping network (stored-weight scale)
    embed_features: int | None = None  # label embedding size when c_dim > 0; None = w_dim
    img_channels: int = 3
    resample_filter: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)  # low-pass filter of the upsampling convs (any length)
    # low-pass filter of the image (skip) upsampling; None = resample_filter, as NVlabs. rosinality and genforce
    # always use (1, 3, 3, 1) there, whatever their conv filter is.
    skip_filter: tuple[float, ...] | None = None
    conv_clamp: float | None = None  # clamp conv outputs to ±conv_clamp (NVlabs uses 256); None = off

    @classmethod
    def standard(cls, resolution: int, channel_multiplier: int = 2, channel_max: int = 512, **kwargs) -> "StyleGAN2Config":
        """The official channel plan (config F: channel_multiplier=2, i.e. 16384 * 2 / res, at most 512)."""
        channels = {res: min(channel_max, (16384 * channel_multiplier) // res) for res in resolutions(resolution)}
        return cls(resolution=resolution, channels=channels, **kwargs)

    @property
    def num_ws(self) -> int:
        return 2 * int(math.log2(self.resolution)) - 2


def up_conv_padding(filter_size: int, kernel_size: int) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) padding of the low-pass filter after a stride-2 transposed conv: output exactly 2x the input.

    The transposed conv gives 2H + kernel_size - 2 pixels and the filter takes filter_size - 1 away, for a filter
    of any length: (1, 3, 3, 1) pads 1 on each side, (1, 2, 1) pads 1 before and 0 after. The same split as
    NVlabs' conv2d_resample, rosinality's Blur and genforce's UpsamplingLayer.
    """
    before = (filter_size + 1) // 2 - kernel_size + kernel_size // 2 + 1
    after = (filter_size - 2) // 2 - kernel_size + kernel_size // 2 + 2
    return before, after, before, after


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     up: bool = False, resample_filter: torch.Tensor | None = None,
                     gain: float = 1.0, add: torch.Tensor | None = None) -> torch.Tensor:
    """Modulated (and demodulated) convolution, computed by scaling activations.

    Equal to convolving each sample with ``weight * styles[n]`` normalized per output
    channel, but runs as one shared-weight convolution. ``up`` upsamples 2x with a
    transposed convolution followed by the low-pass filter. Returns
    ``gain * conv + add`` in one pass (``add`` broadcasts: noise and bias).
    """
    n = x.shape[0]
    x = x * styles.reshape(n, -1, 1, 1)
    if up:
        # TF-layout weights: upsampling correlates the zero-inserted input with W.
        x = F.conv_transpose2d(x, weight.transpose(0, 1).flip(2, 3), stride=2)
        x = filter2d(x, resample_filter, padding=up_conv_padding(resample_filter.numel(), weight.shape[-1]), gain=4)
    else:
        x = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
    scale = x.new_full((n, 1), gain)
    if demodulate:
        # sum over (i, kh, kw) of (W[o,i] * s[n,i])^2 = s^2 @ sum_k W^2
        scale = scale * (styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()
    scale = scale.expand(n, x.shape[1]).reshape(n, -1, 1, 1)
    return x * scale if add is None else torch.addcmul(add, x, scale)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling) + noise + bias + leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool,
                 resample_filter: torch.Tensor, conv_clamp: float | None):
        super().__init__()
        self.resolution, self.up, self.conv_clamp = resolution, up, conv_clamp
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.weight_gain = 1 / math.sqrt(in_channels * 9)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("resample_filter", resample_filter, persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        # lrelu(y) * g == lrelu(y * g) for g > 0: scale noise and bias by the gain and add them in the conv's epilogue.
        # The noise + bias map is built channels-last ((..., H, W, C) viewed as (..., C, H, W)): the epilogue's output
        # takes the layout of this first operand, and an NCHW one turns every later layer NCHW (G 1.2x slower on CPU).
        add = self.bias * LRELU_GAIN
        r = self.resolution
        if noise_mode == "const":
            add = (self.noise_const.unsqueeze(-1) * (self.noise_strength * LRELU_GAIN) + add).permute(2, 0, 1)
        elif noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, r, r, device=x.device, dtype=x.dtype).view(x.shape[0], r, r, 1)
            add = (noise * (self.noise_strength * LRELU_GAIN) + add).permute(0, 3, 1, 2)
        else:
            add = add.view(-1, 1, 1)
        x = modulated_conv2d(x, self.weight * self.weight_gain, self.affine(w), up=self.up,
                             resample_filter=self.resample_filter, gain=LRELU_GAIN, add=add)
        x = F.leaky_relu_(x, 0.2)  # in place on a fresh tensor: safe under autograd
        return x if self.conv_clamp is None else x.clamp(-self.conv_clamp, self.conv_clamp)

    def extra_repr(self) -> str:
        o, i = self.weight.shape[:2]
        return f"{i}, {o}, resolution={self.resolution}, up={self.up}"


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels, no demodulation."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int, conv_clamp: float | None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.weight_gain = 1 / math.sqrt(in_channels)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight * self.weight_gain, self.affine(w), demodulate=False,
                             add=self.bias.view(-1, 1, 1))
        return x if self.conv_clamp is None else x.clamp(-self.conv_clamp, self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: (const | upsampling conv0) -> conv1 -> toRGB added to the upsampled image."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, cfg: StyleGAN2Config,
                 resample_filter: torch.Tensor, skip_filter: torch.Tensor):
        super().__init__()
        self.resolution = resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, cfg.w_dim, resolution, True, resample_filter, cfg.conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, cfg.w_dim, resolution, False, resample_filter, cfg.conv_clamp)
        self.torgb = ToRGB(out_channels, cfg.img_channels, cfg.w_dim, cfg.conv_clamp)
        self.register_buffer("skip_filter", skip_filter, persistent=False)
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str):
        """``ws`` holds this block's num_conv + 1 vectors; the last is shared with the next block's conv0."""
        if x is None:
            # channels-last lets oneDNN vectorize convs and the depthwise blur across channels (~1.3x on CPU)
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1).contiguous(memory_format=torch.channels_last)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        y = self.torgb(x, ws[:, self.num_conv])
        img = y if img is None else upsample2d(img, self.skip_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, cfg: StyleGAN2Config):
        super().__init__()
        f = setup_filter(cfg.resample_filter)
        f_skip = f if cfg.skip_filter is None else setup_filter(cfg.skip_filter)
        self.resolutions = resolutions(cfg.resolution)
        for res in self.resolutions:
            in_channels = cfg.channels[res // 2] if res > 4 else 0
            setattr(self, f"b{res}", SynthesisBlock(in_channels, cfg.channels[res], res, cfg, f, f_skip))
        self.num_ws, self.w_dim = cfg.num_ws, cfg.w_dim

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """ws (N, num_ws, w_dim) -> images (N, img_channels, resolution, resolution)."""
        check_ws("synthesis", ws, self.num_ws, self.w_dim)
        check_noise_mode(noise_mode)
        x = img = None
        i = 0
        for res in self.resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, i : i + block.num_conv + 1], noise_mode)
            i += block.num_conv
        return img


class Generator(StyleGenerator, PretrainedMixin):
    """StyleGAN2 generator: ``G(z) = synthesis(mapping(z))``, images NCHW in about [-1, 1]."""

    family: ClassVar[str] = "stylegan2"
    kind: ClassVar[str] = "generator"
    config_class: ClassVar[type] = StyleGAN2Config

    def __init__(self, config: StyleGAN2Config):
        super().__init__()
        self.config = config
        self.resolution, self.z_dim, self.w_dim, self.c_dim = config.resolution, config.z_dim, config.w_dim, config.c_dim
        self.num_ws, self.img_channels = config.num_ws, config.img_channels
        self.mapping = MappingNetwork(config.z_dim, config.c_dim, config.w_dim, config.num_ws, config.mapping_layers,
                                      config.mapping_features, config.mapping_lr_mul, config.embed_features)
        self.synthesis = SynthesisNetwork(config)

    def style_weights(self, layers=None) -> torch.Tensor:
        """(M, w_dim): the effective weights of every affine reading ``ws[:, i]``, i in ``layers`` (all when None):
        the convs' and the toRGBs' (each toRGB shares its w with the next block's conv0), in synthesis order."""
        chosen = set(range(self.num_ws) if layers is None else layers)
        affines, i = [], 0
        for res in self.synthesis.resolutions:
            block = getattr(self.synthesis, f"b{res}")
            convs = [block.conv1] if block.num_conv == 1 else [block.conv0, block.conv1]
            affines += [(i + k, conv.affine) for k, conv in enumerate(convs)]
            affines.append((i + block.num_conv, block.torgb.affine))
            i += block.num_conv
        return torch.cat([a.weight * a.weight_gain for j, a in affines if j in chosen]).detach()
