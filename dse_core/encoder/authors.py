"""Reader for the DSE authors' encoder checkpoints (disanda/DSE ``model/E/E.py``, class ``BE``).

Their training scripts write ``torch.save(E.state_dict())`` as ``E_model_ep*_iter*.pth``;
the same ``BE`` class serves their StyleGAN1 and StyleGAN2 encoders, so the file does
not say which generator it inverts (the caller does). The architecture (startf,
maxf, layer_count, latent size) is read from tensor shapes. Their equalized-lr
layers run in "implicit" mode and store *effective* weights, while ours store
``effective / weight_gain``; every weight is rescaled here. Their ``BE`` always
downsamples by average pooling (``fused_scale=False``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import torch

from ..errors import CheckpointError
from ..models.convert import check_tensors, preview
from ..models.files import describe, torch_load
from ..models.format import load_state

from .config import EncoderConfig
from .model import Encoder

_BLOCK_KEY = re.compile(r"decode_block\.(\d+)\.(.+)")
_FROM_RGB = ("FromRGB.from_rgb.weight", "FromRGB.from_rgb.bias")
_EXPECTED = "a state dict of BE (FromRGB.from_rgb.weight, decode_block.N.conv_1.weight, decode_block.N.inver_mod1.weight, ...)"


def sniff_authors_encoder(path: Path) -> bool:
    """Cheap and never raising: does ``path`` hold a BE state dict?"""
    try:
        state = torch_load(path)
    except Exception:
        return False
    return isinstance(state, Mapping) and "FromRGB.from_rgb.weight" in state and "decode_block.0.conv_1.weight" in state


def load_authors_encoder(path: str | Path, *, family: str) -> Encoder:
    """Build our :class:`Encoder` from a BE checkpoint, in eval mode (noise off), for ``family``'s generators.

    A family registers it as one of its ``encoder_formats`` (the file does not say which family it inverts).
    """
    path = Path(path)
    state = torch_load(path)
    blocks = _split_blocks(path, state)
    config = _infer_config(path, state, blocks, family)
    encoder = Encoder(config)
    load_state(encoder, _convert(state, blocks, encoder), path)
    encoder.source = {"reader": "dse-authors/BE", "file": path.name, "startf": config.channels[config.resolution],
                      "maxf": max(config.channels.values()), "layer_count": len(blocks), "latent_size": config.w_dim}
    return encoder.eval()


def _split_blocks(path: Path, state) -> list[dict[str, torch.Tensor]]:
    """``decode_block.{i}.*`` grouped per block, checking that nothing else is in the file."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, f"not a DSE encoder checkpoint: found {describe(state)}, expected {_EXPECTED}")
    blocks: dict[int, dict[str, torch.Tensor]] = {}
    other = []
    for key, value in state.items():
        match = _BLOCK_KEY.fullmatch(key)
        if match:
            blocks.setdefault(int(match.group(1)), {})[match.group(2)] = value
        elif key not in _FROM_RGB:
            other.append(key)
    if any(k not in state for k in _FROM_RGB) or not blocks:
        raise CheckpointError(path, f"not a DSE encoder checkpoint: found {describe(state)}, expected {_EXPECTED}")
    if other:
        raise CheckpointError(path, f"unexpected tensors for a DSE BE encoder: {preview(other)}",
                              hint="the authors' PGGAN/BigGAN encoders (E_PG, E_BIG) are other classes, not read here")
    if sorted(blocks) != list(range(len(blocks))):
        raise CheckpointError(path, f"decode_block indices {sorted(blocks)} are not 0..{len(blocks) - 1}")
    return [blocks[i] for i in range(len(blocks))]


