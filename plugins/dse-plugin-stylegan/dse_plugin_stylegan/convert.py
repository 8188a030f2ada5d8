"""Readers for the StyleGAN (v1) checkpoint formats users hold.

Each reader declares, for the layer counts found in the file, every tensor of its generator under the file's
own name with the shape it must have and where it goes in ours (``dse_core.ForeignState``). Sizes (z/w, the
mapping's width, the width at each resolution, image channels) are read from the shapes by majority, so one
damaged tensor is reported by its own name; nothing is typed by hand per architecture.

* genforce ``StyleGANGenerator``: ``{"generator_smooth" or "generator": state_dict, ...}``, or its runner's training
  checkpoint ``{"models": {"generator_smooth": ..., "generator": ..., "discriminator": ...}, "optimizers": ...}``.
  Equalized-lr storage as ours; the mapping's lrelu has no gain there, so its biases are divided by sqrt(2) (same
  function).
* the DSE authors' StyleGAN1 (``model/stylegan1/net.py``): a folder of ``Gs_dict.pth`` (synthesis),
  ``Gm_dict.pth`` (mapping) and ``center_tensor.pt`` (the per-layer truncation target, num_ws x w_dim). Their
  lreq layers run in implicit mode: the stored weights are the effective ones, so each is divided by our
  run-time gain. No noise is stored (their generator draws it on every forward): our const noise maps are zeros.

What neither format says is taken at the codes' defaults: blocks at >= 128 px use the fused up-conv
(``fused_up_resolution`` 128: genforce's ``fused_scale='auto'``, the authors' code), no final tanh (genforce's
``final_tanh`` off), and ``mapping_lr_mul`` 0.01. For the authors' files the lr multiplier is only a storage scale
(their implicit lreq stores the effective weights); genforce's ``DenseBlock`` multiplies the stored weight and bias
by ``lr_mul`` at run time, as ours does, so a genforce file trained with another ``mapping_lr_mul`` is read with
the wrong mapping, and nothing in the file shows it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import torch

from dse_core import CheckpointError, ForeignState, describe, find_state_dict, layer_count, load_state, separable_filter, torch_load

from .model import Generator, StyleGANConfig

GENFORCE_KEYS = ("generator_smooth", "generator")
GENFORCE_CUTOFF = 8  # official StyleGAN's truncation_cutoff
AUTHORS_FILES = ("Gs_dict.pth", "Gm_dict.pth", "center_tensor.pt")  # synthesis, mapping, truncation centre
FUSED_UP_RESOLUTION = 128  # genforce ('auto') and the DSE authors: blocks at >= 128 px use the fused up-conv
MAPPING_LR_MUL = 0.01


def _first(t: torch.Tensor) -> torch.Tensor:
    return t[0]


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1)


def _style_bias(t: torch.Tensor) -> torch.Tensor:
    """(scale, shift) biases: the official ``x * (1 + scale) + shift`` folded into our affine (``x * scale + shift``)."""
    t = t.reshape(-1).clone()
    t[: t.numel() // 2] += 1
    return t


def _mapping(source: ForeignState, layers: int, theirs, convert_weight=lambda t: t, convert_bias=lambda t: t) -> None:
    """``layers`` fully connected layers z -> h -> ... -> w, weights (out, in); ``theirs(i)`` is layer i's prefix."""
    features = ["z"] + ["h"] * (layers - 1) + ["w"]
    for i in range(layers):
        source.take(f"{theirs(i)}.weight", (features[i + 1], features[i]), f"mapping.fc{i}.weight", convert_weight)
        source.take(f"{theirs(i)}.bias", (features[i + 1],), f"mapping.fc{i}.bias", convert_bias)


def _blur(source: ForeignState, names: list[str]) -> tuple[float, ...]:
    """The blur filter the stored (C, 1, k, k) kernels ``names`` all hold, as its 1-D factor with ends read 1."""
    names = source.present(names)
    if not names:
        return (1.0, 2.0, 1.0)
    first = source.state[names[0]][0, 0].double()
    for name in names[1:]:
        if not torch.allclose(source.state[name].double(), first.expand_as(source.state[name]), atol=1e-6):
            raise source.error(f"{name} holds another blur kernel than {names[0]}; dse reads one blur for all layers")
    try:
        blur = separable_filter(first.flip(0, 1))  # both codes correlate with the kernel: convolve with its flip
    except ValueError:
        raise source.error(f"{names[0]} is not a separable blur kernel (an outer product f x f), which dse needs") from None
    if len(blur) % 2 == 0 or abs(first.sum().item() - 1) > 1e-4:
        raise source.error(f"{names[0]} is not an odd-sized blur kernel summing to 1 (sum {first.sum().item():g}); "
                           "dse reads StyleGAN's size-keeping blur")
    return blur


