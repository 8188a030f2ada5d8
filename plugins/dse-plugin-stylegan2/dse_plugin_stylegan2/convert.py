"""Readers for the StyleGAN2 checkpoint formats users hold.

Each reader infers the architecture (resolution, channel plan, z/w sizes, mapping
depth, filter) from tensor names and shapes, renames the tensors to ours, and
loads them with a strict key-and-shape check. Nothing here is typed by hand.

* rosinality/stylegan2-pytorch: ``{"g_ema": state_dict, "latent_avg": w}``, or a
  training checkpoint (``g``, ``d``, ``g_ema``, optimizer states, ``args``).
* genforce: ``{"generator_smooth" or "generator": state_dict, ...}``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Mapping

import torch

from dse_core.checkpoints import describe, state_dict_in, torch_load
from dse_core.errors import CheckpointError
from dse_core.hub import load_state

from .model import Generator, StyleGAN2Config

# rosinality's training script pickles its argparse.Namespace into every checkpoint.
ROSINALITY_SAFE_GLOBALS = (argparse.Namespace,)
GENFORCE_KEYS = ("generator_smooth", "generator")
W_AVG_SAMPLES = 10_000  # samples for w_avg when a checkpoint does not store it


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state if (m := regex.fullmatch(k))})


def _filter_1d(kernel_2d: torch.Tensor) -> tuple[float, ...]:
    """Recover the separable filter's 1-D factor from a stored 2-D kernel, scaled so its ends read 1."""
    row = kernel_2d.sum(dim=1).double()
    row = row / row[0]
    if not torch.allclose(torch.outer(row, row) / torch.outer(row, row).sum(), (kernel_2d / kernel_2d.sum()).double(), atol=1e-5):
        raise ValueError("the stored blur kernel is not separable")
    return tuple(round(v, 6) for v in row.tolist())


# -- rosinality -------------------------------------------------------------------

def _rosinality_state(path: Path) -> tuple[Mapping[str, torch.Tensor], torch.Tensor | None] | None:
    ckpt = torch_load(path, ROSINALITY_SAFE_GLOBALS)
    state = state_dict_in(ckpt, ["g_ema"])
    if state is None or "input.input" not in state or "style.1.weight" not in state:
        return None
    latent_avg = ckpt.get("latent_avg")
    return state, latent_avg if isinstance(latent_avg, torch.Tensor) else None


def sniff_rosinality(path: Path) -> bool:
    return path.is_file() and _rosinality_state(path) is not None


def load_rosinality(path: Path) -> Generator:
    found = _rosinality_state(path)
    if found is None:
        raise CheckpointError(path, f"not a rosinality checkpoint: found {describe(torch_load(path, ROSINALITY_SAFE_GLOBALS))}, "
                                    "expected a dict with 'g_ema' holding style.N / input.input / convs.N tensors")
    src, latent_avg = found
    try:
        n_mlp = _count(src, r"style\.(\d+)\.weight")
        num_up = _count(src, r"to_rgbs\.(\d+)\.conv\.weight")
        resolution = 4 * 2**num_up
        w_dim = src["style.1.weight"].shape[0]
        channels = {4: src["input.input"].shape[1]}
        for j in range(num_up):
            channels[8 * 2**j] = src[f"convs.{2 * j}.conv.weight"].shape[1]
        blur = src.get("convs.0.conv.blur.kernel")
        config = StyleGAN2Config(
            resolution=resolution, channels=channels, z_dim=src["style.1.weight"].shape[1], w_dim=w_dim,
            mapping_layers=n_mlp, mapping_lr_mul=0.01,
            resample_filter=_filter_1d(blur) if blur is not None else (1.0, 3.0, 3.0, 1.0),
        )
    except (KeyError, ValueError) as exc:
        raise CheckpointError(path, f"cannot infer the StyleGAN2 architecture from g_ema ({exc})") from None

    dst: dict[str, torch.Tensor] = {}
    for i in range(n_mlp):
        dst[f"mapping.fc{i}.weight"] = src[f"style.{i + 1}.weight"]
        dst[f"mapping.fc{i}.bias"] = src[f"style.{i + 1}.bias"]
    dst["synthesis.b4.const"] = src["input.input"][0]

    def layer(ours: str, theirs: str, noise: int, flip: bool = False) -> None:
        weight = src[f"{theirs}.conv.weight"][0]
        dst[f"{ours}.weight"] = weight.flip(2, 3) if flip else weight  # rosinality stores up-conv kernels flipped
        dst[f"{ours}.affine.weight"] = src[f"{theirs}.conv.modulation.weight"]
        dst[f"{ours}.affine.bias"] = src[f"{theirs}.conv.modulation.bias"]
        dst[f"{ours}.noise_strength"] = src[f"{theirs}.noise.weight"].reshape([])
        dst[f"{ours}.bias"] = src[f"{theirs}.activate.bias"]
        dst[f"{ours}.noise_const"] = src[f"noises.noise_{noise}"][0, 0]

    def torgb(ours: str, theirs: str) -> None:
        dst[f"{ours}.weight"] = src[f"{theirs}.conv.weight"][0]
        dst[f"{ours}.affine.weight"] = src[f"{theirs}.conv.modulation.weight"]
        dst[f"{ours}.affine.bias"] = src[f"{theirs}.conv.modulation.bias"]
        dst[f"{ours}.bias"] = src[f"{theirs}.bias"].reshape(-1)

    try:
        layer("synthesis.b4.conv1", "conv1", 0)
        torgb("synthesis.b4.torgb", "to_rgb1")
        for j in range(num_up):
            block = f"synthesis.b{8 * 2**j}"
            layer(f"{block}.conv0", f"convs.{2 * j}", 2 * j + 1, flip=True)
            layer(f"{block}.conv1", f"convs.{2 * j + 1}", 2 * j + 2)
            torgb(f"{block}.torgb", f"to_rgbs.{j}")
    except KeyError as exc:
        raise CheckpointError(path, f"g_ema is missing tensor {exc.args[0]!r} for a {resolution}px generator") from None

    generator = Generator(config)
    if latent_avg is None:
        dst["mapping.w_avg"] = _estimate_w_avg(generator, dst, path)
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

