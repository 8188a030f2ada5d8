"""Two small GAN families written as a third-party plugin would write them (public API only).

Tests import them (``from toy_families import DCGAN, make_dcgan, ...``) and register them
with ``dse_core.testing.host(families=[...])`` where a lookup by family name is needed.

- ``toy-dcgan`` (:class:`DCGanGenerator`): an unconditional DCGAN, z -> linear -> 4x4 map ->
  (upsample, conv, BatchNorm2d, ReLU) blocks -> tanh. No truncation, no noise; the encoder
  predicts z. Its batch norms make it the family that shows whether dse keeps a generator in
  eval mode: :func:`make_dcgan` gives it running statistics measured on its own samples (a
  stand-in for a trained checkpoint), which differ from the defaults and from any batch's.
- ``toy-biggan`` (:class:`CondGenerator`): a class-conditional, BigGAN-like generator whose
  synthesis depends on truncation. As in the TF-Hub BigGANs, each batch norm holds two sets
  of statistics, measured at psi = 0 and psi = 1 (:func:`make_cond`), and interpolates between
  them by the sample's truncation; the class embedding sets each norm's gain and bias.
  ``sample_latents(z, c, psi)`` returns ``z * psi``, ``c`` and ``truncation`` (psi for every
  sample), and ``decode`` reads all three: ``decode(sample_latents(z, c, psi)) == G(z, c, psi)``
  holds only because truncation is carried in the latents (*truncation lives in the latents*).

Encoder plans of ``toy-biggan`` (the choice asked for by issue 8):

- :func:`cond_plan` (the family's): the paper's BigGAN encoder. Conditional batch norm on the
  class (``norm="cbn"``), a z head, and **no class head**: the class is given, in training
  (the sampled one) and at inversion.
- :func:`classifying_plan`: an *unconditioned* encoder (instance norm) with a z head and a
  class head, for images whose class is unknown: it predicts the class from the image.

A class head on a CBN encoder is deliberately not offered. Such an encoder reads c, so it
needs c at inversion (``Inverter`` refuses to run it without one), and a given c replaces
any predicted class (``dse_core.latents.encode``): the head's prediction would never reach
``decode`` at inversion, and in training its cross-entropy would only teach it to copy the c
the norms are fed, nothing about the image.
"""

from __future__ import annotations

import attrs
import torch
from torch import nn

import dse_core

# -- toy-dcgan: unconditional, batch norm, z latents -----------------------------------------------


@attrs.frozen
class DCGanConfig:
    resolution: int = 16  # output size
    z_dim: int = 16  # input latent size
    channels: int = 32  # width of the 4x4 map; halved with each doubling of the size (at least 8)


