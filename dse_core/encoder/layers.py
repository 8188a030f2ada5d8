"""The encoder's small pieces: style head, (fused) downsampling conv, noisy conv layer, FromRGB, linear heads."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import EqualConv2d, EqualLinear


def feature_stats(x: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and std over H, W, concatenated: (N, C, H, W) -> (N, 2C), the statistics AdaIN sets.

    Two passes, as the authors' BE computes it: sqrt(mean((x - mean)^2)), here as the L2 norm of
    x - mean over H, W divided by sqrt(H W). On CPU this is ~2x faster than ``Tensor.var``'s
    one-pass kernel, and its backward is one pass over x where square + mean + sqrt take four.
    """
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = torch.linalg.vector_norm(x - mean, dim=(2, 3)) * (1 / math.sqrt(x.shape[2] * x.shape[3]))
    return torch.cat([mean.flatten(1), std], dim=1)


class StyleHead(nn.Module):
    """Inverse AdaIN: the feature statistics before a conv mapped to one w vector."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.fc = EqualLinear(2 * channels, w_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(feature_stats(x))


class FusedDownConv2d(EqualConv2d):
    """3x3 conv and 2x2 average pooling in one strided 4x4 conv (PGGAN's fused scale, DSE strategy 2)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 3, stride=2, padding=1, bias=bias)
        self.register_buffer("box", _box_expansion(self.weight_gain), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the 4x4 kernel is the 3x3 one convolved with a 2x2 box of 1/4 (times the equalized-lr gain), taken as
        # one (O*I, 9) @ (9, 16) product: a single pass over the weights where pad + 3 adds + 2 scalings took six
        o, i = self.weight.shape[:2]
        w = (self.weight.reshape(o * i, 9) @ self.box.to(self.weight.dtype)).reshape(o, i, 4, 4)
        return F.conv2d(x, w, self.bias, stride=2, padding=1)


def _box_expansion(gain: float) -> torch.Tensor:
    """(9, 16): row (a, b) of a 3x3 kernel adds ``gain / 4`` to the 4x4 kernel at rows a, a+1 and columns b, b+1."""
    box = torch.zeros(3, 3, 4, 4)
    for a in range(3):
        for b in range(3):
            box[a, b, a:a + 2, b:b + 2] = 0.25 * gain
    return box.reshape(9, 16)


class EncoderConv(nn.Module):
    """conv -> bias -> per-channel noise (train mode only) -> leaky ReLU 0.2, optionally halving the size.

    Noise is off in eval mode so that inverting an image is deterministic. ``activate=False``
    stops before the activation (a block that adds its bypass first).
    """

    def __init__(self, in_channels: int, out_channels: int, down: str | None = None, noise: bool = True,
                 activate: bool = True):
        super().__init__()
        if down not in (None, "avgpool", "fused"):
            raise ValueError(f"down must be None, 'avgpool' or 'fused', got {down!r}")
        if down and not activate:
            raise ValueError("a conv that halves the size must activate first (pooling comes after the activation)")
        self.down, self.activate = down, activate
        fused = down == "fused"
        self.conv = FusedDownConv2d(in_channels, out_channels) if fused else EqualConv2d(in_channels, out_channels, 3, padding=1)
        self.noise_strength = nn.Parameter(torch.zeros(out_channels)) if noise else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.noise_strength is not None and self.training:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
            x = torch.addcmul(x, noise, self.noise_strength.view(1, -1, 1, 1))  # x + noise * strength, one pass
        if not self.activate:
            return x
        x = F.leaky_relu_(x, 0.2)  # in place on a fresh tensor (the conv's or addcmul's output): safe under autograd
        return F.avg_pool2d(x, 2) if self.down == "avgpool" else x

    def extra_repr(self) -> str:
        return f"down={self.down}, noise={self.noise_strength is not None}"


class FromRGB(nn.Module):
    """1x1 conv from image channels to the first block's width, then leaky ReLU 0.2."""

    def __init__(self, img_channels: int, out_channels: int):
        super().__init__()
        self.conv = EqualConv2d(img_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x), 0.2)


class FlatHead(nn.Module):
    """Linear layers on the flattened final map: z' (PGGAN: 512; BigGAN: 256 then 128) or class logits."""

    def __init__(self, in_features: int, sizes: tuple[int, ...]):
        super().__init__()
        features = (in_features, *sizes)
        self.num_layers = len(sizes)
        for i in range(self.num_layers):
            setattr(self, f"fc{i}", EqualLinear(features[i], features[i + 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


def init_weights(module: nn.Module, scheme: str) -> None:
    """Re-draw every equalized-lr weight so that the *effective* weight follows ``scheme``.

    Equalized lr multiplies stored weights by ``weight_gain`` at run time, so Xavier's
    effective std sqrt(2 / (fan_in + fan_out)) is stored divided by that gain.
    ``normal`` keeps the equalized-lr default (stored N(0, 1)).
    """
    if scheme not in ("xavier", "normal"):
        raise ValueError(f"unknown weight_init {scheme!r}; expected 'xavier' or 'normal'")
    for layer in module.modules():
        if not isinstance(layer, (EqualConv2d, EqualLinear)):
            continue
        weight = layer.weight
        if scheme == "normal":
            nn.init.normal_(weight, 0.0, 1.0 / getattr(layer, "lr_mul", 1.0))
            continue
        receptive = math.prod(weight.shape[2:])
        fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
        nn.init.normal_(weight, 0.0, math.sqrt(2.0 / (fan_in + fan_out)) / layer.weight_gain)
