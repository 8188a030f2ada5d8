"""Readers for the DSE authors' encoder checkpoints (disanda/DSE ``model/E/``).

Their training scripts write ``torch.save(E.state_dict())`` as ``E_model_ep*_iter*.pth``.

* ``E.py`` ``BE`` serves their StyleGAN1 and StyleGAN2 encoders, so the file does not say
  which generator it inverts (the caller does): :func:`load_authors_encoder`.
* ``E_PG.py`` ``BE(..., pggan=True)``, their PGGAN encoder: no style heads, blocks that sum
  their paths before one activation (our ``block="sum"``), and ``new_final``, a linear layer
  from the flattened last map to z': :func:`load_authors_pg_encoder`. Their ``forward``
  computes z' and returns ``(0, 0)``; ours returns z'. ``new_final`` takes 8192 features
  whatever the widths, so the image size follows from it and the last block's width.
* ``E_BIG.py`` ``BE(..., biggan=True)``, their BigGAN encoder: :mod:`.authors_big`.

The architecture (startf, maxf, layer_count, latent size) is read from tensor shapes. Their
equalized-lr layers run in "implicit" mode and store *effective* weights, while ours store
``effective / weight_gain``; every weight is rescaled here. Both downsample by average
pooling (``fused_scale=False``).
"""

from __future__ import annotations

import math
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
_EXPECTED_PG = "a state dict of E_PG's BE (FromRGB.from_rgb.weight, decode_block.N.conv_1.weight, new_final.weight, ...)"
_NEW_FINAL = ("new_final.weight", "new_final.bias")


def _authors_state(path: Path) -> Mapping | None:
    try:
        state = torch_load(path)
    except Exception:
        return None
    if isinstance(state, Mapping) and "FromRGB.from_rgb.weight" in state and "decode_block.0.conv_1.weight" in state:
        return state
    return None


def sniff_authors_encoder(path: Path) -> bool:
    """Cheap and never raising: does ``path`` hold a BE state dict (``E.py``: style heads)?"""
    state = _authors_state(path)
    return state is not None and "decode_block.0.inver_mod1.weight" in state


def sniff_authors_pg_encoder(path: Path) -> bool:
    """Cheap and never raising: does ``path`` hold the authors' PGGAN encoder (``E_PG.py``: ``new_final``)?"""
    state = _authors_state(path)
    return state is not None and "new_final.weight" in state and "decode_block.0.inver_mod1.weight" not in state


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


def _split_blocks(path: Path, state, heads: tuple[str, ...] = (), expected: str = _EXPECTED,
                  kind: str = "") -> list[dict[str, torch.Tensor]]:
    """``decode_block.{i}.*`` grouped per block, checking that nothing but FromRGB and ``heads`` is in the file.

    ``kind`` names the encoder in messages ("PGGAN ", "BigGAN "; "" for BE)."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, f"not a DSE encoder checkpoint: found {describe(state)}, expected {expected}")
    blocks: dict[int, dict[str, torch.Tensor]] = {}
    other = []
    for key, value in state.items():
        match = _BLOCK_KEY.fullmatch(key)
        if match:
            blocks.setdefault(int(match.group(1)), {})[match.group(2)] = value
        elif key not in _FROM_RGB + heads:
            other.append(key)
    if any(k not in state for k in _FROM_RGB + heads) or not blocks:
        raise CheckpointError(path, f"not a DSE encoder checkpoint: found {describe(state)}, expected {expected}",
                              hint=_other_class(state, heads))
    if other:
        raise CheckpointError(path, f"unexpected tensors for the authors' {kind}encoder: {preview(other)}",
                              hint=_other_class(state, heads))
    if sorted(blocks) != list(range(len(blocks))):
        raise CheckpointError(path, f"decode_block indices {sorted(blocks)} are not 0..{len(blocks) - 1}")
    return [blocks[i] for i in range(len(blocks))]


def _other_class(state: Mapping, heads: tuple[str, ...]) -> str | None:
    """A hint where ``state`` holds another of the authors' encoder classes than the one being read."""
    for head, name, gan in (("new_final.weight", "PGGAN encoder (E_PG)", "pggan"),
                            ("new_final_1.weight", "BigGAN encoder (E_BIG)", "biggan")):
        if head in state and head not in heads:
            return f"it is the authors' {name}: read it with --gan {gan}"
    return None


