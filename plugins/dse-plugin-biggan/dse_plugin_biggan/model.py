"""BigGAN-deep generator (Brock et al. 2019), class-conditional, pure PyTorch.

The condition vector is ``[z, embed(c)]`` (c one-hot, or a mixture of classes). A spectrally
normalized dense layer makes the 4x4 start; then a sequence of bottleneck residual blocks, each
conditional batch norm -> ReLU -> 1x1 conv (to a quarter of the width) -> CBN -> ReLU ->
(nearest 2x) -> 3x3 conv -> CBN -> ReLU -> 3x3 conv -> CBN -> ReLU -> 1x1 conv, plus the input
(its first channels where the width shrinks, upsampled where the map grows); one self-attention
layer before one of the blocks; a final batch norm -> ReLU -> 3x3 conv, whose first
``img_channels`` outputs go through tanh.

**Truncation selects the statistics.** Every batch norm stores ``n_stats`` rows of running means
and variances, measured at truncations 0, 1/(n_stats-1), ..., 1. A truncation t reads
``modf(t / step)`` = (frac, row): row ``row`` when frac is 0, else ``table[row] * frac +
table[row + 1] * (1 - frac)``: the weights run the other way round from a linear interpolation,
as the TF-Hub module's PyTorch port computes them; we reproduce that exactly (it is what the
released weights were checked against). The truncation is one of the latents ``decode`` takes
(``{"truncation": (N,)}``): *truncation lives in the latents*. z itself is not rescaled here: the
caller draws it (BigGAN samples a truncated normal times the truncation).

**Spectral norm.** Every conv and linear layer but the class embedding stores its raw weight and
the power-iteration vectors u, v of the checkpoint; its weight is ``weight / (u . W v)`` with
those stored vectors (no power iteration: what the reference does in eval mode). A fresh
generator runs the power iteration once when it is built, so sigma is the top singular value.

Module names follow the architecture: ``embed``, ``dense``, ``blocks.{i}.norm{k}`` /
``blocks.{i}.conv{k}`` (k = 0..3), ``attention`` (before block ``config.attention``),
``norm``, ``to_rgb``.
"""

from __future__ import annotations

import math
import struct
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from dse_core import Generator as GeneratorBase
from dse_core import PretrainedMixin, check_latents, check_noise_mode
from dse_core.nn import upsample_conv_kernel

from .classes import imagenet_class_names

REDUCTION = 4  # a block's bottleneck is a quarter of its input width


def _widths(instance, attribute, value) -> None:
    if len(value) < 2 or any(not isinstance(v, int) or v < 1 for v in value):
        raise ValueError(f"channels must list at least 2 positive widths, got {value}")
    for c_in, c_out in zip(value[:-1], value[1:]):
        if c_in % REDUCTION or not (c_out == c_in or 2 * c_out == c_in):
            raise ValueError(f"channels {value}: each block keeps its width or halves it, and its input width "
                             f"divides by {REDUCTION} (the bottleneck); got {c_in} -> {c_out}")


@attrs.frozen(hash=False)
class BigGANConfig:
    """Architecture of a BigGAN-deep generator; every field is read from the checkpoint when converting."""

    resolution: int  # output image size: 4 * 2 ** (number of upsampling blocks)
    channels: tuple[int, ...] = attrs.field(converter=tuple, validator=_widths)  # each block's input width, then the last output width
    upsample: tuple[bool, ...] = attrs.field(converter=tuple)  # per block: does it double the map?
    attention: int | None = None  # index of the block whose input goes through self-attention (None: no attention)
    z_dim: int = 128
    embed_dim: int = 128  # class embedding size (the condition vector is z_dim + embed_dim)
    c_dim: int = 1000  # number of classes
    n_stats: int = 51  # batch-norm statistics rows, for truncations 0 .. 1
    eps: float = 1e-4  # batch-norm epsilon
    img_channels: int = 3

    def __attrs_post_init__(self):
        blocks = len(self.channels) - 1
        if len(self.upsample) != blocks:
            raise ValueError(f"upsample has {len(self.upsample)} entries for {blocks} blocks")
        if self.resolution != 4 * 2 ** sum(bool(u) for u in self.upsample):
            raise ValueError(f"resolution {self.resolution}: {sum(self.upsample)} upsampling blocks make "
                             f"{4 * 2 ** sum(self.upsample)} px")
        if self.attention is not None and not (0 <= self.attention < blocks and self.channels[self.attention] % 8 == 0):
            raise ValueError(f"attention {self.attention}: must be a block index 0..{blocks - 1} whose input width "
                             "divides by 8")
        if self.n_stats < 2:
            raise ValueError(f"n_stats must be at least 2, got {self.n_stats}")
        if not 1 <= self.img_channels <= self.channels[-1]:
            raise ValueError(f"img_channels {self.img_channels}: the last conv has {self.channels[-1]} outputs")


