"""Progressive GAN generator (Karras et al. 2018) at its full resolution, pure PyTorch.

z is pixel-normed (and a class vector c appended), a dense layer makes the 4x4 start,
then each resolution doubles the map (nearest 2x) and runs two 3x3 convs; every layer
is equalized lr -> bias -> leaky ReLU 0.2 -> pixel norm; the last map goes through
one 1x1 to-RGB. A finished generator has no fade-in: only the last to-RGB is used.

Module and tensor names follow the architecture: ``b4.dense``, ``b4.conv``,
``b{res}.conv0`` (the upsampling conv), ``b{res}.conv1``, ``torgb``. Weights are
stored N(0, 1) with He's gain applied at run time, as official PGGAN and genforce
(dense sqrt(2)/4, convs sqrt(2), to-RGB 1), so genforce's tensors load by renaming.

Speed: nearest 2x upsampling followed by a 3x3 conv equals one stride-2 transposed
conv with a 4x4 kernel built from the 3x3 one, which does 2.25x fewer multiply-adds
and never materializes the upsampled map; maps are kept channels-last (oneDNN's
fast path on the CPU).
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from dse_core import Generator as GeneratorBase
from dse_core import PretrainedMixin, channel_plan, check_latents, check_noise_mode, power_of_two, resolutions
from dse_core.nn import LRELU_GAIN, EqualConv2d, EqualLinear, normalize_2nd_moment, upsample_conv_kernel

PIXEL_NORM_EPS = 1e-8


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """Pixel norm over the channels; in place when no gradient flows (sampling: 2x faster on the CPU than fresh
    full-size tensors per layer), :func:`normalize_2nd_moment` otherwise."""
    if x.requires_grad and torch.is_grad_enabled():
        return normalize_2nd_moment(x, 1, PIXEL_NORM_EPS)
    mean_square = torch.linalg.vector_norm(x, dim=1, keepdim=True).square_().div_(x.shape[1])
    return x.mul_(mean_square.add_(PIXEL_NORM_EPS).rsqrt_())


@attrs.frozen(hash=False)
class PGGANConfig:
    """Architecture of a progressive GAN generator; every field is read from checkpoints when converting."""

    resolution: int = attrs.field(validator=power_of_two)  # output image size
    channels: dict[int, int] = attrs.field(validator=channel_plan)  # feature maps at each resolution 4..resolution
    z_dim: int = 512  # input latent size
    c_dim: int = 0  # class vector size (appended to the pixel-normed z), 0 = unconditional
    img_channels: int = 3
    final_tanh: bool = False  # tanh on the images (genforce's final_tanh, the zoo's MSE / DCGAN losses); official: raw
    lrelu_slope: float = 0.2  # negative slope of every leaky ReLU

    @classmethod
    def standard(cls, resolution: int, fmaps_base: int = 16384, fmaps_max: int = 512, **kwargs) -> "PGGANConfig":
        """The official channel plan: min(fmaps_base / res, fmaps_max) (512 up to 32 px, halving after)."""
        channels = {res: min(fmaps_base // res, fmaps_max) for res in resolutions(resolution)}
        return cls(resolution=resolution, channels=channels, **kwargs)


class DenseStart(EqualLinear):
    """The 4x4 start: pixel-normed [z, c] -> dense -> bias -> leaky ReLU -> pixel norm, reshaped to (N, C, 4, 4).

    Outputs are channel-major (``c * 16 + y * 4 + x``); the bias is per output (one per channel and position).
    """

    def __init__(self, in_features: int, channels: int, slope: float):
        super().__init__(in_features, channels * 16)
        self.weight_gain = LRELU_GAIN / 4 / math.sqrt(in_features)  # official PGGAN: gain sqrt(2)/4 for the dense start
        self.channels, self.slope = channels, slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(super().forward(normalize_2nd_moment(x)), self.slope)
        x = x.view(-1, self.channels, 4, 4)
        return normalize_2nd_moment(x).contiguous(memory_format=torch.channels_last)


class ConvLayer(EqualConv2d):
    """3x3 conv (optionally after nearest 2x upsampling) -> bias -> leaky ReLU -> pixel norm; He gain sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, up: bool, slope: float):
        super().__init__(in_channels, out_channels, 3, padding=1)
        self.weight_gain *= LRELU_GAIN
        self.up, self.slope = up, slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.weight_gain
        if self.up:
            x = F.conv_transpose2d(x, upsample_conv_kernel(weight), self.bias, stride=2, padding=1)
        else:
            x = F.conv2d(x, weight, self.bias, padding=1)
        return pixel_norm(F.leaky_relu_(x, self.slope))  # in place on a fresh tensor: safe under autograd

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, up={self.up}"


