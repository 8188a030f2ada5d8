"""StyleGAN generator (Karras et al. 2019, "A Style-Based Generator Architecture"), pure PyTorch.

Names follow the architecture: ``mapping.fc{i}`` (the core's MappingNetwork, shared with StyleGAN2),
``synthesis.b{res}.const`` (4x4 only), ``synthesis.b{res}.conv0`` (the upsampling conv; at 4x4 the const's
noise/bias/style layer, which has no conv), ``.conv1``, and one ``synthesis.torgb`` at full resolution (no
progressive-growing heads at inference). Weights use equalized-lr storage (N(0, 1), scaled at run time), so
genforce's and the official tensors load as they are and the DSE authors' by one division (``convert.py``).

Every layer: [2x upsampling 3x3 conv + blur] -> + noise -> + bias -> lrelu 0.2 -> instance norm -> AdaIN
``x * scale + shift``, with ``(scale, shift) = affine(w)`` (the official ``1 + style`` is folded into the
affine bias, as the StyleGAN2 plugin folds it).

Speed: a nearest 2x upscale followed by a 3x3 conv is exactly a stride-2 transposed conv with the flipped
kernel summed over its four 2x2 shifts (the official "fused" conv is the same op without the flip), which is
1.2-2.7x faster on CPU for large maps, so upsampling layers from 64 px on run as one transposed conv; maps are
channels-last, and instance norm and the style are applied in one ``addcmul``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from dse_core import PretrainedMixin, StyleGenerator, channel_plan, check_noise_mode, check_ws, power_of_two, resolutions
from dse_core.nn import LRELU_GAIN, EqualLinear, MappingNetwork, filter2d, setup_filter, upsample_conv_kernel

INSTANCE_NORM_EPS = 1e-8
# unfused upsampling layers at >= this size run as the equivalent transposed conv (faster on large maps; below it,
# building the 4x4 kernel costs more than nearest 2x + 3x3 conv saves)
TRANSPOSED_FROM = 64


def _odd_filter(_, attribute, value: tuple[float, ...]) -> None:
    if len(value) % 2 == 0 or not value:
        raise ValueError(f"{attribute.name} must have an odd length (a blur keeping the size), got {value}")


def _cutoff(_, attribute, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name} must be None (all layers) or >= 1, got {value}")


@attrs.frozen(hash=False)
class StyleGANConfig:
    """Architecture of a StyleGAN generator; every field is read from checkpoints when converting."""

    resolution: int = attrs.field(validator=power_of_two)  # output image size
    channels: dict[int, int] = attrs.field(validator=channel_plan)  # feature maps at each resolution 4..resolution
    z_dim: int = 512  # input latent size
    w_dim: int = 512  # intermediate latent size
    mapping_layers: int = 8  # fully connected layers in the mapping network
    mapping_features: int | None = None  # their hidden width; None = w_dim
    mapping_lr_mul: float = 0.01  # learning-rate multiplier of the mapping network (stored-weight scale)
    img_channels: int = 3
    # blocks at >= this size upsample with the official "fused" transposed conv, smaller ones with nearest 2x + 3x3
    # conv (kernels of the two differ by a flip); None = never fused. Official StyleGAN, genforce and the DSE authors: 128.
    fused_up_resolution: int | None = 128
    blur_filter: tuple[float, ...] = attrs.field(default=(1.0, 2.0, 1.0), validator=_odd_filter)  # after each up-conv
    # truncation target: one w_avg (w_dim,) or one per layer (num_ws, w_dim), the DSE authors' centre tensor
    w_avg_per_layer: bool = False
    # layers truncated when the caller gives no cutoff: official StyleGAN 8, the DSE authors num_ws // 2; None = all
    truncation_cutoff: int | None = attrs.field(default=8, validator=_cutoff)
    final_tanh: bool = False  # tanh on the images (genforce's final_tanh); official and the DSE authors: raw outputs

    @classmethod
    def standard(cls, resolution: int, channel_max: int = 512, **kwargs) -> "StyleGANConfig":
        """The official channel plan: 16384 / res feature maps, at most ``channel_max``."""
        channels = {res: min(channel_max, 16384 // res) for res in resolutions(resolution)}
        return cls(resolution=resolution, channels=channels, **kwargs)

    @property
    def num_ws(self) -> int:
        return 2 * int(math.log2(self.resolution)) - 2


def up_kernel(weight: torch.Tensor, fused: bool) -> torch.Tensor:
    """The stride-2 transposed-conv kernel of a 2x upsampling layer: official "fused", or nearest 2x + conv."""
    return upsample_conv_kernel(weight, flip=not fused)


class SynthesisLayer(nn.Module):
    """[2x up 3x3 conv + blur | 3x3 conv | nothing: the const] -> noise -> bias -> lrelu -> instance norm -> style."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False,
                 fused: bool = False, blur_filter: torch.Tensor | None = None):
        super().__init__()
        self.resolution, self.up, self.fused = resolution, up, fused
        if in_channels:  # 0: the 4x4 block's first layer, applied to the const
            self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
            self.weight_gain = LRELU_GAIN / math.sqrt(in_channels * 9)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros(out_channels))  # per channel, as StyleGAN (not StyleGAN2)
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.affine = EqualLinear(w_dim, 2 * out_channels)  # w -> (scale, shift) of the instance-normed maps
        with torch.no_grad():
            self.affine.bias[:out_channels] = 1.0
        if up:
            self.register_buffer("blur_filter", blur_filter, persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        if self.up and not self.fused and self.resolution < TRANSPOSED_FROM:
            x = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), self.weight * self.weight_gain, padding=1)
        elif self.up:
            x = F.conv_transpose2d(x, up_kernel(self.weight * self.weight_gain, self.fused), stride=2, padding=1)
        if self.up:
            pad = (self.blur_filter.numel() - 1) // 2
            x = filter2d(x, self.blur_filter, padding=(pad, pad, pad, pad))
        elif hasattr(self, "weight"):
            x = F.conv2d(x, self.weight * self.weight_gain, padding=1)
        # noise + bias built channels-last ((..., H, W, C) viewed as (..., C, H, W)), as x is: a sum with an NCHW
        # operand would come out NCHW and slow every later layer
        c = self.bias.numel()
        if noise_mode == "const":
            add = torch.addcmul(self.bias, self.noise_const.unsqueeze(-1), self.noise_strength).permute(2, 0, 1)
        elif noise_mode == "random":
            noise = torch.randn(x.shape[0], *x.shape[2:], 1, device=x.device, dtype=x.dtype)
            add = torch.addcmul(self.bias, noise, self.noise_strength).permute(0, 3, 1, 2)
        else:
            add = self.bias.view(c, 1, 1)
        x = F.leaky_relu_(x + add, 0.2)  # in place on a fresh tensor: safe under autograd
        # instance norm, then the style: (x - mean) * (scale * rstd) + shift. Means over channels-last maps are fast
        # where var_mean is 3x slower than these few passes
        x = x - x.mean(dim=(2, 3), keepdim=True)
        rstd = (x.square().mean(dim=(2, 3), keepdim=True) + INSTANCE_NORM_EPS).rsqrt()
        style = self.affine(w).view(-1, 2, c, 1, 1)
        return torch.addcmul(style[:, 1], x, style[:, 0] * rstd)

    def extra_repr(self) -> str:
        if not hasattr(self, "weight"):
            return f"const, {self.bias.numel()}, resolution={self.resolution}"
        o, i = self.weight.shape[:2]
        return f"{i}, {o}, resolution={self.resolution}, up={self.up}, fused={self.fused}"