def _config(source: ForeignState, sizes: Mapping[str, int], num_up: int, mapping_layers: int, **fields) -> StyleGANConfig:
    hidden = sizes.get("h", sizes["w"])
    try:
        return StyleGANConfig(resolution=4 * 2**num_up, channels={4 * 2**j: sizes[f"c{4 * 2**j}"] for j in range(num_up + 1)},
                              z_dim=sizes["z"], w_dim=sizes["w"], mapping_layers=mapping_layers,
                              mapping_features=None if hidden == sizes["w"] else hidden, img_channels=sizes["img"],
                              fused_up_resolution=FUSED_UP_RESOLUTION, **fields)
    except (KeyError, ValueError) as exc:
        raise source.error(f"cannot build a StyleGAN generator from it ({exc})") from None


# -- genforce -----------------------------------------------------------------------

def _genforce_state(path: Path) -> tuple[str, Mapping[str, torch.Tensor]] | None:
    """(where the generator is in the file, e.g. "models.generator_smooth"; its state dict), or None."""
    found = find_state_dict(torch_load(path), GENFORCE_KEYS)
    # StyleGAN2's genforce generator has synthesis.early_layer.const, PGGAN's no const and no style layers
    if found is None or not {"synthesis.layer0.const", "synthesis.layer0.apply_noise.weight"} <= set(found[1]):
        return None
    return found


def sniff_genforce(path: Path) -> bool:
    return path.is_file() and _genforce_state(path) is not None


def _genforce_plan(source: ForeignState, mapping_layers: int, num_up: int) -> None:
    """Every tensor of genforce's StyleGANGenerator (const input, spatial noise, repeat_w)."""
    _mapping(source, mapping_layers, lambda i: f"mapping.dense{i}", convert_bias=lambda t: t / math.sqrt(2))
    source.take("truncation.w_avg", ("w",), "mapping.w_avg")
    source.check("synthesis.lod", ())
    source.take("synthesis.layer0.const", (1, "c4", 4, 4), "synthesis.b4.const", _first)

    def layer(ours: str, theirs: str, c_in: str | None, c: str, res: int) -> None:
        if c_in is not None:
            source.take(f"{theirs}.weight", (c, c_in, 3, 3), f"{ours}.weight")
        source.take(f"{theirs}.bias", (c,), f"{ours}.bias")
        source.take(f"{theirs}.apply_noise.weight", (c,), f"{ours}.noise_strength")
        source.take(f"{theirs}.apply_noise.noise", (1, 1, res, res), f"{ours}.noise_const", lambda t: t[0, 0])
        source.take(f"{theirs}.style.weight", (f"2{c}", "w"), f"{ours}.affine.weight")
        source.take(f"{theirs}.style.bias", (f"2{c}",), f"{ours}.affine.bias", _style_bias)

    for j in range(num_up + 1):
        res, c = 4 * 2**j, f"c{4 * 2**j}"
        layer(f"synthesis.b{res}.conv0", f"synthesis.layer{2 * j}", f"c{res // 2}" if j else None, c, res)
        if j:
            source.check(f"synthesis.layer{2 * j}.blur.kernel", (c, 1, "k", "k"))
        layer(f"synthesis.b{res}.conv1", f"synthesis.layer{2 * j + 1}", c, c, res)
        # only the full-resolution output is used (lod 0); the others are progressive-growing heads
        ours = "synthesis.torgb" if j == num_up else None
        source.take(f"synthesis.output{j}.weight", ("img", c, 1, 1), ours and f"{ours}.weight")
        source.take(f"synthesis.output{j}.bias", ("img",), ours and f"{ours}.bias")


def _check_genforce(source: ForeignState, sizes: Mapping[str, int], num_up: int) -> None:
    """Refuse what the plan cannot express, each with its own message (before the generic tensor check)."""
    src = source.state
    if "mapping.label_weight" in src:
        raise source.error("conditional genforce StyleGAN generators (mapping.label_weight) are not supported yet")
    w_avg = src.get("truncation.w_avg")
    if isinstance(w_avg, torch.Tensor) and "w" in sizes and w_avg.numel() == 2 * (num_up + 1) * sizes["w"]:
        raise source.error("genforce generators with repeat_w=False (one w per layer in truncation.w_avg) "
                           "are not supported")
    lod = src.get("synthesis.lod")
    if isinstance(lod, torch.Tensor) and lod.numel() == 1 and lod.item() != 0:
        raise source.error(f"synthesis.lod is {lod.item():g}: a snapshot in the middle of progressive growing, not a "
                           "full-resolution generator", hint="convert a snapshot taken at the final resolution (lod 0)")