def _infer_config(path: Path, state, blocks: list[dict[str, torch.Tensor]], family: str) -> EncoderConfig:
    """layer_count from the blocks, widths from conv shapes, latent size from the style heads."""
    startf, img_channels = _from_rgb(path, state)
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


def _from_rgb(path: Path, state: Mapping[str, torch.Tensor]) -> tuple[int, int]:
    """(startf, image channels) of FromRGB, the same 1x1 conv in every authors' encoder, its shapes checked."""
    rgb = state["FromRGB.from_rgb.weight"]
    startf, img_channels = rgb.shape[0], rgb.shape[1]
    check_tensors(path, "FromRGB.from_rgb does not match BE's layout",
                  {"weight": tuple(rgb.shape), "bias": tuple(state["FromRGB.from_rgb.bias"].shape)},
                  {"weight": (startf, img_channels, 1, 1), "bias": (startf,)})
    return startf, img_channels


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
        _take_convs(pairs, ours, block, 2 if "conv_2.weight" in block else 1)
        if "conv_3.weight" in block:
            pairs[f"{ours}.skip.weight"] = block["conv_3.weight"]
            pairs[f"{ours}.skip.bias"] = block["conv_3.bias"]
    return _to_stored(pairs, encoder)


def _take_convs(pairs: dict, ours: str, block: Mapping[str, torch.Tensor], count: int) -> None:
    """Their conv_1 (, conv_2) with bias_k and noise_weight_k as our conv0 (, conv1); both BE classes name them so."""
    for j in range(count):
        pairs[f"{ours}.conv{j}.conv.weight"] = block[f"conv_{j + 1}.weight"]
        pairs[f"{ours}.conv{j}.conv.bias"] = block[f"bias_{j + 1}"].flatten()
        pairs[f"{ours}.conv{j}.noise_strength"] = block[f"noise_weight_{j + 1}"].flatten()


def _to_stored(pairs: Mapping[str, torch.Tensor], encoder: Encoder) -> dict[str, torch.Tensor]:
    """float32 copies; equalized-lr weights divided by the run-time ``weight_gain`` they will be multiplied by."""
    out = {}
    for key, value in pairs.items():
        value = value.detach().to(torch.float32)
        gain = getattr(encoder.get_submodule(key.rsplit(".", 1)[0]), "weight_gain", None)
        if key.endswith(".weight") and gain is not None:
            value = value / gain
        out[key] = value.contiguous()
    return out


def load_authors_pg_encoder(path: str | Path, *, family: str) -> Encoder:
    """Build our :class:`Encoder` (``block="sum"``, a z head) from the authors' PGGAN encoder, in eval mode (noise off)."""
    path = Path(path)
    state = torch_load(path)
    blocks = _split_blocks(path, state, _NEW_FINAL, _EXPECTED_PG, "PGGAN ")
    config = _infer_pg_config(path, state, blocks, family)
    encoder = Encoder(config)
    load_state(encoder, _convert_pg(state, blocks, encoder), path)
    encoder.source = {"reader": "dse-authors/E_PG", "file": path.name, "startf": config.channels[config.resolution],
                      "maxf": max(config.channels.values()), "layer_count": len(blocks), "latent_size": config.z_dim}
    return encoder.eval()


