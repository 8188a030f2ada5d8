"""Readers for the StyleGAN2 checkpoint formats users hold.

Each reader lists, for the layer counts found in the file, every tensor of its
generator under the file's own name with the shape it must have, and where it goes
in ours. Sizes (z/w, widths per resolution, filter length) are read from the shapes
by majority, so one damaged tensor is reported by its own name rather than making
its neighbours look wrong. A gap in a layer sequence, a tensor the reader does not
use, or a wrong shape is an error naming the tensor as the file names it; then the
renamed tensors load with the usual strict key-and-shape check. Nothing here is
typed by hand.

* rosinality/stylegan2-pytorch: ``{"g_ema": state_dict, "latent_avg": w}``, or a
  training checkpoint (``g``, ``d``, ``g_ema``, optimizer states, ``args``).
* genforce: ``{"generator_smooth" or "generator": state_dict, ...}``, or its runner's
  training checkpoint (``{"models": {"generator_smooth": ..., ...}, "optimizers": ...}``).

Only the generator state dict is checked strictly; other entries (discriminator,
optimizer states, ``args``) are not read.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Mapping

import torch

from dse_core import (CheckpointError, ForeignState, describe, find_state_dict, layer_count, load_state,
                      separable_filter, state_dict_in, torch_load)

from .model import Generator, StyleGAN2Config

# rosinality's training script pickles its argparse.Namespace into every checkpoint.
ROSINALITY_SAFE_GLOBALS = (argparse.Namespace,)
GENFORCE_KEYS = ("generator_smooth", "generator")
W_AVG_SAMPLES = 10_000  # samples for w_avg when a checkpoint does not store it
DEFAULT_FILTER = (1.0, 3.0, 3.0, 1.0)
FILTER_GAIN = 4.0  # stored 2x-upsampling kernels sum to up**2 in both formats

def _first(t: torch.Tensor) -> torch.Tensor:
    return t[0]


def _scalar(t: torch.Tensor) -> torch.Tensor:
    return t.reshape([])


def _mapping(source: ForeignState, layers: int, prefix: str, first: int = 0) -> None:
    """``layers`` fully connected layers z -> h -> ... -> w named ``{prefix}{first + i}``, weights (out, in)."""
    features = ["z"] + ["h"] * (layers - 1) + ["w"]
    for i in range(layers):
        source.take(f"{prefix}{first + i}.weight", (features[i + 1], features[i]), f"mapping.fc{i}.weight")
        source.take(f"{prefix}{first + i}.bias", (features[i + 1],), f"mapping.fc{i}.bias")


def _filter(source: ForeignState, names: list[str], flip: bool = False) -> tuple[float, ...]:
    """The separable filter the ``names`` present (2-D kernels, gain 4) all hold, as its 1-D factor with ends read 1."""
    names = source.present(names)
    if not names:
        return DEFAULT_FILTER
    first = source.state[names[0]].reshape(source.state[names[0]].shape[-2:]).double()
    for name in names[1:]:
        kernel = source.state[name].reshape(first.shape).double()
        if not torch.allclose(kernel, first, atol=1e-6):
            raise source.error(f"{name} holds another filter than {names[0]}; dse reads one filter for these layers")
    if abs(first.sum().item() - FILTER_GAIN) > 1e-4:
        raise source.error(f"{names[0]} sums to {first.sum().item():g}, not {FILTER_GAIN:g}: an upsampling filter "
                           "with another gain is not supported")
    try:
        return separable_filter(first.flip(0, 1) if flip else first)  # genforce correlates with its kernels: convolves with their flip
    except ValueError:
        raise source.error(f"{names[0]} is not a separable filter (an outer product f x f), which dse needs") from None


def _config(source: ForeignState, sizes: Mapping[str, int], num_up: int, mapping_layers: int,
            filters: tuple[tuple[float, ...], tuple[float, ...]]) -> StyleGAN2Config:
    """The architecture the (verified) sizes describe; ``filters``: (upsampling convs, image skip upsampling)."""
    hidden = sizes.get("h", sizes["w"])
    try:
        return StyleGAN2Config(
            resolution=4 * 2**num_up, channels={4 * 2**j: sizes[f"c{4 * 2**j}"] for j in range(num_up + 1)},
            z_dim=sizes["z"], w_dim=sizes["w"], mapping_layers=mapping_layers,
            mapping_features=None if hidden == sizes["w"] else hidden, img_channels=sizes["img"],
            resample_filter=filters[0], skip_filter=None if filters[1] == filters[0] else filters[1])
    except ValueError as exc:
        raise source.error(f"cannot build a StyleGAN2 generator from it ({exc})") from None


# -- rosinality -------------------------------------------------------------------

def _rosinality_state(path: Path) -> tuple[Mapping[str, torch.Tensor], torch.Tensor | None] | None:
    ckpt = torch_load(path, ROSINALITY_SAFE_GLOBALS)
    state = state_dict_in(ckpt, ["g_ema"])
    if state is None or "input.input" not in state or "conv1.conv.modulation.weight" not in state:
        return None
    latent_avg = ckpt.get("latent_avg")
    return state, latent_avg if isinstance(latent_avg, torch.Tensor) else None


def sniff_rosinality(path: Path) -> bool:
    return path.is_file() and _rosinality_state(path) is not None


def _rosinality_plan(source: ForeignState, mapping_layers: int, num_up: int) -> None:
    """Every tensor of rosinality's Generator (up-conv kernels are stored flipped there)."""
    _mapping(source, mapping_layers, "style.", first=1)  # style.0 is PixelNorm
    source.take("input.input", (1, "c4", 4, 4), "synthesis.b4.const", _first)

    def conv(ours: str, theirs: str, c_in: str, c_out: str, res: int, noise: int, up: bool = False) -> None:
        source.take(f"{theirs}.conv.weight", (1, c_out, c_in, 3, 3), f"{ours}.weight",
                    (lambda t: t[0].flip(2, 3)) if up else _first)
        source.take(f"{theirs}.conv.modulation.weight", (c_in, "w"), f"{ours}.affine.weight")
        source.take(f"{theirs}.conv.modulation.bias", (c_in,), f"{ours}.affine.bias")
        source.take(f"{theirs}.noise.weight", (1,), f"{ours}.noise_strength", _scalar)
        source.take(f"{theirs}.activate.bias", (c_out,), f"{ours}.bias")
        source.take(f"noises.noise_{noise}", (1, 1, res, res), f"{ours}.noise_const", lambda t: t[0, 0])
        if up:
            source.check(f"{theirs}.conv.blur.kernel", ("k", "k"))

    def torgb(ours: str, theirs: str, c_in: str) -> None:
        source.take(f"{theirs}.conv.weight", (1, "img", c_in, 1, 1), f"{ours}.weight", _first)
        source.take(f"{theirs}.conv.modulation.weight", (c_in, "w"), f"{ours}.affine.weight")
        source.take(f"{theirs}.conv.modulation.bias", (c_in,), f"{ours}.affine.bias")
        source.take(f"{theirs}.bias", (1, "img", 1, 1), f"{ours}.bias", lambda t: t.reshape(-1))

    conv("synthesis.b4.conv1", "conv1", "c4", "c4", 4, 0)
    torgb("synthesis.b4.torgb", "to_rgb1", "c4")
    for j in range(num_up):
        res = 8 * 2**j
        block, c_in, c = f"synthesis.b{res}", f"c{res // 2}", f"c{res}"
        conv(f"{block}.conv0", f"convs.{2 * j}", c_in, c, res, 2 * j + 1, up=True)
        conv(f"{block}.conv1", f"convs.{2 * j + 1}", c, c, res, 2 * j + 2)
        torgb(f"{block}.torgb", f"to_rgbs.{j}", c)
        source.check(f"to_rgbs.{j}.upsample.kernel", ("s", "s"))