def load_genforce(path: Path) -> Generator:
    found = _genforce_state(path)
    if found is None:
        raise CheckpointError(path, f"not a genforce StyleGAN checkpoint: found {describe(torch_load(path))}, expected "
                                    "'generator_smooth' or 'generator' (at the top or under 'models') holding "
                                    "mapping.denseN / synthesis.layerN tensors with synthesis.layer0.const")
    where, src = found
    source = ForeignState(path, where, src)
    mapping_layers = layer_count(src, r"mapping\.dense(\d+)\.") or 1
    num_up = max((layer_count(src, r"synthesis\.layer(\d+)\.") + 1) // 2, layer_count(src, r"synthesis\.output(\d+)\.")) - 1
    _genforce_plan(source, mapping_layers, num_up)
    sizes = source.sizes()
    _check_genforce(source, sizes, num_up)
    source.verify(_doubled(sizes), "a StyleGAN generator")
    blur = _blur(source, [f"synthesis.layer{2 * j}.blur.kernel" for j in range(1, num_up + 1)])
    config = _config(source, sizes, num_up, mapping_layers, blur_filter=blur, truncation_cutoff=GENFORCE_CUTOFF)
    generator = Generator(config)
    load_state(generator, source.converted(), path)
    return generator.eval()


def _doubled(sizes: Mapping[str, int]) -> dict[str, int]:
    """``sizes`` plus "2c{res}" = twice each width: the style layers' (scale, shift) outputs."""
    return {**sizes, **{f"2{k}": 2 * v for k, v in sizes.items() if k.startswith("c")}}


# -- the DSE authors' StyleGAN1 ----------------------------------------------------------

def _authors_folder(path: Path) -> Path | None:
    """The folder of the authors' three files that ``path`` is (or is one of), or None."""
    if path.is_dir():
        return path if any((path / name).is_file() for name in AUTHORS_FILES) else None
    if path.name in AUTHORS_FILES:
        return path.parent
    return None


def sniff_authors(path: Path) -> bool:
    folder = _authors_folder(path)
    if folder is None:
        return False
    if path.is_dir() or path.name == "center_tensor.pt":  # names only: the tensor file has no keys to look at
        return True
    state = torch_load(path)
    key = "decode_block.0.style_1.weight" if path.name == "Gs_dict.pth" else "block_1.fc.weight"
    return isinstance(state, Mapping) and key in state


def _authors_files(path: Path) -> dict[str, Path]:
    folder = _authors_folder(path)
    if folder is None:
        raise CheckpointError(path, f"not the DSE authors' StyleGAN1: expected a folder holding {', '.join(AUTHORS_FILES)} "
                                    "or one of those files")
    files = {name: folder / name for name in AUTHORS_FILES}
    missing = [name for name, file in files.items() if not file.is_file()]
    if missing:
        raise CheckpointError(folder / missing[0], f"is missing: the DSE authors' StyleGAN1 is {', '.join(AUTHORS_FILES)} "
                                                   f"in one folder, and {folder} lacks {' and '.join(missing)}",
                              hint=f"copy {' and '.join(missing)} from the same model into {folder}")
    return files


def _state(path: Path, what: str) -> Mapping[str, torch.Tensor]:
    state = torch_load(path)
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, f"expected the authors' {what} state dict (torch.save(state_dict)), "
                                    f"found {describe(state)}")
    return state


def _lreq(gain) -> callable:
    """Implicit lreq stores the effective weight; ours stores it over the run-time gain (``gain(t)``, from its shape)."""
    return lambda t: t / gain(t)