# -- spectral norm with stored vectors -------------------------------------------------

class _SpectralNorm(nn.Module):
    """Raw ``weight`` (parameter), ``u``, ``v`` (buffers); ``normalized()`` = weight / (u . W v)."""

    def _setup(self, weight: torch.Tensor, bias: bool) -> None:
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(weight.shape[0])) if bias else None
        self.register_buffer("u", torch.zeros(weight.shape[0]))
        self.register_buffer("v", torch.zeros(weight[0].numel()))
        with torch.no_grad():  # a fresh layer: u, v from a power iteration (a checkpoint overwrites them)
            self.u.copy_(F.normalize(torch.randn(weight.shape[0]), dim=0))
        self.power_iteration(20)

    @torch.no_grad()
    def power_iteration(self, steps: int = 1) -> None:
        """Move u, v towards the weight's top singular vectors (as torch's spectral_norm does in train mode)."""
        matrix = self.weight.flatten(1)
        for _ in range(steps):
            self.v.copy_(F.normalize(matrix.t() @ self.u, dim=0, eps=1e-12))
            self.u.copy_(F.normalize(matrix @ self.v, dim=0, eps=1e-12))

    def normalized(self) -> torch.Tensor:
        u, v = self.u, self.v
        if self.training and torch.is_grad_enabled():  # training: one power iteration per step
            self.power_iteration()
            u, v = u.clone(), v.clone()  # this graph keeps its vectors when another forward updates them
        sigma = torch.dot(u, torch.mv(self.weight.flatten(1), v))
        return self.weight / sigma


class SNLinear(_SpectralNorm):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        weight = torch.empty(out_features, in_features)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        self._setup(weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalized(), self.bias)


class SNConv2d(_SpectralNorm):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
        super().__init__()
        weight = torch.empty(out_channels, in_channels, kernel_size, kernel_size)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        self._setup(weight, bias)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalized(), self.bias, padding=self.padding)


# -- truncation -> statistics ----------------------------------------------------------

def _as_written(value: float) -> float:
    """A truncation as the decimal it was written as: a value that is exactly a float32 (0.4000000059604645, what 0.4
    becomes in a float32 tensor) reads as the shortest decimal with that float32 (0.4). The row arithmetic below is
    on doubles, as the reference's, and 0.4000000059604645 / 0.02 is just past row 20: it would read row 21."""
    packed = struct.pack("<f", value)
    if struct.unpack("<f", packed)[0] != value:
        return value  # not a float32: a double as given
    for digits in range(1, 10):
        short = float(f"{value:.{digits}g}")
        if struct.pack("<f", short) == packed:
            return short
    return value


class Truncation:
    """Each sample's (row, fraction) in the statistics tables, from the truncation latent (N,)."""

    def __init__(self, truncation: torch.Tensor, n_stats: int):
        values = [_as_written(v) for v in truncation.detach().cpu().double().tolist()]
        bad = [v for v in values if not 0 <= v <= 1]
        if bad:
            raise ValueError(f"biggan: truncation must be from 0 to 1 (the stored statistics' range), got {bad[0]}")
        step = 1.0 / (n_stats - 1)
        self.unique = list(dict.fromkeys(values))
        self.index = [self.unique.index(v) for v in values]
        self.rows = []
        for v in self.unique:
            frac, row = math.modf(v / step)
            self.rows.append((int(row), frac))

    def read(self, table: torch.Tensor) -> torch.Tensor:
        """(N, C) statistics (or (1, C) when every sample has the same truncation)."""
        picked = [table[row] * frac + table[row + 1] * (1 - frac) if frac != 0.0 else table[row]
                  for row, frac in self.rows]
        if len(picked) == 1:
            return picked[0].unsqueeze(0)
        return torch.stack(picked)[torch.tensor(self.index, device=table.device)]


