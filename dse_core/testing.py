"""Contract tests every GAN plugin runs on itself (its generator, its embedded demo), and test plugins for any family.

:func:`check_generator_contract` checks a family on a tiny config: the promises the core relies on
(construction from the config, shapes, noise modes, truncation as ``has_truncation`` says,
conditions, ``sample_latents``/``decode`` and ``latent_shapes``, the mapping/synthesis split,
gradients, the family's encoder plan, save/load round trip, and a loaded generator in eval mode).
Each failure is an AssertionError saying what is wrong and what the contract wants.
The core's own test suite runs it over every installed family (each ``GanFamily.tiny_config``).
:func:`check_demo` checks a family's embedded demo (size, the pair belongs together, PSNR floors);
:func:`isolate` is what each test starts from (seeded, offline, no user caches).

:func:`plugin` makes a plugin object from families and registry entries, and :func:`host` a plugin
host that holds it: what a test needs to register a family without packaging it::

    with dse_core.testing.host(families=[FAMILY]):
        G = dse_core.load_generator("weights.pt")
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from .families import KNOWN_PACKAGES, GanFamily
from .hookspecs import hookimpl
from .interfaces import StyleGenerator
from .plugins import PluginHost, use_host

REQUIRED_ATTRIBUTES = ("config", "resolution", "z_dim", "c_dim", "img_channels", "latent_names")


def _inputs(G, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    rng = torch.Generator().manual_seed(seed)
    return G.sample_z(n, generator=rng), G.sample_c(n, generator=rng)


def check_generator_contract(family: GanFamily, config: Any, tmp_path: Path) -> None:
    """Raise AssertionError when ``family.generator_class(config)`` breaks the Generator contract."""
    G = _build(family, config)
    z, c = _inputs(G, 3)
    with torch.no_grad():
        x = G(z, c)
        assert x.shape == (3, G.img_channels, G.resolution, G.resolution), x.shape
        assert torch.isfinite(x).all()
        _check_noise_modes(G, z, c, x)
        _check_latents_and_decode(G, z, c, x)
        _check_truncation(G, z, c, x)
        _check_conditions(G, z)
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
    with torch.no_grad():  # away from the initial values, as a trained model is: zero noise strengths, unit gains,
        rng = torch.Generator().manual_seed(0)  # zero biases would hide what the checks look for
        for p in G.parameters():
            p.add_(torch.randn(p.shape, generator=rng).to(p) * 0.05)
    return G


def _check_noise_modes(G, z, c, x) -> None:
    """``const`` is deterministic and is what G(z) uses; ``none`` and ``random`` run; ``random`` draws afresh."""
    assert torch.equal(G(z, c, noise_mode="const"), x), "noise_mode='const' must be the default and deterministic"
    quiet = G(z, c, noise_mode="none")
    assert quiet.shape == x.shape and torch.isfinite(quiet).all(), "noise_mode='none' must give finite images"
    first, second = G(z, c, noise_mode="random"), G(z, c, noise_mode="random")
    assert first.shape == x.shape and torch.isfinite(first).all(), "noise_mode='random' must give finite images"
    noisy = not torch.equal(quiet, x)  # const noise changed the images: the family has noise layers
    assert torch.equal(first, second) != noisy, (
        "noise_mode='random' must draw fresh noise for a family with noise (two calls differ), and a family "
        "without noise must give the same images in every mode")
    try:
        G(z, c, noise_mode="loud")
    except ValueError:
        return
    raise AssertionError("an unknown noise_mode must raise ValueError (dse_core.check_noise_mode does)")


def _check_latents_and_decode(G, z, c, x) -> None:
    latents = G.sample_latents(z, c)
    shapes = G.latent_shapes
    assert isinstance(latents, dict) and set(latents) == set(shapes), (
        f"sample_latents() must return a dict keyed as latent_shapes {sorted(shapes)}, "
        f"got {sorted(latents) if isinstance(latents, dict) else type(latents).__name__}")
    assert set(G.latent_names) <= set(shapes), f"latent_shapes must give a shape for each of latent_names {G.latent_names}"
    for name, shape in shapes.items():
        assert tuple(latents[name].shape) == (z.shape[0], *shape), (
            f"sample_latents()[{name!r}] is {tuple(latents[name].shape)}, latent_shapes says (N, *{shape})")
    assert torch.allclose(G.decode(latents), x, atol=1e-6), \
        "decode(sample_latents(z, c)) must give the images G(z, c) gives"


def _check_truncation(G, z, c, x) -> None:
    """psi != 1 truncates (other images, and sample_latents + decode agree) exactly when has_truncation says so."""
    if not G.has_truncation:
        for call in (lambda: G(z, c, truncation_psi=0.5), lambda: G.sample_latents(z, c, truncation_psi=0.5)):
            try:
                call()
            except ValueError:
                continue
            raise AssertionError("has_truncation is False, so truncation_psi=0.5 must raise ValueError "
                                 "(in forward() and sample_latents())")
        return
    half = G(z, c, truncation_psi=0.5)
    assert not torch.equal(half, x), ("truncation_psi=0.5 gave the same images as 1: has_truncation is True, "
                                      "so truncation must change them (else set has_truncation = False)")
    assert torch.allclose(G.decode(G.sample_latents(z, c, truncation_psi=0.5)), half, atol=1e-6), (
        "decode(sample_latents(z, c, truncation_psi=0.5)) must give the images G(z, c, truncation_psi=0.5) gives: "
        "where truncation changes the synthesis itself, sample_latents carries it (a fixed latent in latent_shapes)")


def _check_conditions(G, z) -> None:
    """A conditional family samples one-hot training classes and names them consistently."""
    if not G.c_dim:
        assert G.sample_c(3) is None, "an unconditional generator's sample_c must return None"
        return
    c = G.sample_c(5, generator=torch.Generator().manual_seed(1))
    assert c is not None and tuple(c.shape) == (5, G.c_dim), f"sample_c(5) must be (5, {G.c_dim}), got {c}"
    names = G.class_names
    assert names is None or len(names) == G.c_dim, f"class_names must name all {G.c_dim} classes, got {len(names)}"
    assert torch.equal(G.class_vector([0, G.c_dim - 1]).argmax(dim=1), torch.tensor([0, G.c_dim - 1]))
    if names:
        assert torch.equal(G.class_vector([names[-1]]), G.class_vector([G.c_dim - 1]))


def _check_style_split(G, z, c, x) -> None:
    ws = G.mapping(z, c)
    assert ws.shape == (3, G.num_ws, G.w_dim), ws.shape
    assert torch.allclose(G.synthesis(ws), x, atol=1e-6)
    w_avg = G.mapping(z, c, truncation_psi=0.0, truncation_cutoff=G.num_ws)
    assert torch.allclose(w_avg[0], w_avg[1], atol=1e-6), "psi=0 with cutoff num_ws must collapse every sample to w_avg"
    # cutoff None is the generator's own default (all layers, or the first few as StyleGAN's): the first at least
    first = G.mapping(z, c, truncation_psi=0.0)[:, 0]
    assert torch.allclose(first[0], first[1], atol=1e-6), "psi=0 (default cutoff) must collapse the first layer's w"
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
    """``Encoder(family.encoder(G))`` takes G's images and predicts each latent G decodes, in its shape."""
    from .encoder import Encoder, EncoderConfig
    from .latents import for_decode

    plan = family.encoder(G)
    assert isinstance(plan, EncoderConfig), \
        f"encoder plan: family.encoder(G) must return an EncoderConfig, got {plan!r}"
    assert plan.family == family.name, f"encoder plan: EncoderConfig.family is {plan.family!r}, not {family.name!r}"
    assert (plan.resolution, plan.img_channels) == (G.resolution, G.img_channels), (
        f"encoder plan: the encoder reads {plan.img_channels}x{plan.resolution}px images, "
        f"G makes {G.img_channels}x{G.resolution}px")
    E = Encoder(plan).eval()
    predicted = E(x, c if plan.c_dim else None)
    wanted = G.latent_shapes
    for name in G.latent_names:
        if name == "c" and name not in predicted:
            continue  # a class the caller gives (conditional encoders read it)
        shape = tuple(predicted[name].shape[1:]) if name in predicted else None
        assert shape == wanted[name], (
            f"encoder plan: E(x)[{name!r}] is {shape and (len(x), *shape)} but decode() takes {name} as "
            f"{(len(x), *wanted[name])} (num_ws / w_dim for ws, z_head for z, num_classes for c)")
    extra = sorted(set(predicted) - set(G.latent_names))
    assert not extra, f"encoder plan: the encoder predicts {extra}, which are not among latent_names {G.latent_names}"
    targets = G.sample_latents(z, c)  # fixed inputs (a truncation) as sampled: the trainer records them in the plan
    latents = {**{k: v for k, v in targets.items() if k not in G.latent_names}, **for_decode(G, E, predicted, c)}
    images = G.decode(latents)
    assert images.shape == x.shape, f"encoder plan: decode(E(x)) gave {tuple(images.shape)}, not {tuple(x.shape)}"


