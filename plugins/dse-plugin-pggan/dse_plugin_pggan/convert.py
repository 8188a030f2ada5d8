"""Readers for the PGGAN checkpoint formats users hold; the architecture comes from tensor names and shapes.

* genforce ``PGGANGenerator``: ``{"generator_smooth" or "generator": state_dict, ...}`` (or a training
  checkpoint's ``{"models": {...}}``), tensors ``layer{i}`` (two per resolution; ``layer0`` is the 4x4
  dense start stored as a 4x4 conv), ``output{i}`` (one to-RGB per resolution: the last is the
  full-resolution one) and ``lod``. Official PGGAN weights converted by genforce are stored this way.
* facebookresearch/pytorch_GAN_zoo ``PGAN`` (what ``torch.hub.load(..., "PGAN", pretrained=True)``
  downloads): ``torch.save(model.getStateDict())`` = ``{"config": BaseConfig, "netG", "netD", "avgG"}``,
  written in torch's legacy (non-zip) format. ``avgG`` is the averaged generator hub users sample from
  (``model.test(z, getAvG=True)``); ``netG`` when a file has none. The config object is read as data.

Each reader declares every tensor of the file's generator under the file's names with the shape it must
have (``dse_core.ForeignState``): widths are read by majority, so a damaged tensor is named; a gap, an
unknown tensor or a wrong shape is refused naming the tensor.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

from dse_core import (CheckpointError, DseWarning, ForeignState, describe, find_state_dict, layer_count, load_state,
                      state_dict_in, torch_load)

from .model import LRELU_GAIN, Generator, PGGANConfig

GENFORCE_KEYS = ("generator_smooth", "generator")
STYLE_KEYS = ("synthesis.early_layer.const", "synthesis.layer0.weight", "mapping.dense0.weight")  # genforce StyleGAN 1/2


def _config(source: ForeignState, sizes: Mapping[str, int], num_blocks: int, **kwargs) -> PGGANConfig:
    try:
        return PGGANConfig(resolution=4 * 2 ** (num_blocks - 1),
                           channels={4 * 2**j: sizes[f"c{4 * 2**j}"] for j in range(num_blocks)},
                           img_channels=sizes["img"], **kwargs)
    except (ValueError, KeyError) as exc:
        raise source.error(f"cannot build a PGGAN generator from it ({exc})") from None


def _dense_from_conv(t: torch.Tensor) -> torch.Tensor:
    """genforce's 4x4 conv on the 1x1 latent (padding 3) -> our dense weight, outputs channel-major (c, y, x)."""
    return t.flip(2, 3).permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def _build(path: Path, config: PGGANConfig, state: dict) -> Generator:
    generator = Generator(config)
    load_state(generator, state, path)
    return generator.eval()


# -- genforce -----------------------------------------------------------------------

def _genforce_state(path: Path) -> tuple[str, Mapping[str, torch.Tensor], Any] | None:
    """(where the generator is, e.g. "models.generator_smooth", its state dict, the checkpoint), or None for any
    other file."""
    ckpt = torch_load(path)
    found = find_state_dict(ckpt, GENFORCE_KEYS)
    if found is None or not _looks_like_pggan(found[1]):
        return None
    return *found, ckpt


def _looks_like_pggan(state: Mapping[str, torch.Tensor]) -> bool:
    """layerN and outputN at the top level; genforce's StyleGAN / StyleGAN2 keep theirs under synthesis.* (not ours)."""
    return (any(re.match(r"layer\d+\.weight$", k) for k in state) and any(re.match(r"output\d+\.", k) for k in state)
            and not any(k in state for k in STYLE_KEYS))


def sniff_genforce(path: Path) -> bool:
    return path.is_file() and _genforce_state(path) is not None


def _genforce_fused(src: Mapping[str, torch.Tensor], num_blocks: int) -> bool:
    """Do the upsampling layers store transposed-conv weights (in, out, 3, 3) (genforce's ``fused_scale``)?

    Read where a layer changes width (the widths come from the layer after it); a file whose widths never
    change cannot tell, and both readings then give the same shapes: the genforce default (not fused) is used.
    """
    votes = set()
    for j in range(1, num_blocks):
        up, prev, same = (src.get(f"layer{i}.weight") for i in (2 * j, 2 * j - 1, 2 * j + 1))
        if all(isinstance(t, torch.Tensor) and t.ndim == 4 for t in (up, prev, same)) and prev.shape[0] != same.shape[0]:
            if tuple(up.shape[:2]) == (prev.shape[0], same.shape[0]):
                votes.add(True)
            elif tuple(up.shape[:2]) == (same.shape[0], prev.shape[0]):
                votes.add(False)
    return votes == {True}