def _infer_pg_config(path: Path, state, blocks: list[dict[str, torch.Tensor]], family: str) -> EncoderConfig:
    """Widths from the convs; z size from new_final; the image size from new_final's input and the last width."""
    startf, img_channels = _from_rgb(path, state)
    widths, width = [], startf
    for i, block in enumerate(blocks):
        outputs = _shape(path, block, i, "noise_weight_2")[1]
        last = i == len(blocks) - 1
        check_tensors(path, f"decode_block.{i} does not match E_PG's BEBlock layout",
                      {k: tuple(v.shape) for k, v in block.items()}, _pg_block_shapes(width, outputs, last))
        widths.append(width)
        width = outputs
    latent, features = _linear(path, state, "new_final")
    side = _final_side(path, "new_final", features, widths[-1])
    resolution = side << (len(blocks) - 1)
    channels = {resolution >> i: w for i, w in enumerate(widths)}
    return EncoderConfig(family=family, resolution=resolution, channels=channels, img_channels=img_channels,
                         noise=True, norm="instance", downsample="avgpool", block="sum", final_resolution=side,
                         z_head=(latent,))


def _linear(path: Path, state: Mapping[str, torch.Tensor], name: str) -> tuple[int, int]:
    """(out, in) features of the linear layer ``name`` (weight and bias), its shapes checked."""
    weight, bias = state[f"{name}.weight"], state[f"{name}.bias"]
    if weight.ndim != 2 or tuple(bias.shape) != (weight.shape[0],):
        raise CheckpointError(path, f"{name} is {tuple(weight.shape)} with bias {tuple(bias.shape)}; "
                                    "expected a linear layer (out, in) with bias (out,)")
    return weight.shape[0], weight.shape[1]


def _final_side(path: Path, name: str, features: int, width: int) -> int:
    """The last map's size, from the features the head ``name`` reads and the last block's width."""
    side = math.isqrt(features // width) if features % width == 0 else 0
    if side < 1 or side * side * width != features or side & (side - 1) or side < 4:
        raise CheckpointError(path, f"{name} reads {features} features, which is no square map of the last "
                                    f"block's {width} channels at 4x4 or more")
    return side


def _pg_block_shapes(inputs: int, outputs: int, last: bool) -> dict[str, tuple[int, ...]]:
    """Every tensor of E_PG's ``BEBlock(inputs, outputs, has_second_conv=not last)`` and its shape.

    The last block keeps tensors it never uses (its noise_weight_2 / bias_2, and conv_3 / instance_norm_3 where its
    width would change); they are accepted and dropped.
    """
    shapes = {
        "noise_weight_1": (1, inputs, 1, 1), "bias_1": (1, inputs, 1, 1),
        "noise_weight_2": (1, outputs, 1, 1), "bias_2": (1, outputs, 1, 1),
        "conv_1.weight": (inputs, inputs, 3, 3),
    }
    if not last:
        shapes["conv_2.weight"] = (outputs, inputs, 3, 3)
    if inputs != outputs:
        shapes.update({"conv_3.weight": (outputs, inputs, 1, 1), "conv_3.bias": (outputs,),
                       "instance_norm_3.weight": (outputs,), "instance_norm_3.bias": (outputs,)})
    return shapes


def _convert_pg(state: Mapping[str, torch.Tensor], blocks: list[dict[str, torch.Tensor]], encoder: Encoder) -> dict[str, torch.Tensor]:
    """Rename to our keys, rescaling effective weights; drops what E_PG stores without using."""
    pairs = {"from_rgb.conv.weight": state["FromRGB.from_rgb.weight"], "from_rgb.conv.bias": state["FromRGB.from_rgb.bias"],
             "z_head.fc0.weight": state["new_final.weight"], "z_head.fc0.bias": state["new_final.bias"]}
    for i, (res, block) in enumerate(zip(reversed(encoder.config.resolutions), blocks)):
        ours = f"b{res}"
        last = i == len(blocks) - 1
        _take_convs(pairs, ours, block, 1 if last else 2)
        if not last and "conv_3.weight" in block:
            pairs[f"{ours}.skip.weight"] = block["conv_3.weight"]
            pairs[f"{ours}.skip.bias"] = block["conv_3.bias"]
            pairs[f"{ours}.skip_norm.weight"] = block["instance_norm_3.weight"]
            pairs[f"{ours}.skip_norm.bias"] = block["instance_norm_3.bias"]
    return _to_stored(pairs, encoder)