def _genforce_state(path: Path) -> Mapping[str, torch.Tensor] | None:
    state = state_dict_in(torch_load(path), GENFORCE_KEYS)
    if state is None or "synthesis.early_layer.const" not in state or "synthesis.layer0.style.weight" not in state:
        return None
    return state


def sniff_genforce(path: Path) -> bool:
    return path.is_file() and _genforce_state(path) is not None


def load_genforce(path: Path) -> Generator:
    src = _genforce_state(path)
    if src is None:
        raise CheckpointError(path, f"not a genforce StyleGAN2 checkpoint: found {describe(torch_load(path))}, expected "
                                    "'generator_smooth' or 'generator' holding mapping.denseN / synthesis.layerN tensors")
    if "mapping.label_weight" in src:
        raise CheckpointError(path, "conditional genforce StyleGAN2 generators (mapping.label_weight) are not supported yet")
    try:
        n_mlp = _count(src, r"mapping\.dense(\d+)\.weight")
        num_layers = _count(src, r"synthesis\.layer(\d+)\.weight")  # 2 * log2(res / 4) + 1 convs
        num_up = (num_layers - 1) // 2
        resolution = 4 * 2**num_up
        outputs = _count(src, r"synthesis\.output(\d+)\.weight")
        if outputs != num_up + 1:
            raise CheckpointError(path, f"only the 'skip' StyleGAN2 architecture is supported; this generator has "
                                        f"{outputs} output layers for {num_up + 1} resolutions ('origin' or 'resnet')")
        w_avg = src["truncation.w_avg"]
        w_dim = src[f"mapping.dense{n_mlp - 1}.weight"].shape[0]
        if w_avg.numel() != w_dim:
            raise CheckpointError(path, "genforce generators with repeat_w=False are not supported")
        channels = {4: src["synthesis.early_layer.const"].shape[1]}
        for j in range(num_up):
            channels[8 * 2**j] = src[f"synthesis.layer{2 * j + 1}.weight"].shape[0]
        kernel = src.get("synthesis.upsample.kernel")
        hidden = src["mapping.dense0.weight"].shape[0] if n_mlp > 1 else w_dim
        config = StyleGAN2Config(
            resolution=resolution, channels=channels, z_dim=src["mapping.dense0.weight"].shape[1], w_dim=w_dim,
            mapping_layers=n_mlp, mapping_features=None if hidden == w_dim else hidden,
            resample_filter=_filter_1d(kernel[0, 0]) if kernel is not None else (1.0, 3.0, 3.0, 1.0),
        )
    except (KeyError, ValueError) as exc:
        raise CheckpointError(path, f"cannot infer the StyleGAN2 architecture ({exc})") from None

    dst: dict[str, torch.Tensor] = {"mapping.w_avg": w_avg, "synthesis.b4.const": src["synthesis.early_layer.const"][0]}
    for i in range(n_mlp):
        dst[f"mapping.fc{i}.weight"] = src[f"mapping.dense{i}.weight"]
        dst[f"mapping.fc{i}.bias"] = src[f"mapping.dense{i}.bias"]

    def layer(ours: str, theirs: str) -> None:
        dst[f"{ours}.weight"] = src[f"{theirs}.weight"]
        dst[f"{ours}.bias"] = src[f"{theirs}.bias"]
        dst[f"{ours}.affine.weight"] = src[f"{theirs}.style.weight"]
        dst[f"{ours}.affine.bias"] = src[f"{theirs}.style.bias"] + 1  # genforce adds the 1 at run time
        if f"{theirs}.noise" in src:
            dst[f"{ours}.noise_strength"] = src[f"{theirs}.noise_strength"].reshape([])
            dst[f"{ours}.noise_const"] = src[f"{theirs}.noise"][0, 0]

    try:
        layer("synthesis.b4.conv1", "synthesis.layer0")
        layer("synthesis.b4.torgb", "synthesis.output0")
        for j in range(num_up):
            block = f"synthesis.b{8 * 2**j}"
            layer(f"{block}.conv0", f"synthesis.layer{2 * j + 1}")
            layer(f"{block}.conv1", f"synthesis.layer{2 * j + 2}")
            layer(f"{block}.torgb", f"synthesis.output{j + 1}")
    except KeyError as exc:
        raise CheckpointError(path, f"missing tensor {exc.args[0]!r} for a {resolution}px genforce StyleGAN2") from None

    generator = Generator(config)
    load_state(generator, dst, path)
    return generator.eval()

