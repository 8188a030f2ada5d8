"""Contract tests every GAN plugin runs on itself.

A plugin's test suite calls :func:`check_generator_contract` with its family and a
tiny config; the checks are the promises the core relies on (construction from the
config, shapes, noise modes, truncation, ``sample_latents``/``decode``, the
mapping/synthesis split, gradients, the family's encoder plan, save/load round trip).
Each failure is an AssertionError saying what is wrong and what the contract wants.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .families import KNOWN_PACKAGES, GanFamily
from .hookspecs import hookimpl
from .interfaces import StyleGenerator
from .plugins import PluginHost, use_host

REQUIRED_ATTRIBUTES = ("config", "resolution", "z_dim", "c_dim", "img_channels", "latent_names")


def _latents(G, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=rng)
    c = None
    if G.c_dim:
        c = torch.nn.functional.one_hot(torch.arange(n) % G.c_dim, G.c_dim).float()
    return z, c


def check_generator_contract(family: GanFamily, config: Any, tmp_path: Path) -> None:
    """Raise AssertionError when ``family.generator_class(config)`` breaks the Generator contract."""
    G = _build(family, config)
    z, c = _latents(G, 3)
    with torch.no_grad():
        x = G(z, c)
        assert x.shape == (3, G.img_channels, G.resolution, G.resolution), x.shape
        assert torch.isfinite(x).all()
        assert torch.equal(G(z, c), x), "noise_mode='const' must be deterministic"
        G(z, c, noise_mode="none")
        G(z, c, noise_mode="random")
        _check_latents_and_decode(G, z, c, x)
        _check_truncation(G, z, c, x)
        if isinstance(G, StyleGenerator):
            _check_style_split(G, z, c, x)

    # gradients reach the input latents: inversion and encoder training backprop through G
    z_req = z.clone().requires_grad_(True)
    G(z_req, c).square().mean().backward()
    assert z_req.grad is not None and torch.isfinite(z_req.grad).all() and z_req.grad.abs().sum() > 0

    _check_bad_latents_raise(G, c)
    if family.encoder is not None:
        with torch.no_grad():
            _check_encoder_plan(family, G, z, c, x)
    _check_round_trip(family, G, z, c, x, tmp_path)


def _build(family: GanFamily, config: Any):
    cls = family.generator_class
    G = cls(config).eval()  # a TypeError here: __init__ must take the one config object
    missing = [name for name in REQUIRED_ATTRIBUTES if not hasattr(G, name)]
    assert not missing, (f"{type(config).__name__} -> {cls.__name__}: missing {', '.join('self.' + n for n in missing)}"
                         f"; __init__(self, config) must set self.config = config and resolution, z_dim, c_dim, "
                         f"img_channels (latent_names is a class attribute)")
    assert G.config == config, f"{cls.__name__}.config must be the config it was built from"
    assert G.family == family.name, f"{cls.__name__}.family is {G.family!r}, the family is {family.name!r}"
    return G


def _check_latents_and_decode(G, z, c, x) -> None:
    latents = G.sample_latents(z, c)
    assert isinstance(latents, dict) and set(latents) == set(G.latent_names), (
        f"sample_latents() must return a dict keyed by latent_names {G.latent_names}, "
        f"got {sorted(latents) if isinstance(latents, dict) else type(latents).__name__}")
    assert torch.allclose(G.decode(latents), x, atol=1e-6), \
        "decode(sample_latents(z, c)) must give the images G(z, c) gives"


def _check_truncation(G, z, c, x) -> None:
    """psi != 1 either truncates (other images, and sample_latents agrees) or raises ValueError."""
    try:
        half = G(z, c, truncation_psi=0.5)
    except ValueError:
        try:
            G.sample_latents(z, c, truncation_psi=0.5)
        except ValueError:
            return
        raise AssertionError("forward() refuses truncation_psi=0.5 but sample_latents() accepts it") from None
    assert not torch.equal(half, x), ("truncation_psi=0.5 gave the same images as 1: a family without truncation "
                                      "must raise ValueError for truncation_psi != 1")
    assert torch.allclose(G.decode(G.sample_latents(z, c, truncation_psi=0.5)), half, atol=1e-6), (
        "decode(sample_latents(z, c, truncation_psi=0.5)) must give the images G(z, c, truncation_psi=0.5) gives")


def _check_style_split(G, z, c, x) -> None:
    ws = G.mapping(z, c)
    assert ws.shape == (3, G.num_ws, G.w_dim), ws.shape
    assert torch.allclose(G.synthesis(ws), x, atol=1e-6)
    w_avg = G.mapping(z, c, truncation_psi=0.0)
    assert torch.allclose(w_avg[0], w_avg[1], atol=1e-6), "psi=0 must collapse every sample to w_avg"
    cut = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=1)
    assert torch.equal(cut[:, 1:], ws[:, 1:]) and not torch.equal(cut[:, :1], ws[:, :1])


def _check_bad_latents_raise(G, c) -> None:
    for bad in (torch.randn(3, G.z_dim + 1), torch.randn(G.z_dim)):
        try:
            G(bad, c)
        except ValueError:
            continue
        except Exception as exc:
            raise AssertionError(
                f"a z of shape {tuple(bad.shape)} must raise ValueError, not {type(exc).__name__}: {exc}; "
                "check shapes with dse_core.check_latents(name, z, self.z_dim, c, self.c_dim) first thing in "
                "forward() / sample_latents()") from exc
        raise AssertionError(f"a z of shape {tuple(bad.shape)} must raise ValueError (dse_core.check_latents does), "
                             "but the generator accepted it")


def _check_encoder_plan(family: GanFamily, G, z, c, x) -> None:
    """``Encoder(family.encoder(G))`` takes G's images and predicts every latent G decodes, in its shapes."""
    from .encoder import Encoder, EncoderConfig

    plan = family.encoder(G)
    assert isinstance(plan, EncoderConfig), \
        f"encoder plan: family.encoder(G) must return an EncoderConfig, got {plan!r}"
    assert plan.family == family.name, f"encoder plan: EncoderConfig.family is {plan.family!r}, not {family.name!r}"
    assert (plan.resolution, plan.img_channels) == (G.resolution, G.img_channels), (
        f"encoder plan: the encoder reads {plan.img_channels}x{plan.resolution}px images, "
        f"G makes {G.img_channels}x{G.resolution}px")
    E = Encoder(plan).eval()
    out = E(x, c if plan.cond_dim else None)
    wanted = G.sample_latents(z, c)
    latents = {}
    for name in G.latent_names:
        assert name in out._fields, (f"encoder plan: decode() takes {name!r}, which the encoder does not predict "
                                     f"(it predicts {', '.join(out._fields)})")
        got = getattr(out, name)
        shape = None if got is None else tuple(got.shape)
        assert shape == tuple(wanted[name].shape), (
            f"encoder plan: E(x).{name} is {shape} but decode() takes {name} as {tuple(wanted[name].shape)} "
            "(num_ws / w_dim for w, z_head for z)")
        latents[name] = got
    images = G.decode(latents)
    assert images.shape == x.shape, f"encoder plan: decode(E(x)) gave {tuple(images.shape)}, not {tuple(x.shape)}"


def _check_round_trip(family: GanFamily, G, z, c, x, tmp_path: Path) -> None:
    """save / load round trip, directly and through load_generator's family dispatch."""
    out = G.save_pretrained(tmp_path / f"{family.name}-roundtrip")
    G2 = family.generator_class.from_pretrained(out)
    assert G2.config == G.config
    host = PluginHost()
    # an official family name may only come from its package: the test host stands in for it
    host.register(_SingleFamily(family), name=f"contract-{family.name}",
                  distribution=KNOWN_PACKAGES.get(family.name, family.package))
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