def _check_round_trip(family: GanFamily, G, z, c, x, tmp_path: Path) -> None:
    """save / load round trip, directly and through load_generator's family dispatch."""
    out = G.save_pretrained(tmp_path / f"{family.name}-roundtrip")
    G2 = family.generator_class.from_pretrained(out)
    assert G2.config == G.config
    from .loading import load_generator

    with host(families=[family]), torch.no_grad():
        G3 = load_generator(out)
        assert type(G3) is type(G)
        assert torch.equal(G2(z, c), x) and torch.equal(G3(z, c), x)
        _check_eval_mode(G3)


def _check_eval_mode(G) -> None:
    """A generator comes back from load_generator in eval mode: batch norm uses its running statistics."""
    training = [name for name, m in G.named_modules() if m.training]
    assert not training, f"load_generator must return the generator in eval mode; in train mode: {training[:4]}"
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(not m.training for m in norms)


def isolate(monkeypatch, tmp_path: Path) -> None:
    """What every test of a plugin starts from: torch seeded, no network, no user caches (an autouse fixture calls it)."""
    torch.manual_seed(0)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


# -- embedded demos ----------------------------------------------------------------------------------

DEMO_SIZE_LIMIT = 10 * 2**20  # the project's limit on a plugin's demo weights


def check_demo(family: GanFamily, images: Path, tmp_path: Path, psnr_samples: float, psnr_images: float) -> dict:
    """Raise AssertionError unless ``family``'s embedded demo works as ``dse invert --gan FAMILY IMAGES`` promises.

    The demo weights stay within :data:`DEMO_SIZE_LIMIT`; the encoder loads for the generator it was trained for;
    16 samples G(z) (seed 123) come back above ``psnr_samples`` dB (pooled MSE on [0, 1] pixels); ``dse invert
    --gan FAMILY images`` with no other argument inverts every image in ``images`` with a mean PSNR above
    ``psnr_images``. Returns the command's metrics report.
    """
    import json

    from .cli import main
    from .invert import Inverter
    from .loading import load_encoder, load_generator

    assert family.demo is not None, f"the {family.name} family names no demo folder"
    size = sum(p.stat().st_size for p in family.demo.rglob("*.safetensors"))
    assert size <= DEMO_SIZE_LIMIT, f"the {family.name} demo weights are {size / 2**20:.1f} MB, over 10 MB"
    G = load_generator(f"demo:{family.name}")
    E = load_encoder(f"demo:{family.name}", generator=G)  # refuses an encoder trained for another generator
    assert E.resolution == G.resolution and set(E.latent_shapes) <= set(G.latent_shapes)
    with torch.no_grad():
        z, c = _inputs(G, 16, seed=123)
        x = G(z, c)
        x_rec = Inverter(G, E)(x, c if E.needs_c else None).x_rec  # a class head predicts the class
    mse = (x.clamp(-1, 1) - x_rec.clamp(-1, 1)).square().mean().item() / 4  # on [0, 1] pixels
    psnr = 10 * torch.log10(torch.tensor(1 / mse)).item()
    assert psnr > psnr_samples, f"the {family.name} demo reconstructs its own samples at {psnr:.2f} dB, not above {psnr_samples}"

    out = tmp_path / f"demo-{family.name}"
    assert main(["invert", "--gan", family.name, str(images), "-o", str(out), "--device", "cpu", "--quiet"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert not report["failed"] and report["metadata"]["generator"] == f"demo:{family.name}"
    mean = report["summary"]["psnr"]["mean"]
    assert mean > psnr_images, f"dse invert --gan {family.name} {images}: {mean:.2f} dB, not above {psnr_images}"
    return report


# -- test plugins -----------------------------------------------------------------------------------

def plugin(families: Iterable[GanFamily] = (), checkpoints: Iterable[Any] = ()) -> object:
    """A plugin object registering ``families`` and ``checkpoints`` (registry entries, dicts, .toml files, folders)."""
    families, checkpoints = list(families), list(checkpoints)

    class TestPlugin:
        @hookimpl
        def register_gan_families(self, register):
            for family in families:
                register(family)

        @hookimpl
        def register_checkpoints(self, register):
            for item in checkpoints:
                register(item)

    return TestPlugin()


@contextlib.contextmanager
def host(families: Iterable[GanFamily] = (), checkpoints: Iterable[Any] = (), installed: bool = False,
         name: str = "test-plugin") -> Iterator[PluginHost]:
    """A plugin host holding :func:`plugin` (plus the installed plugins when ``installed``), in use for the block.

    An official family name (``stylegan2``, ...) may only come from its package: the test plugin stands in for it.
    """
    families = list(families)
    test_host = PluginHost()
    if installed:
        test_host.load_entry_points()
    distributions = {KNOWN_PACKAGES.get(f.name, f.package) for f in families}
    test_host.register(plugin(families, checkpoints), name=name,
                       distribution=next(iter(distributions)) if len(distributions) == 1 else "")
    with use_host(test_host):
        yield test_host
