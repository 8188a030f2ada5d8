"""The training samples: fresh z (and c) from a per-step RNG, their latents (the latent loss's targets)
and x = G(latents)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..errors import DseError
from ..interfaces import StyleGenerator
from .config import TrainConfig


class Samples(NamedTuple):
    latents: dict[str, torch.Tensor]  # every input of G.decode, by name: the targets of the latent loss
    x: torch.Tensor  # G.decode(latents): the images the encoder reads
    c: torch.Tensor | None  # the condition they were drawn with (N, c_dim); None for an unconditional G


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The RNG of one step on one rank: independent of how the run was split or resumed."""
    return torch.Generator().manual_seed((seed * 1_000_003 + rank) * 1_000_000_007 + step)


@torch.no_grad()
def make_training_pairs(G, n: int, rng: torch.Generator, cfg: TrainConfig, device: torch.device) -> Samples:
    """n fresh samples: z from ``G.sample_z`` (N(0, 1) for most families), c from ``G.sample_c``
    (one class for the batch, or one per sample: ``cfg.class_sampling``), latents at the run's truncation (and style mixing)."""
    z = G.sample_z(n, cfg.truncation_psi, generator=rng).to(device)
    c = G.sample_c(1 if cfg.class_sampling == "batch" else n, generator=rng)
    c = None if c is None else c.expand(n, -1).to(device)
    latents = G.sample_latents(z, c, truncation_psi=cfg.truncation_psi, truncation_cutoff=cfg.truncation_cutoff)
    if cfg.style_mixing_prob > 0:
        latents["ws"] = style_mix(G, latents["ws"], c, rng, cfg)
    return Samples(latents, G.decode(latents, noise_mode=cfg.noise_mode), c)


def style_mix(G, ws: torch.Tensor, c, rng: torch.Generator, cfg: TrainConfig) -> torch.Tensor:
    """With probability p per sample, layers from a random cutoff on come from a second z (genforce's mixing).

    Style mixing belongs to style-based generators: any other family is refused.
    """
    if not isinstance(G, StyleGenerator):
        raise DseError(f"style mixing needs a style-based generator; the {G.family} generator has no per-layer ws")
    n, num_ws = ws.shape[:2]
    other = G.sample_latents(torch.randn(n, G.z_dim, generator=rng).to(ws.device), c,
                             truncation_psi=cfg.truncation_psi, truncation_cutoff=cfg.truncation_cutoff)["ws"]
    mix = torch.rand(n, generator=rng) < cfg.style_mixing_prob
    cutoff = torch.randint(1, num_ws, (n,), generator=rng)
    layer_from_other = (torch.arange(num_ws)[None] >= cutoff[:, None]) & mix[:, None]
    return torch.where(layer_from_other[:, :, None].to(ws.device), other, ws)