class ToRGB(nn.Module):
    """1x1 conv to image channels (gain 1, no style: StyleGAN's ToRGB is not modulated)."""

    def __init__(self, in_channels: int, img_channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.weight_gain = 1 / math.sqrt(in_channels)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.weight_gain, self.bias)


class SynthesisBlock(nn.Module):
    """One resolution: (const | 2x upsampling conv0) -> conv1; takes two ws."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, cfg: StyleGANConfig,
                 blur_filter: torch.Tensor):
        super().__init__()
        self.resolution = resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.ones(out_channels, 4, 4))
        fused = cfg.fused_up_resolution is not None and resolution >= cfg.fused_up_resolution
        self.conv0 = SynthesisLayer(in_channels, out_channels, cfg.w_dim, resolution, up=in_channels > 0, fused=fused,
                                    blur_filter=blur_filter)
        self.conv1 = SynthesisLayer(out_channels, out_channels, cfg.w_dim, resolution)

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise_mode: str) -> torch.Tensor:
        if x is None:
            # channels-last lets oneDNN vectorize the convs and the depthwise blur across channels (~1.5x on CPU)
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1).contiguous(memory_format=torch.channels_last)
        x = self.conv0(x, ws[:, 0], noise_mode)
        return self.conv1(x, ws[:, 1], noise_mode)


class SynthesisNetwork(nn.Module):
    def __init__(self, cfg: StyleGANConfig):
        super().__init__()
        blur = setup_filter(cfg.blur_filter)
        self.resolutions = resolutions(cfg.resolution)
        for res in self.resolutions:
            in_channels = cfg.channels[res // 2] if res > 4 else 0
            setattr(self, f"b{res}", SynthesisBlock(in_channels, cfg.channels[res], res, cfg, blur))
        self.torgb = ToRGB(cfg.channels[cfg.resolution], cfg.img_channels)
        self.num_ws, self.w_dim, self.final_tanh = cfg.num_ws, cfg.w_dim, cfg.final_tanh

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """ws (N, num_ws, w_dim) -> images (N, img_channels, resolution, resolution); block i takes ws[:, 2i:2i+2]."""
        check_ws("synthesis", ws, self.num_ws, self.w_dim)
        check_noise_mode(noise_mode)
        x = None
        for i, res in enumerate(self.resolutions):
            x = getattr(self, f"b{res}")(x, ws[:, 2 * i : 2 * i + 2], noise_mode)
        img = self.torgb(x)
        return torch.tanh(img) if self.final_tanh else img


class StyleMappingNetwork(MappingNetwork):
    """The core's mapping network with StyleGAN's truncation defaults: ``truncation_cutoff=None`` means the config's.

    ``w_avg`` is (w_dim,), or (num_ws, w_dim) with ``w_avg_per_layer`` (each layer moves towards its own row).
    """

    def __init__(self, cfg: StyleGANConfig):
        super().__init__(cfg.z_dim, 0, cfg.w_dim, cfg.num_ws, cfg.mapping_layers, cfg.mapping_features, cfg.mapping_lr_mul)
        self.default_cutoff = cfg.truncation_cutoff
        if cfg.w_avg_per_layer:
            self.w_avg = torch.zeros(cfg.num_ws, cfg.w_dim)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        cutoff = self.default_cutoff if truncation_cutoff is None else truncation_cutoff
        return super().forward(z, c, truncation_psi, None if cutoff is None or cutoff >= self.num_ws else cutoff)


class Generator(StyleGenerator, PretrainedMixin):
    """StyleGAN generator: ``G(z) = synthesis(mapping(z))``, images NCHW in about [-1, 1]."""

    family: ClassVar[str] = "stylegan"
    kind: ClassVar[str] = "generator"
    config_class: ClassVar[type] = StyleGANConfig

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        self.config = config
        self.resolution, self.z_dim, self.w_dim, self.c_dim = config.resolution, config.z_dim, config.w_dim, 0
        self.num_ws, self.img_channels = config.num_ws, config.img_channels
        self.mapping = StyleMappingNetwork(config)
        self.synthesis = SynthesisNetwork(config)

    def style_weights(self, layers=None) -> torch.Tensor:
        """(M, w_dim): the effective weights of the AdaIN affines (scale and shift rows) reading ``ws[:, i]``, i in
        ``layers`` (all when None); block b reads ws 2b (conv0) and 2b + 1 (conv1)."""
        chosen = set(range(self.num_ws) if layers is None else layers)
        blocks = [getattr(self.synthesis, f"b{res}") for res in self.synthesis.resolutions]
        convs = [conv for block in blocks for conv in (block.conv0, block.conv1)]
        return torch.cat([c.affine.weight * c.affine.weight_gain for i, c in enumerate(convs) if i in chosen]).detach()
