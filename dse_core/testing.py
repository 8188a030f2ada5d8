"""Contract tests every GAN plugin runs on itself.

A plugin's test suite calls :func:`check_generator_contract` with its family and a
tiny config; the checks are the promises the core relies on (shapes, noise modes,
truncation, the mapping/synthesis split, gradients, save/load round trip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .families import GanFamily
from .hookspecs import hookimpl
from .interfaces import StyleGenerator
from .plugins import PluginHost, use_host


def _latents(G, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=rng)
    c = None
    if G.c_dim:
        c = torch.nn.functional.one_hot(torch.arange(n) % G.c_dim, G.c_dim).float()
    return z, c


def check_generator_contract(family: GanFamily, config: Any, tmp_path: Path) -> None:
    """Raise AssertionError when ``family.generator_class(config)`` breaks the Generator contract."""
    G = family.generator_class(config).eval()
    assert G.family == family.name
    z, c = _latents(G, 3)
    with torch.no_grad():
        x = G(z, c)
        assert x.shape == (3, G.img_channels, G.resolution, G.resolution), x.shape
        assert torch.isfinite(x).all()
        assert torch.equal(G(z, c), x), "noise_mode='const' must be deterministic"
        G(z, c, noise_mode="none")
        G(z, c, noise_mode="random")

        if isinstance(G, StyleGenerator):
            ws = G.mapping(z, c)
            assert ws.shape == (3, G.num_ws, G.w_dim), ws.shape
            assert torch.allclose(G.synthesis(ws), x, atol=1e-6)
            w_avg = G.mapping(z, c, truncation_psi=0.0)
            assert torch.allclose(w_avg[0], w_avg[1], atol=1e-6), "psi=0 must collapse every sample to w_avg"
            cut = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=1)
            assert torch.equal(cut[:, 1:], ws[:, 1:]) and not torch.equal(cut[:, :1], ws[:, :1])

    # gradients reach the input latents: inversion and encoder training backprop through G
    z_req = z.clone().requires_grad_(True)
    G(z_req, c).square().mean().backward()
    assert z_req.grad is not None and torch.isfinite(z_req.grad).all() and z_req.grad.abs().sum() > 0

    for bad in (torch.randn(3, G.z_dim + 1), torch.randn(G.z_dim)):
        try:
            G(bad, c)
        except ValueError:
            pass
        else:
            raise AssertionError(f"a z of shape {tuple(bad.shape)} must raise ValueError")

    # save / load round trip, directly and through load_generator's family dispatch
    out = G.save_pretrained(tmp_path / f"{family.name}-roundtrip")
    G2 = family.generator_class.from_pretrained(out)
    assert G2.config == G.config
    host = PluginHost()
    host.register(_SingleFamily(family), name=f"contract-{family.name}")
    from .loading import load_generator

    with use_host(host), torch.no_grad():
        G3 = load_generator(out)
        assert type(G3) is type(G)
        assert torch.equal(G2(z, c), x) and torch.equal(G3(z, c), x)


class _SingleFamily:
    def __init__(self, family: GanFamily):
        self.family = family

    @hookimpl
    def register_gan_families(self, register):
        register(self.family)
