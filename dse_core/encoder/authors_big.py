"""Reader for the DSE authors' BigGAN encoder (disanda/DSE ``model/E/E_BIG.py`` ``BE(..., biggan=True)``).

Their scripts save ``torch.save(E.state_dict())`` as ``E_model_ep*_iter*.pth``. What the file holds, as ours:

* blocks whose paths sum with no activation after (our ``block="big"``), every norm their
  ``BigGANBatchNorm`` on the condition vector [z, class embedding] of their BigGAN (our
  ``frozen_cbn`` with ``condition="generator"``: ``G.condition_vector(z, c)``);
* the norms' statistics: 51 rows, one per truncation 0, 1/50, ..., 1. Their forward passes
  truncation 0.4, and ``math.modf(0.4 / (1 / 50))`` is exactly ``(0.0, 20.0)``: row 20 is read
  as it is (no interpolation) and the other rows never are, so only row 20 is kept;
* the norms' ``scale`` / ``offset``: spectral-normed linears. The reference runs in eval mode,
  where sigma = u . (W v) from the stored ``weight_u`` / ``weight_v`` (no power iteration): W / sigma
  is baked into plain weights here, exact in eval mode;
* ``new_final_1`` (the flattened last map -> 256, the predicted condition vector) then
  ``new_final_2`` (256 -> 128, z), no activation between: our ``z_head=(256, 128)``. Like
  ``E_PG``'s head it takes 8192 features whatever the widths, so the image size follows from it.

The encoder reads statistics at truncation 0.4 and was trained on samples at 0.4: its
``fixed_latents``. Noise, drawn on every forward in theirs, is off here in eval mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from ..errors import CheckpointError
from ..models.convert import check_tensors
from ..models.files import torch_load
from ..models.format import load_state

from .authors import _authors_state, _final_side, _from_rgb, _linear, _shape, _split_blocks, _take_convs, _to_stored
from .config import EncoderConfig
from .model import Encoder

TRUNCATION = 0.4  # hard-coded in their BE.forward
N_STATS, STATS_ROW = 51, 20  # their BigGANBatchNorm's rows, and the one truncation 0.4 reads
_HEADS = ("new_final_1.weight", "new_final_1.bias", "new_final_2.weight", "new_final_2.bias")
_EXPECTED = ("a state dict of E_BIG's BE (FromRGB.from_rgb.weight, decode_block.N.batch_norm_1.running_means, "
             "new_final_1.weight, new_final_2.weight, ...)")


def sniff_authors_big_encoder(path: Path) -> bool:
    """Cheap and never raising: does ``path`` hold the authors' BigGAN encoder (``E_BIG.py``: ``new_final_1``)?"""
    state = _authors_state(path)
    return (state is not None and "new_final_1.weight" in state
            and "decode_block.0.batch_norm_1.running_means" in state)


def load_authors_big_encoder(path: str | Path, *, family: str = "biggan") -> Encoder:
    """Build our :class:`Encoder` (``block="big"``, a two-layer z head) from the authors' BigGAN encoder, in eval mode."""
    path = Path(path)
    state = torch_load(path)
    blocks = _split_blocks(path, state, _HEADS, _EXPECTED, "BigGAN ")
    config = _infer_config(path, state, blocks, family)
    encoder = Encoder(config)
    load_state(encoder, _convert(path, state, blocks, encoder), path)
    encoder.source = {"reader": "dse-authors/E_BIG", "file": path.name, "startf": config.channels[config.resolution],
                      "maxf": max(config.channels.values()), "layer_count": len(blocks), "stats_row": STATS_ROW}
    return encoder.eval()


def _infer_config(path: Path, state, blocks: list[dict[str, torch.Tensor]], family: str) -> EncoderConfig:
    """Widths from the convs, the condition size from the norms, the heads' sizes and the image size from new_final_*."""
    startf, img_channels = _from_rgb(path, state)
    c_dim = _dim(path, blocks[0], 0, "batch_norm_1.scale.weight_orig", 2, 1)
    widths, width = [], startf
    for i, block in enumerate(blocks):
        outputs = _dim(path, block, i, "noise_weight_2", 4, 1)
        check_tensors(path, f"decode_block.{i} does not match E_BIG's BEBlock layout",
                      {k: tuple(v.shape) for k, v in block.items()},
                      _block_shapes(width, outputs, c_dim, last=i == len(blocks) - 1))
        widths.append(width)
        width = outputs
    c_size, features = _linear(path, state, "new_final_1")
    z_size, z_inputs = _linear(path, state, "new_final_2")
    if z_inputs != c_size:
        raise CheckpointError(path, f"new_final_2 reads {z_inputs} features, new_final_1 gives {c_size}")
    side = _final_side(path, "new_final_1", features, widths[-1])
    resolution = side << (len(blocks) - 1)
    return EncoderConfig(family=family, resolution=resolution, channels={resolution >> i: w for i, w in enumerate(widths)},
                         img_channels=img_channels, noise=True, norm="frozen_cbn", c_dim=c_dim, condition="generator",
                         downsample="avgpool", block="big", final_resolution=side, z_head=(c_size, z_size),
                         fixed_latents={"truncation": TRUNCATION})