def _infer_config(path: Path, state, blocks: list[dict[str, torch.Tensor]], family: str) -> EncoderConfig:
    """layer_count from the blocks, widths from conv shapes, latent size from the style heads."""
    rgb = state["FromRGB.from_rgb.weight"]
    startf, img_channels = rgb.shape[0], rgb.shape[1]
    check_tensors(path, "FromRGB.from_rgb does not match BE's layout",
                  {"weight": tuple(rgb.shape), "bias": tuple(state["FromRGB.from_rgb.bias"].shape)},
                  {"weight": (startf, img_channels, 1, 1), "bias": (startf,)})
    latent = _shape(path, blocks[0], 0, "inver_mod1.weight")[0]
    resolution = 4 * 2 ** (len(blocks) - 1)
    channels, width = {}, startf
    for i, block in enumerate(blocks):
        outputs = _shape(path, block, i, "noise_weight_2")[1]
        last = i == len(blocks) - 1
        if last and outputs != width:
            raise CheckpointError(path, f"the last block (decode_block.{i}) widens {width} -> {outputs} channels, "
                                        "which BE's forward cannot run (maxf must be reached by then)")
        check_tensors(path, f"decode_block.{i} does not match BE's layout", {k: tuple(v.shape) for k, v in block.items()},
                      _block_shapes(width, outputs, latent, last))
        channels[resolution >> i] = width
        width = outputs
    return EncoderConfig(family=family, resolution=resolution, channels=channels, img_channels=img_channels,
                         w_dim=latent, num_ws=2 * len(blocks), noise=True, norm="instance", downsample="avgpool")


def _block_shapes(inputs: int, outputs: int, latent: int, last: bool) -> dict[str, tuple[int, ...]]:
    """Every tensor of ``BEBlock(inputs, outputs, latent, has_last_conv=not last)`` and its shape."""
    shapes = {
        "noise_weight_1": (1, inputs, 1, 1), "bias_1": (1, inputs, 1, 1),
        "noise_weight_2": (1, outputs, 1, 1), "bias_2": (1, outputs, 1, 1),
        "inver_mod1.weight": (latent, 2 * inputs), "inver_mod1.bias": (latent,),
        "inver_mod2.weight": (latent, 2 * inputs), "inver_mod2.bias": (latent,),
        "conv_1.weight": (inputs, inputs, 3, 3),
    }
    if not last:
        shapes["conv_2.weight"] = (outputs, inputs, 3, 3)
    if inputs != outputs:
        shapes["conv_3.weight"] = (outputs, inputs, 1, 1)
        shapes["conv_3.bias"] = (outputs,)
    return shapes


def _shape(path: Path, block: Mapping[str, torch.Tensor], i: int, name: str) -> tuple[int, ...]:
    if name not in block:
        raise CheckpointError(path, f"decode_block.{i} lacks {name}; expected {_EXPECTED}")
    return tuple(block[name].shape)


def _convert(state: Mapping[str, torch.Tensor], blocks: list[dict[str, torch.Tensor]], encoder: Encoder) -> dict[str, torch.Tensor]:
    """Rename to our keys; effective weights become stored ones (divided by our run-time ``weight_gain``)."""
    pairs = {"from_rgb.conv.weight": state["FromRGB.from_rgb.weight"], "from_rgb.conv.bias": state["FromRGB.from_rgb.bias"]}
    for i, (res, block) in enumerate(zip(reversed(encoder.config.resolutions), blocks)):
        ours = f"b{res}"
        for j, theirs in ((0, "1"), (1, "2")):
            pairs[f"{ours}.style{j}.fc.weight"] = block[f"inver_mod{theirs}.weight"]
            pairs[f"{ours}.style{j}.fc.bias"] = block[f"inver_mod{theirs}.bias"]
        # the last block has no conv_2: its noise_weight_2 / bias_2 are never used by BE, so they are dropped
        convs = ((0, "conv_1", "1"), (1, "conv_2", "2")) if "conv_2.weight" in block else ((0, "conv_1", "1"),)
        for j, conv, k in convs:
            pairs[f"{ours}.conv{j}.conv.weight"] = block[f"{conv}.weight"]
            pairs[f"{ours}.conv{j}.conv.bias"] = block[f"bias_{k}"].flatten()
            pairs[f"{ours}.conv{j}.noise_strength"] = block[f"noise_weight_{k}"].flatten()
        if "conv_3.weight" in block:
            pairs[f"{ours}.skip.weight"] = block["conv_3.weight"]
            pairs[f"{ours}.skip.bias"] = block["conv_3.bias"]
    out = {}
    for key, value in pairs.items():
        value = value.detach().to(torch.float32)
        if key.endswith(".weight"):
            value = value / encoder.get_submodule(key.rsplit(".", 1)[0]).weight_gain
        out[key] = value.contiguous()
    return out