def _genforce_plan(source: ForeignState, num_blocks: int, fused: bool) -> None:
    """Every tensor of genforce's PGGANGenerator; only the last output layer is loaded."""
    source.check("lod", ())
    source.take("layer0.weight", ("c4", "zc", 4, 4), "b4.dense.weight", _dense_from_conv)
    source.take("layer0.bias", ("c4",), "b4.dense.bias", lambda t: t.repeat_interleave(16))  # one bias per channel
    source.take("layer1.weight", ("c4", "c4", 3, 3), "b4.conv.weight")
    source.take("layer1.bias", ("c4",), "b4.conv.bias")
    for j in range(1, num_blocks):
        res, c_in, c = 4 * 2**j, f"c{2 * 2**j}", f"c{4 * 2**j}"
        if fused:  # conv_transpose2d weights: the same 3x3 conv, transposed and flipped
            source.take(f"layer{2 * j}.weight", (c_in, c, 3, 3), f"b{res}.conv0.weight", lambda t: t.flip(2, 3).transpose(0, 1))
        else:
            source.take(f"layer{2 * j}.weight", (c, c_in, 3, 3), f"b{res}.conv0.weight")
        source.take(f"layer{2 * j}.bias", (c,), f"b{res}.conv0.bias")
        source.take(f"layer{2 * j + 1}.weight", (c, c, 3, 3), f"b{res}.conv1.weight")
        source.take(f"layer{2 * j + 1}.bias", (c,), f"b{res}.conv1.bias")
    for j in range(num_blocks):
        last = j == num_blocks - 1  # the lower-resolution to-RGB layers only served the fade-in while training
        source.take(f"output{j}.weight", ("img", f"c{4 * 2**j}", 1, 1), "torgb.weight" if last else None)
        source.take(f"output{j}.bias", ("img",), "torgb.bias" if last else None)


def _genforce_label_size(ckpt: Any, num_blocks: int) -> int | None:
    """genforce stores the label size nowhere in G (it widens layer0's input): read it from D's output, 1 + label_size;
    None for a file without it."""
    disc = state_dict_in(ckpt, ["discriminator"])
    out = disc.get(f"layer{2 * num_blocks}.weight") if disc else None
    return int(out.shape[0]) - 1 if isinstance(out, torch.Tensor) and out.ndim == 2 else None