class DCGanGenerator(dse_core.Generator, dse_core.PretrainedMixin):
    """z -> linear -> 4x4 -> (upsample x2, conv 3x3, BatchNorm2d, ReLU) per doubling -> conv 3x3 -> tanh."""

    family = "toy-dcgan"
    kind = "generator"
    config_class = DCGanConfig
    latent_names = ("z",)

    def __init__(self, config: DCGanConfig):
        super().__init__()
        self.config = config
        self.resolution, self.z_dim, self.c_dim, self.img_channels = config.resolution, config.z_dim, 0, 3
        width = config.channels
        self.fc = nn.Linear(config.z_dim, width * 16)
        self.bn4 = nn.BatchNorm2d(width)
        layers: list[nn.Module] = []
        for res in dse_core.resolutions(config.resolution)[1:]:
            out = max(width // 2, 8)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(out), nn.ReLU()]
            width = out
        self.blocks = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(width, self.img_channels, 3, padding=1)

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
        return self.decode(self.sample_latents(z, c, truncation_psi, truncation_cutoff), noise_mode)

    def sample_latents(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        dse_core.check_latents("toy-dcgan", z, self.z_dim, c, self.c_dim)
        if truncation_psi != 1 or truncation_cutoff is not None:
            raise ValueError("toy-dcgan has no truncation: truncation_psi must be 1 (and no cutoff)")
        return {"z": z}

    def decode(self, latents, noise_mode="const"):
        dse_core.check_noise_mode(noise_mode)  # no noise layers: accepted and ignored
        z = latents["z"]
        x = torch.relu(self.bn4(self.fc(z).view(z.shape[0], -1, 4, 4)))
        return torch.tanh(self.to_rgb(self.blocks(x)))


def dcgan_plan(G: DCGanGenerator) -> dse_core.EncoderConfig:
    """The DSE encoder of a z-latent family: no style heads, no noise, a linear z head on the final 4x4 map."""
    return dse_core.EncoderConfig(
        family="toy-dcgan", resolution=G.resolution, img_channels=G.img_channels,
        channels={res: min(32, 8 * G.resolution // res) for res in dse_core.resolutions(G.resolution)},
        num_ws=0, noise=False, z_head=(G.z_dim,),
    )


# -- toy-biggan: class-conditional, truncation selects batch-norm statistics --------------------------

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven")


@attrs.frozen
class CondConfig:
    resolution: int = 16  # output size
    z_dim: int = 16  # input latent size
    c_dim: int = 4  # number of classes (named "zero", "one", ... up to 8)
    embed_dim: int = 8  # size of the class embedding that sets the norms' gain and bias
    channels: int = 32  # width of the 4x4 map; halved with each doubling of the size (at least 8)


class TruncatedBatchNorm(nn.Module):
    """Batch norm with two sets of statistics, for psi = 0 (row 0) and psi = 1 (row 1), interpolated by each
    sample's truncation; gain and bias from the class embedding (BigGAN's class-conditional batch norm)."""

    def __init__(self, channels: int, embed_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(2, channels))
        self.register_buffer("running_var", torch.ones(2, channels))
        self.gain = nn.Linear(embed_dim, channels)
        self.bias = nn.Linear(embed_dim, channels)
        self.measuring: int | None = None  # make_cond sets 0 or 1: record this batch's statistics in that row

    def forward(self, x: torch.Tensor, embedding: torch.Tensor, truncation: torch.Tensor) -> torch.Tensor:
        if self.measuring is not None:
            self.running_mean[self.measuring] = x.mean(dim=(0, 2, 3))
            self.running_var[self.measuring] = x.var(dim=(0, 2, 3))
        t = truncation.to(x.dtype)[:, None]  # (N, 1)
        mean = torch.lerp(self.running_mean[0], self.running_mean[1], t)  # (N, C)
        var = torch.lerp(self.running_var[0], self.running_var[1], t).clamp_min(0)
        x = (x - mean[:, :, None, None]) * torch.rsqrt(var + self.eps)[:, :, None, None]
        return x * (1 + self.gain(embedding))[:, :, None, None] + self.bias(embedding)[:, :, None, None]


class CondGenerator(dse_core.Generator, dse_core.PretrainedMixin):
    """(z * psi, class embedding) -> linear -> 4x4 -> (upsample x2, conv 3x3, truncated CBN, ReLU) -> conv -> tanh."""

    family = "toy-biggan"
    kind = "generator"
    config_class = CondConfig
    latent_names = ("z", "c")
    has_truncation = True

    def __init__(self, config: CondConfig):
        super().__init__()
        if not 1 <= config.c_dim <= len(CLASS_NAMES):
            raise ValueError(f"toy-biggan: c_dim must be 1..{len(CLASS_NAMES)}, got {config.c_dim}")
        self.config = config
        self.resolution, self.z_dim, self.c_dim, self.img_channels = config.resolution, config.z_dim, config.c_dim, 3
        self.class_names = CLASS_NAMES[: config.c_dim]
        width = config.channels
        self.embed = nn.Linear(config.c_dim, config.embed_dim, bias=False)
        self.fc = nn.Linear(config.z_dim + config.embed_dim, width * 16)
        self.norm4 = TruncatedBatchNorm(width, config.embed_dim)
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        for res in dse_core.resolutions(config.resolution)[1:]:
            out = max(width // 2, 8)
            self.convs.append(nn.Conv2d(width, out, 3, padding=1, bias=False))
            self.norms.append(TruncatedBatchNorm(out, config.embed_dim))
            width = out
        self.to_rgb = nn.Conv2d(width, self.img_channels, 3, padding=1)

    @property
    def latent_shapes(self):
        return {"z": (self.z_dim,), "c": (self.c_dim,), "truncation": ()}

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
        return self.decode(self.sample_latents(z, c, truncation_psi, truncation_cutoff), noise_mode)

    def sample_latents(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        dse_core.check_latents("toy-biggan", z, self.z_dim, c, self.c_dim)
        if truncation_cutoff is not None:
            raise ValueError("toy-biggan has no per-layer ws: truncation_cutoff must be None")
        return {"z": z * truncation_psi, "c": c, "truncation": z.new_full((z.shape[0],), float(truncation_psi))}

    def decode(self, latents, noise_mode="const"):
        dse_core.check_noise_mode(noise_mode)  # no noise layers: accepted and ignored
        z, c, truncation = latents["z"], latents["c"], latents["truncation"]
        if truncation.shape != (z.shape[0],):
            raise ValueError(f"toy-biggan: truncation must be (N,) = ({z.shape[0]},), got {tuple(truncation.shape)}")
        e = self.embed(c)
        x = self.fc(torch.cat([z, e], dim=1)).view(z.shape[0], -1, 4, 4)
        x = torch.relu(self.norm4(x, e, truncation))
        for conv, norm in zip(self.convs, self.norms):
            x = torch.relu(norm(conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest")), e, truncation))
        return torch.tanh(self.to_rgb(x))


def cond_plan(G: CondGenerator) -> dse_core.EncoderConfig:
    """The paper's BigGAN encoder: conditional batch norm on the (given) class, a z head; no class head."""
    return dse_core.EncoderConfig(
        family="toy-biggan", resolution=G.resolution, img_channels=G.img_channels,
        channels={res: min(32, 8 * G.resolution // res) for res in dse_core.resolutions(G.resolution)},
        num_ws=0, noise=False, norm="cbn", c_dim=G.c_dim, z_head=(G.z_dim,),
    )


def classifying_plan(G: CondGenerator) -> dse_core.EncoderConfig:
    """An unconditioned encoder (instance norm) that predicts z and the class (a class head): no class needed."""
    return attrs.evolve(cond_plan(G), norm="instance", c_dim=0, num_classes=G.c_dim)


# -- the families, and stand-ins for trained checkpoints ----------------------------------------------

def _no_files(path) -> bool:
    return False


def _no_reader(path):
    raise dse_core.CheckpointError(path, "toy families load only from save_pretrained folders")


DCGAN = dse_core.GanFamily(
    name="toy-dcgan", description="a toy DCGAN (batch norm, z latents)", generator_class=DCGanGenerator,
    formats=[dse_core.CheckpointFormat("none", "no foreign format", _no_files, _no_reader)],
    latent="z (z_dim)", encoder=dcgan_plan, tiny_config=DCGanConfig(resolution=8, z_dim=6, channels=8),
)

COND = dse_core.GanFamily(
    name="toy-biggan", description="a toy BigGAN (class-conditional, truncation in the latents)",
    generator_class=CondGenerator,
    formats=[dse_core.CheckpointFormat("none", "no foreign format", _no_files, _no_reader)],
    latent="z (z_dim) and c (c_dim); truncation fixed per encoder", encoder=cond_plan,
    tiny_config=CondConfig(resolution=8, z_dim=6, c_dim=3, embed_dim=4, channels=8),
)


def make_dcgan(config: DCGanConfig = DCGanConfig(), seed: int = 1, n: int = 512) -> DCGanGenerator:
    """A toy DCGAN standing in for a trained one: weights from ``seed``, batch-norm running statistics measured
    on ``n`` of its own samples (not the defaults 0 and 1). In eval mode; the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = DCGanGenerator(config)
        norms = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: after one batch, that batch's statistics
        G.train()
        with torch.no_grad():
            G(torch.randn(n, config.z_dim))
        for m in norms:
            m.momentum = 0.1
    return G.eval()


def make_cond(config: CondConfig = CondConfig(), seed: int = 1, n: int = 512) -> CondGenerator:
    """A toy BigGAN standing in for a trained one: weights from ``seed``, each norm's two sets of statistics measured
    on ``n`` of its samples at psi = 0 and psi = 1. In eval mode; the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = CondGenerator(config)
        with torch.no_grad():
            for p in G.embed.parameters():  # distinct classes: a unit-scale embedding per class
                p.normal_()
            z, c = torch.randn(n, config.z_dim), G.sample_c(n)
            norms = [m for m in G.modules() if isinstance(m, TruncatedBatchNorm)]
            for row, psi in ((0, 0.0), (1, 1.0)):
                for m in norms:
                    m.measuring = row
                G(z, c, truncation_psi=psi)
            for m in norms:
                m.measuring = None
    return G.eval()