class StatNorm(nn.Module):
    """Batch norm on the statistics the truncation selects; gain and bias from the condition vector
    (``1 + scale(cond)``, ``offset(cond)``, spectrally normed, no bias) or, unconditional, learned."""

    def __init__(self, channels: int, n_stats: int, eps: float, cond_dim: int | None):
        super().__init__()
        self.eps = eps
        self.record: list | None = None  # (mean, var) of each training-mode batch while measuring the tables
        # a fresh generator's statistics: mean 0, variance from 0.5 (truncation 0) to 1 (truncation 1), as truncation
        # shrinks the activations; a checkpoint overwrites them
        self.register_buffer("mean", torch.zeros(n_stats, channels))
        self.register_buffer("var", torch.linspace(0.5, 1.0, n_stats)[:, None].repeat(1, channels))
        if cond_dim is None:
            self.scale = self.offset = None
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
        else:
            self.scale = SNLinear(cond_dim, channels, bias=False)
            self.offset = SNLinear(cond_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, truncation: Truncation, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.scale is None:
            gain, shift = self.weight[None], self.bias[None]
        else:
            gain, shift = 1 + self.scale(cond), self.offset(cond)
        if self.training:  # training normalizes with the batch's statistics; the tables are measured afterwards
            if self.record is not None:
                self.record.append((x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)))
            x = F.batch_norm(x, None, None, training=True, eps=self.eps)
            return x * gain[:, :, None, None] + shift[:, :, None, None]
        # eval: (x - mean) / sqrt(var + eps) * gain + shift as one multiply-add over the map (a quarter of the passes)
        inv = torch.rsqrt(truncation.read(self.var) + self.eps)
        gain = gain * inv
        shift = shift - truncation.read(self.mean) * gain
        return torch.addcmul(shift[:, :, None, None], x, gain[:, :, None, None])