def _authors_synthesis_plan(source: ForeignState, num_up: int) -> None:
    """Every tensor of the authors' Generator (``decode_block.i``, ``to_rgb.i``) for num_up + 1 blocks."""
    source.take("const", (1, "c4", 4, 4), "synthesis.b4.const", _first)
    conv_gain = _lreq(lambda t: math.sqrt(2) / math.sqrt(t.shape[1] * 9))

    def epilogue(ours: str, theirs: str, k: int, c: str) -> None:
        source.take(f"{theirs}.noise_weight_{k}", (1, c, 1, 1), f"{ours}.noise_strength", _flat)
        source.take(f"{theirs}.bias_{k}", (1, c, 1, 1), f"{ours}.bias", _flat)
        source.take(f"{theirs}.style_{k}.weight", (f"2{c}", "w"), f"{ours}.affine.weight",
                    lambda t: t * math.sqrt(t.shape[1]))
        source.take(f"{theirs}.style_{k}.bias", (f"2{c}",), f"{ours}.affine.bias", _style_bias)

    for j in range(num_up + 1):
        res, c, block = 4 * 2**j, f"c{4 * 2**j}", f"decode_block.{j}"
        ours = f"synthesis.b{res}"
        if j and res >= FUSED_UP_RESOLUTION:  # ln.ConvTranspose2d: (in, out, 3, 3)
            source.take(f"{block}.conv_1.weight", (f"c{res // 2}", c, 3, 3), f"{ours}.conv0.weight",
                        lambda t: t.transpose(0, 1) / (math.sqrt(2) / math.sqrt(t.shape[0] * 9)))
        elif j:
            source.take(f"{block}.conv_1.weight", (c, f"c{res // 2}", 3, 3), f"{ours}.conv0.weight", conv_gain)
        source.check(f"{block}.blur.weight", (c, 1, 3, 3))
        epilogue(f"{ours}.conv0", block, 1, c)
        source.take(f"{block}.conv_2.weight", (c, c, 3, 3), f"{ours}.conv1.weight", conv_gain)
        epilogue(f"{ours}.conv1", block, 2, c)
        # only to_rgb[lod] at full resolution is used; the others are progressive-growing heads
        rgb = "synthesis.torgb" if j == num_up else None
        source.take(f"to_rgb.{j}.to_rgb.weight", ("img", c, 1, 1), rgb and f"{rgb}.weight",
                    lambda t: t * math.sqrt(t.shape[1]))
        source.take(f"to_rgb.{j}.to_rgb.bias", ("img",), rgb and f"{rgb}.bias")


def load_authors(path: Path) -> Generator:
    files = _authors_files(path)
    gs, gm = _state(files["Gs_dict.pth"], "Generator"), _state(files["Gm_dict.pth"], "Mapping")
    synthesis = ForeignState(files["Gs_dict.pth"], "Generator", gs)
    num_up = max(layer_count(gs, r"decode_block\.(\d+)\."), layer_count(gs, r"to_rgb\.(\d+)\.")) - 1
    _authors_synthesis_plan(synthesis, num_up)
    sizes = synthesis.sizes()
    synthesis.verify(_doubled(sizes), "the authors' StyleGAN1 Generator")

    mapping = ForeignState(files["Gm_dict.pth"], "Mapping", gm)
    mapping_layers = max(layer_count(gm, r"block_(\d+)\.") - 1, 1)  # block_1 .. block_8
    lr = MAPPING_LR_MUL  # implicit lreq: effective = ours * lr / sqrt(fan_in) * sqrt(2) (our lrelu gain)
    _mapping(mapping, mapping_layers, lambda i: f"block_{i + 1}.fc",
             convert_weight=lambda t: t * math.sqrt(t.shape[1]) / (lr * math.sqrt(2)),
             convert_bias=lambda t: t / (lr * math.sqrt(2)))
    mapping_sizes = mapping.sizes()
    mapping.verify(mapping_sizes, "the authors' StyleGAN1 Mapping")
    if mapping_sizes["w"] != sizes["w"]:
        raise mapping.error(f"its w has {mapping_sizes['w']} values but Gs_dict.pth's style layers take {sizes['w']}",
                            hint="Gs_dict.pth and Gm_dict.pth must come from the same model")

    blur = _blur(synthesis, [f"decode_block.{j}.blur.weight" for j in range(1, num_up + 1)])
    num_ws = 2 * (num_up + 1)
    config = _config(synthesis, {**sizes, "z": mapping_sizes["z"], **({"h": mapping_sizes["h"]} if "h" in mapping_sizes else {})},
                     num_up, mapping_layers, blur_filter=blur, w_avg_per_layer=True, truncation_cutoff=num_ws // 2,
                     mapping_lr_mul=lr)
    center = torch_load(files["center_tensor.pt"])
    if not isinstance(center, torch.Tensor) or tuple(center.shape) != (num_ws, sizes["w"]):
        found = tuple(center.shape) if isinstance(center, torch.Tensor) else describe(center)
        raise CheckpointError(files["center_tensor.pt"], f"holds {found}; expected the truncation centre, one w per layer "
                                                         f"({num_ws}, {sizes['w']}) for this {config.resolution} px generator",
                              hint="center_tensor.pt must come from the same model as Gs_dict.pth")
    state = {**synthesis.converted(), **mapping.converted(), "mapping.w_avg": center.float()}
    generator = Generator(config)
    for name, buffer in generator.state_dict().items():
        if name.endswith(".noise_const"):  # none stored: their noise is drawn per forward; zeros = noise off
            state[name] = torch.zeros_like(buffer)
    load_state(generator, state, files["Gs_dict.pth"])
    return generator.eval()