def load_rosinality(path: Path) -> Generator:
    found = _rosinality_state(path)
    if found is None:
        raise CheckpointError(path, f"not a rosinality checkpoint: found {describe(torch_load(path, ROSINALITY_SAFE_GLOBALS))}, "
                                    "expected a dict with 'g_ema' holding style.N / input.input / convs.N tensors")
    src, latent_avg = found
    source = ForeignState(path, "g_ema", src)
    mapping_layers = max(layer_count(src, r"style\.(\d+)\.") - 1, 1)  # style.0 is PixelNorm
    num_up = max((layer_count(src, r"convs\.(\d+)\.") + 1) // 2, layer_count(src, r"to_rgbs\.(\d+)\."),
                 layer_count(src, r"noises\.noise_(\d+)$") // 2)
    _rosinality_plan(source, mapping_layers, num_up)
    sizes = source.sizes()
    source.verify(sizes, "a StyleGAN2 generator")
    config = _config(source, sizes, num_up, mapping_layers,
                     (_filter(source, [f"convs.{2 * j}.conv.blur.kernel" for j in range(num_up)]),
                      _filter(source, [f"to_rgbs.{j}.upsample.kernel" for j in range(num_up)])))
    dst = source.converted()
    generator = Generator(config)
    if latent_avg is None:
        dst["mapping.w_avg"] = _estimate_w_avg(generator, dst, path)
    elif latent_avg.numel() != config.w_dim:
        raise CheckpointError(path, f"latent_avg has shape {tuple(latent_avg.shape)}; expected {config.w_dim} values "
                                    f"(w_dim of g_ema)")
    else:
        dst["mapping.w_avg"] = latent_avg.reshape(-1)
    load_state(generator, dst, path)
    return generator.eval()


def _estimate_w_avg(generator: Generator, state: dict, path: Path) -> torch.Tensor:
    """Training checkpoints carry no w average: take the mean of mapping(z) over fixed seeds."""
    mapping_state = {k[len("mapping."):]: v for k, v in state.items() if k.startswith("mapping.")}
    mapping_state["w_avg"] = torch.zeros(generator.w_dim)
    load_state(generator.mapping, mapping_state, path)
    z = torch.randn(W_AVG_SAMPLES, generator.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return generator.mapping(z)[:, 0].mean(dim=0)


# -- genforce -----------------------------------------------------------------------

def _genforce_state(path: Path) -> tuple[str, Mapping[str, torch.Tensor]] | None:
    """(where the generator is in the file, e.g. "models.generator_smooth"; its state dict), or None."""
    found = find_state_dict(torch_load(path), GENFORCE_KEYS)
    if found is None or not {"synthesis.early_layer.const", "synthesis.layer0.style.weight"} <= set(found[1]):
        return None
    return found


def sniff_genforce(path: Path) -> bool:
    return path.is_file() and _genforce_state(path) is not None


def _genforce_plan(source: ForeignState, mapping_layers: int, num_up: int) -> None:
    """Every tensor of genforce's StyleGAN2Generator ('skip' architecture, spatial noise)."""
    _mapping(source, mapping_layers, "mapping.dense")
    source.take("truncation.w_avg", ("w",), "mapping.w_avg")
    source.take("synthesis.early_layer.const", (1, "c4", 4, 4), "synthesis.b4.const", _first)

    def layer(ours: str, theirs: str, c_in: str, c_out: str, res: int | None) -> None:
        size = 1 if res is None else 3
        source.take(f"{theirs}.weight", (c_out, c_in, size, size), f"{ours}.weight")
        source.take(f"{theirs}.bias", (c_out,), f"{ours}.bias")
        source.take(f"{theirs}.style.weight", (c_in, "w"), f"{ours}.affine.weight")
        source.take(f"{theirs}.style.bias", (c_in,), f"{ours}.affine.bias", lambda t: t + 1)  # genforce adds 1 at run time
        if res is not None:  # toRGB layers have no noise
            source.take(f"{theirs}.noise_strength", (), f"{ours}.noise_strength", _scalar)
            source.take(f"{theirs}.noise", (1, 1, res, res), f"{ours}.noise_const", lambda t: t[0, 0])

    layer("synthesis.b4.conv1", "synthesis.layer0", "c4", "c4", 4)
    layer("synthesis.b4.torgb", "synthesis.output0", "c4", "img", None)
    for j in range(num_up):
        res = 8 * 2**j
        block, c_in, c = f"synthesis.b{res}", f"c{res // 2}", f"c{res}"
        layer(f"{block}.conv0", f"synthesis.layer{2 * j + 1}", c_in, c, res)
        source.check(f"synthesis.layer{2 * j + 1}.filter.kernel", (1, 1, "k", "k"))
        layer(f"{block}.conv1", f"synthesis.layer{2 * j + 2}", c, c, res)
        layer(f"{block}.torgb", f"synthesis.output{j + 1}", c, "img", None)
    if num_up:
        source.check("synthesis.upsample.kernel", (1, 1, "s", "s"))


def _refuse_other_genforce_variants(source: ForeignState, num_up: int, sizes: Mapping[str, int]) -> None:
    src = source.state
    if "mapping.label_weight" in src:
        raise source.error("conditional genforce StyleGAN2 generators (mapping.label_weight) are not supported yet")
    outputs = {int(m.group(1)) for k in src if (m := re.match(r"synthesis\.output(\d+)\.", k))}
    if num_up and outputs == {num_up}:
        raise source.error(f"only the 'skip' StyleGAN2 architecture is supported; this generator has 1 output layer "
                           f"for {num_up + 1} resolutions ('origin' or 'resnet')")
    w_avg = src.get("truncation.w_avg")
    if isinstance(w_avg, torch.Tensor) and "w" in sizes and w_avg.numel() == (2 * num_up + 2) * sizes["w"] != sizes["w"]:
        raise source.error("genforce generators with repeat_w=False (one w per layer in truncation.w_avg) are not supported")


def load_genforce(path: Path) -> Generator:
    found = _genforce_state(path)
    if found is None:
        raise CheckpointError(path, f"not a genforce StyleGAN2 checkpoint: found {describe(torch_load(path))}, expected "
                                    "'generator_smooth' or 'generator' (at the top or under 'models') holding "
                                    "mapping.denseN / synthesis.layerN tensors")
    where, src = found
    source = ForeignState(path, where, src)
    mapping_layers = layer_count(src, r"mapping\.dense(\d+)\.") or 1
    num_up = max(layer_count(src, r"synthesis\.layer(\d+)\.") // 2, layer_count(src, r"synthesis\.output(\d+)\.") - 1)
    _genforce_plan(source, mapping_layers, num_up)
    sizes = source.sizes()
    _refuse_other_genforce_variants(source, num_up, sizes)
    source.verify(sizes, "a StyleGAN2 generator")
    config = _config(source, sizes, num_up, mapping_layers,
                     (_filter(source, [f"synthesis.layer{2 * j + 1}.filter.kernel" for j in range(num_up)], flip=True),
                      _filter(source, ["synthesis.upsample.kernel"] if num_up else [], flip=True)))
    generator = Generator(config)
    load_state(generator, source.converted(), path)
    return generator.eval()