def load_genforce(path: Path) -> Generator:
    found = _genforce_state(path)
    if found is None:
        raise CheckpointError(path, f"not a genforce PGGAN checkpoint: found {describe(torch_load(path))}, expected "
                                    "'generator_smooth' or 'generator' holding layerN / outputN tensors")
    where, src, ckpt = found
    source = ForeignState(path, where, src)
    num_blocks = max((layer_count(src, r"layer(\d+)\.") + 1) // 2, layer_count(src, r"output(\d+)\."))
    _genforce_plan(source, num_blocks, _genforce_fused(src, num_blocks))
    sizes = source.sizes()
    source.verify(sizes, "a PGGAN generator")
    lod = float(src["lod"]) if "lod" in src else 0.0
    if lod != 0:
        raise source.error(f"lod is {lod:g}: saved while growing (fading in a resolution); dse reads finished "
                           "generators (lod 0)", hint="convert a checkpoint saved after the last fade-in")
    label_size = _genforce_label_size(ckpt, num_blocks)
    if label_size is None:  # a class vector widens layer0's input as z would: nothing in G tells them apart
        label_size = 0
        warnings.warn(f"{path}: no discriminator output (layer{2 * num_blocks}) to read genforce's label_size from: read "
                      f"as unconditional with z_dim {sizes['zc']}; if it was trained with labels (label_size > 0), that z "
                      "holds the class vector too and its images come out wrong: convert the checkpoint that still has "
                      "its 'discriminator'", DseWarning, stacklevel=2)
    if not 0 <= label_size < sizes["zc"]:
        raise source.error(f"the discriminator says label_size {label_size}, more than layer0's {sizes['zc']} inputs")
    config = _config(source, sizes, num_blocks, z_dim=sizes["zc"] - label_size, c_dim=label_size)
    return _build(path, config, source.converted())


# -- facebookresearch/pytorch_GAN_zoo -----------------------------------------------------

class ZooConfig:
    """Stand-in for pytorch_GAN_zoo's ``models.utils.config.BaseConfig``: its attributes, kept as data."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def get(self, name: str, default: Any = None) -> Any:
        return self.__dict__.get(name, default)


ZOO_GLOBALS = ((ZooConfig, "models.utils.config.BaseConfig"),)
ZOO_TANH_LOSSES = ("MSE", "DCGAN")  # their loss criterions give the generator a final tanh (None otherwise)


def _zoo_checkpoint(path: Path) -> tuple[str, Mapping[str, torch.Tensor], Any] | None:
    """(which generator, its state dict, the config), or None for any other file."""
    ckpt = torch_load(path, ZOO_GLOBALS)
    if not isinstance(ckpt, Mapping) or "config" not in ckpt:
        return None
    for where in ("avgG", "netG"):
        state = state_dict_in(ckpt, [where])
        if state is not None and "formatLayer.module.weight" in state:
            config = ckpt["config"]
            return where, state, config if isinstance(config, (ZooConfig, Mapping)) else None
    return None


def sniff_ganzoo(path: Path) -> bool:
    return path.is_file() and _zoo_checkpoint(path) is not None


def _zoo_plan(source: ForeignState, num_scales: int, equalized: bool) -> None:
    """Every tensor of the zoo's GNet, rescaled to our gains.

    The zoo scales a layer's output, bias included, by sqrt(2 / fan_in) (to-RGB and the dense start too),
    where we scale the weight alone by He's gain: dense sqrt(2)/4, convs sqrt(2), to-RGB 1, each / sqrt(fan_in).
    """
    def layer(theirs: str, shape: tuple, ours: str | None, our_gain: float) -> None:
        weight = f"{theirs}.module.weight"

        def zoo_gain() -> float:  # called after verify(): the weight has its declared shape
            return math.sqrt(2 / source.state[weight][0].numel()) if equalized else 1.0

        def convert_weight(t: torch.Tensor) -> torch.Tensor:
            return t * (zoo_gain() * math.sqrt(t[0].numel()) / our_gain)

        source.take(weight, shape, ours and f"{ours}.weight", convert_weight)
        source.take(f"{theirs}.module.bias", (shape[0],), ours and f"{ours}.bias", lambda t: t * zoo_gain())

    c = [f"c{4 * 2**j}" for j in range(num_scales)]
    layer("formatLayer", ("c4x16", "z"), "b4.dense", LRELU_GAIN / 4)  # outputs channel-major, as ours
    layer("groupScale0.0", (c[0], c[0], 3, 3), "b4.conv", LRELU_GAIN)
    for j in range(1, num_scales):
        res = 4 * 2**j
        layer(f"scaleLayers.{j - 1}.0", (c[j], c[j - 1], 3, 3), f"b{res}.conv0", LRELU_GAIN)
        layer(f"scaleLayers.{j - 1}.1", (c[j], c[j], 3, 3), f"b{res}.conv1", LRELU_GAIN)
    for j in range(num_scales):
        last = j == num_scales - 1  # earlier to-RGB layers only served the fade-in while training
        layer(f"toRGBLayers.{j}", ("img", c[j], 1, 1), "torgb" if last else None, 1.0)


def _zoo_options(source: ForeignState, config: Any) -> dict:
    """What the pickled config says beyond the tensors: the output activation, the slope, equalized lr; refusals."""
    get = config.get if config is not None else (lambda name, default=None: default)
    if get("categoryVectorDim", 0):
        raise source.error(f"an AC-GAN PGAN (categoryVectorDim {get('categoryVectorDim')}, attribKeysOrder "
                           f"{get('attribKeysOrder')}): conditional zoo generators are not supported yet")
    alpha = float(get("alpha", 0) or 0)
    if alpha != 0:
        raise source.error(f"config.alpha is {alpha:g}: saved while fading in its last scale; dse reads finished "
                           "generators (alpha 0)", hint="convert a checkpoint saved after the fade-in")
    loss = get("lossCriterion", "WGANGP")
    return {"final_tanh": loss in ZOO_TANH_LOSSES,
            "lrelu_slope": float(get("leakyReluLeak", 0.2)), "equalized": bool(get("equalizedlR", True))}


def load_ganzoo(path: Path) -> Generator:
    found = _zoo_checkpoint(path)
    if found is None:
        raise CheckpointError(path, f"not a pytorch_GAN_zoo PGAN checkpoint: found {describe(torch_load(path, ZOO_GLOBALS))}, "
                                    "expected a dict with 'config' and 'avgG' or 'netG' holding formatLayer / "
                                    "groupScale0 / scaleLayers / toRGBLayers tensors")
    where, src, zoo_config = found
    source = ForeignState(path, where, src)
    options = _zoo_options(source, zoo_config)
    num_scales = max(layer_count(src, r"scaleLayers\.(\d+)\.") + 1, layer_count(src, r"toRGBLayers\.(\d+)\."))
    _zoo_plan(source, num_scales, options.pop("equalized"))
    sizes = source.sizes()
    source.verify(sizes, "a PGAN generator")
    if sizes["c4x16"] != 16 * sizes["c4"]:
        raise source.error(f"formatLayer.module.weight has {sizes['c4x16']} outputs; expected 16 x {sizes['c4']} "
                           "(a 4x4 map of groupScale0's width)")
    config = _config(source, sizes, num_scales, z_dim=sizes["z"], **options)
    return _build(path, config, source.converted())