def _dim(path: Path, block: Mapping[str, torch.Tensor], i: int, name: str, ndim: int, axis: int) -> int:
    """Size ``axis`` of ``decode_block.{i}.{name}``, which must have ``ndim`` dimensions."""
    shape = _shape(path, block, i, name)
    if len(shape) != ndim:
        raise CheckpointError(path, f"decode_block.{i}.{name} is {shape}; expected {ndim} dimensions ({_EXPECTED})")
    return shape[axis]


def _block_shapes(inputs: int, outputs: int, c_dim: int, last: bool) -> dict[str, tuple[int, ...]]:
    """Every tensor of E_BIG's ``BEBlock(inputs, outputs, has_second_conv=not last)`` and its shape.

    The last block keeps tensors it never uses (batch_norm_2, noise_weight_2 / bias_2, and batch_norm_3 / conv_3
    where its width would change); they are accepted and dropped.
    """
    shapes = {"noise_weight_1": (1, inputs, 1, 1), "bias_1": (1, inputs, 1, 1),
              "noise_weight_2": (1, outputs, 1, 1), "bias_2": (1, outputs, 1, 1),
              "conv_1.weight": (inputs, inputs, 3, 3)}
    norms = ["batch_norm_1", "batch_norm_2"]
    if not last:
        shapes["conv_2.weight"] = (outputs, inputs, 3, 3)
    if inputs != outputs:
        shapes.update({"conv_3.weight": (outputs, inputs, 1, 1), "conv_3.bias": (outputs,)})
        norms.append("batch_norm_3")
    for norm in norms:  # every norm of the block reads its input, `inputs` wide
        shapes.update({f"{norm}.running_means": (N_STATS, inputs), f"{norm}.running_vars": (N_STATS, inputs)})
        for linear in ("scale", "offset"):
            shapes.update({f"{norm}.{linear}.weight_orig": (inputs, c_dim), f"{norm}.{linear}.weight_u": (inputs,),
                           f"{norm}.{linear}.weight_v": (c_dim,)})
    return shapes


def _convert(path: Path, state: Mapping[str, torch.Tensor], blocks: list[dict[str, torch.Tensor]],
             encoder: Encoder) -> dict[str, torch.Tensor]:
    """Rename to our keys, rescaling effective weights; statistics row 20 and W / sigma for the norms."""
    pairs = {"from_rgb.conv.weight": state["FromRGB.from_rgb.weight"], "from_rgb.conv.bias": state["FromRGB.from_rgb.bias"]}
    for j, theirs in enumerate(("new_final_1", "new_final_2")):
        pairs[f"z_head.fc{j}.weight"], pairs[f"z_head.fc{j}.bias"] = state[f"{theirs}.weight"], state[f"{theirs}.bias"]
    for i, (res, block) in enumerate(zip(reversed(encoder.config.resolutions), blocks)):
        ours, last = f"b{res}", i == len(blocks) - 1
        _take_convs(pairs, ours, block, 1 if last else 2)
        norms = {"norm0": "batch_norm_1"} if last else {"norm0": "batch_norm_1", "norm1": "batch_norm_2"}
        if not last and "conv_3.weight" in block:
            pairs[f"{ours}.skip.weight"], pairs[f"{ours}.skip.bias"] = block["conv_3.weight"], block["conv_3.bias"]
            norms["skip_norm"] = "batch_norm_3"
        for our_norm, their_norm in norms.items():
            pairs[f"{ours}.{our_norm}.mean"] = block[f"{their_norm}.running_means"][STATS_ROW]
            pairs[f"{ours}.{our_norm}.var"] = block[f"{their_norm}.running_vars"][STATS_ROW]
            for linear in ("scale", "offset"):
                name = f"decode_block.{i}.{their_norm}.{linear}"
                pairs[f"{ours}.{our_norm}.{linear}.weight"] = _spectral_normed(path, name, block, f"{their_norm}.{linear}")
    return _to_stored(pairs, encoder)


def _spectral_normed(path: Path, name: str, block: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    """W / sigma with sigma = u . (W v) from the stored u, v: what torch's spectral_norm computes in eval mode."""
    weight = block[f"{key}.weight_orig"].double()
    sigma = torch.dot(block[f"{key}.weight_u"].double(), weight @ block[f"{key}.weight_v"].double())
    if not torch.isfinite(sigma) or sigma == 0:
        raise CheckpointError(path, f"{name}: its spectral norm u . (W v) is {sigma.item()}, which no weight divides by")
    return (weight / sigma).float()