class SelfAttention(nn.Module):
    """SAGAN self-attention: keys and values max-pooled 2x; ``x + gamma * out(attention)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.theta = SNConv2d(channels, channels // 8, 1, bias=False)
        self.phi = SNConv2d(channels, channels // 8, 1, bias=False)
        self.g = SNConv2d(channels, channels // 2, 1, bias=False)
        self.out = SNConv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        query = self.theta(x).flatten(2)  # (N, C/8, HW)
        key = F.max_pool2d(self.phi(x), 2).flatten(2)  # (N, C/8, HW/4)
        value = F.max_pool2d(self.g(x), 2).flatten(2)  # (N, C/2, HW/4)
        attn = torch.softmax(torch.bmm(query.transpose(1, 2), key), dim=-1)  # (N, HW, HW/4)
        y = torch.bmm(value, attn.transpose(1, 2)).view(n, -1, h, w)
        return x + self.gamma * self.out(y)


class Block(nn.Module):
    """A bottleneck residual block (see the module docstring)."""

    def __init__(self, c_in: int, c_out: int, up: bool, cond_dim: int, n_stats: int, eps: float):
        super().__init__()
        mid = c_in // REDUCTION
        self.up, self.c_out = up, c_out
        widths = [(c_in, mid, 1), (mid, mid, 3), (mid, mid, 3), (mid, c_out, 1)]
        for k, (a, b, size) in enumerate(widths):
            setattr(self, f"norm{k}", StatNorm(a, n_stats, eps, cond_dim))
            setattr(self, f"conv{k}", SNConv2d(a, b, size))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, truncation: Truncation) -> torch.Tensor:
        skip = x
        for k in range(4):
            x = F.relu_(getattr(self, f"norm{k}")(x, truncation, cond))
            conv = getattr(self, f"conv{k}")
            if k == 1 and self.up:  # nearest 2x then the 3x3 conv, as one stride-2 transposed conv
                x = F.conv_transpose2d(x, upsample_conv_kernel(conv.normalized()), conv.bias, stride=2, padding=1)
            else:
                x = conv(x)
        skip = skip[:, :self.c_out]
        if self.up:
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        return x + skip


class Generator(GeneratorBase, PretrainedMixin):
    """BigGAN-deep generator: ``G(z, c, truncation_psi)`` -> images NCHW in [-1, 1]; no noise, no per-layer ws."""

    family: ClassVar[str] = "biggan"
    kind: ClassVar[str] = "generator"
    config_class: ClassVar[type] = BigGANConfig
    latent_names: ClassVar[tuple[str, ...]] = ("z", "c")
    has_truncation: ClassVar[bool] = True
    max_truncation_psi: ClassVar[float] = 1.0  # the stored statistics cover truncations 0 .. 1

    def __init__(self, config: BigGANConfig):
        super().__init__()
        self.config = config
        self.resolution, self.z_dim, self.c_dim = config.resolution, config.z_dim, config.c_dim
        self.img_channels = config.img_channels
        cond_dim = config.z_dim + config.embed_dim
        ch = config.channels
        self.embed = nn.Linear(config.c_dim, config.embed_dim, bias=False)
        self.dense = SNLinear(cond_dim, ch[0] * 16)  # outputs channel-major: (c, y, x)
        self.attention = SelfAttention(ch[config.attention]) if config.attention is not None else None
        self.blocks = nn.ModuleList(Block(ch[i], ch[i + 1], bool(config.upsample[i]), cond_dim, config.n_stats,
                                          config.eps) for i in range(len(ch) - 1))
        self.norm = StatNorm(ch[-1], config.n_stats, config.eps, None)
        self.to_rgb = SNConv2d(ch[-1], ch[-1], 3)

    @property
    def class_names(self):
        """ImageNet's 1000 names for a 1000-class model (read on first use: torchvision takes a while to import)."""
        return imagenet_class_names() if self.c_dim == 1000 else None

    @property
    def latent_shapes(self):
        return {"z": (self.z_dim,), "c": (self.c_dim,), "truncation": ()}

    def condition_vector(self, z, c):
        """[z, embed(c)]: what every conditional batch norm reads (the reference returns it as ``cond_vector``)."""
        return torch.cat([z, self.embed(c.to(z.device, z.dtype))], dim=1)

    def sample_z(self, n, truncation_psi=1.0, generator=None):
        """BigGAN's z: a normal truncated to [-2, 2], times the truncation (the reference's truncated_noise_sample)."""
        z = torch.nn.init.trunc_normal_(torch.empty(n, self.z_dim), a=-2.0, b=2.0, generator=generator)
        return z * float(truncation_psi)

    @torch.no_grad()
    def measure_statistics(self, batches: int = 8, batch_size: int = 64, seed: int = 0) -> None:
        """Fill every batch norm's statistics tables, one row per truncation 0, 1/(n_stats-1), ..., 1 (BigGAN's
        "standing statistics"): the mean of ``batches`` batch statistics of samples ``sample_z(psi) ``, uniform
        classes. What a generator trained in train mode (batch statistics) needs before it samples in eval mode;
        it first brings every spectral norm's u, v to the weights as they are (an EMA copy's were its source's)."""
        for layer in self.modules():
            if isinstance(layer, _SpectralNorm):
                layer.power_iteration(10)
        norms = [m for m in self.modules() if isinstance(m, StatNorm)]
        was_training = self.training
        self.train()
        try:
            rng = torch.Generator().manual_seed(seed)
            device = self.embed.weight.device
            for row in range(self.config.n_stats):
                psi = row / (self.config.n_stats - 1)
                for norm in norms:
                    norm.record = []
                for _ in range(batches):
                    z = self.sample_z(batch_size, psi, generator=rng).to(device)
                    self.decode(self.sample_latents(z, self.sample_c(batch_size, generator=rng).to(device), psi))
                for norm in norms:
                    means, variances = zip(*norm.record)
                    norm.mean[row] = torch.stack(means).mean(dim=0)
                    norm.var[row] = torch.stack(variances).mean(dim=0)
        finally:
            for norm in norms:
                norm.record = None
            self.train(was_training)

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
        return self.decode(self.sample_latents(z, c, truncation_psi, truncation_cutoff), noise_mode)

    def sample_latents(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        check_latents("biggan", z, self.z_dim, c, self.c_dim)
        if truncation_cutoff is not None:
            raise ValueError("biggan has no per-layer ws: truncation_cutoff must be None")
        psi = float(truncation_psi)
        if not 0 <= psi <= self.max_truncation_psi:
            raise ValueError(f"biggan: truncation_psi must be from 0 to {self.max_truncation_psi:g} (the stored "
                             f"statistics' range), got {psi}")
        # float32 (every device has it): Truncation reads a float32 0.4 as the 0.4 it was written as
        truncation = torch.full((z.shape[0],), psi, dtype=torch.float32, device=z.device)
        return {"z": z, "c": c, "truncation": truncation}

    def decode(self, latents, noise_mode="const"):
        """Images from ``{"z": (N, z_dim), "c": (N, c_dim), "truncation": (N,)}``; no noise to switch."""
        check_noise_mode(noise_mode)
        z, c, truncation = latents["z"], latents["c"], latents["truncation"]
        check_latents("biggan", z, self.z_dim, c, self.c_dim)
        if tuple(truncation.shape) != (z.shape[0],):
            raise ValueError(f"biggan: truncation must be (N,) = ({z.shape[0]},), got {tuple(truncation.shape)}")
        trunc = Truncation(truncation, self.config.n_stats)
        cond = self.condition_vector(z, c)
        x = self.dense(cond).view(z.shape[0], -1, 4, 4).contiguous(memory_format=torch.channels_last)
        for i, block in enumerate(self.blocks):
            if i == self.config.attention:
                x = self.attention(x)
            x = block(x, cond, trunc)
        x = self.to_rgb(F.relu_(self.norm(x, trunc)))
        return torch.tanh(x[:, :self.img_channels])