class ToRGB(EqualConv2d):
    """1x1 conv to image channels (gain 1), then tanh if ``final_tanh``."""

    def __init__(self, in_channels: int, img_channels: int, final_tanh: bool):
        super().__init__(in_channels, img_channels, 1)
        self.final_tanh = final_tanh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x).contiguous()  # images leave NCHW
        return torch.tanh(x) if self.final_tanh else x


class Block(nn.Module):
    """One resolution > 4: conv0 (upsampling) -> conv1."""

    def __init__(self, in_channels: int, out_channels: int, slope: float):
        super().__init__()
        self.conv0 = ConvLayer(in_channels, out_channels, up=True, slope=slope)
        self.conv1 = ConvLayer(out_channels, out_channels, up=False, slope=slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(x))


class StartBlock(nn.Module):
    """4x4: the dense start -> conv."""

    def __init__(self, in_features: int, channels: int, slope: float):
        super().__init__()
        self.dense = DenseStart(in_features, channels, slope)
        self.conv = ConvLayer(channels, channels, up=False, slope=slope)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv(self.dense(z))


class Generator(GeneratorBase, PretrainedMixin):
    """PGGAN generator: ``G(z, c)`` -> images NCHW in about [-1, 1]; latent z only, no truncation, no noise."""

    family: ClassVar[str] = "pggan"
    kind: ClassVar[str] = "generator"
    config_class: ClassVar[type] = PGGANConfig
    latent_names: ClassVar[tuple[str, ...]] = ("z",)
    has_truncation: ClassVar[bool] = False

    def __init__(self, config: PGGANConfig):
        super().__init__()
        self.config = config
        self.resolution, self.z_dim, self.c_dim = config.resolution, config.z_dim, config.c_dim
        self.img_channels = config.img_channels
        if config.c_dim:
            self.latent_names = ("z", "c")  # a conditional model's encoder predicts the class too
        ch, slope = config.channels, config.lrelu_slope
        self.resolutions = resolutions(config.resolution)
        self.b4 = StartBlock(config.z_dim + config.c_dim, ch[4], slope)
        for res in self.resolutions[1:]:
            setattr(self, f"b{res}", Block(ch[res // 2], ch[res], slope))
        self.torgb = ToRGB(ch[config.resolution], config.img_channels, config.final_tanh)

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
        return self.decode(self.sample_latents(z, c, truncation_psi, truncation_cutoff), noise_mode)

    def sample_latents(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        check_latents("pggan", z, self.z_dim, c, self.c_dim)
        if truncation_psi != 1 or truncation_cutoff is not None:
            raise ValueError(f"pggan has no truncation: truncation_psi must be 1 and truncation_cutoff None, "
                             f"got {truncation_psi} and {truncation_cutoff}")
        return {"z": z, "c": c} if self.c_dim else {"z": z}

    def decode(self, latents, noise_mode="const"):
        """Images from ``{"z": (N, z_dim)}`` (and ``"c": (N, c_dim)`` for a conditional model); no noise to switch."""
        check_noise_mode(noise_mode)
        z, c = latents["z"], latents.get("c")
        check_latents("pggan", z, self.z_dim, c, self.c_dim)
        x = torch.cat([normalize_2nd_moment(z), c.to(z.dtype)], dim=1) if self.c_dim else z
        x = self.b4(x)  # DenseStart pixel-norms [z, c] again, as official PGGAN and genforce do
        for res in self.resolutions[1:]:
            x = getattr(self, f"b{res}")(x)
        return self.torgb(x)

    def style_weights(self, layers=None) -> torch.Tensor:
        """(C * 16, z_dim): the dense start's effective weight on z (its c columns left out), as genforce/sefa uses."""
        if layers is not None:
            raise ValueError(f"pggan has no per-layer ws: layers must be None, got {layers}")
        dense = self.b4.dense
        return (dense.weight[:, : self.z_dim] * dense.weight_gain).detach()
