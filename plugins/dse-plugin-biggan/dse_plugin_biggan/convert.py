"""Reader for the Hugging Face ``pytorch-pretrained-BigGAN`` files (biggan-deep-128/256/512 and the like).

A model there is a folder holding ``pytorch_model.bin`` (``torch.save(BigGAN.state_dict())``: spectral-norm
layers as ``weight_orig`` / ``weight_u`` / ``weight_v``, every batch norm's ``running_means`` /
``running_vars`` tables of ``n_stats`` rows) and the hub's ``config.json`` (``output_dim``, ``z_dim``,
``channel_width``, ``layers`` = [upsample, in, out] multiples of the width, ``attention_layer_position``,
``eps``, ...). Either the folder or its ``pytorch_model.bin`` (with ``config.json`` beside it) is read.

Widths, the condition size, the class count and the number of statistics rows come from the tensors (by
majority, so a damaged tensor is named); where the self-attention sits from the tensors too (the layer holding
``snconv1x1_theta``). Which blocks upsample comes from config.json, which is cross-checked against the tensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch

from dse_core import CheckpointError, ForeignState, describe, layer_count, load_state, torch_load

from .model import REDUCTION, BigGANConfig, Generator

WEIGHTS = "pytorch_model.bin"
CONFIG = "config.json"
MARKERS = ("embeddings.weight", "generator.gen_z.weight_orig")
LAYER = r"generator\.layers\.(\d+)\."
ATTENTION = ("theta", "phi", "g", "o_conv")
OURS_ATTENTION = {"theta": "theta", "phi": "phi", "g": "g", "o_conv": "out"}


def _files(path: Path) -> tuple[Path, Path] | None:
    """(weights, config.json) for a folder or its weights file (config.json may be absent); None without weights."""
    folder, weights = (path, path / WEIGHTS) if path.is_dir() else (path.parent, path)
    return (weights, folder / CONFIG) if weights.is_file() else None


def _state(weights: Path) -> Mapping[str, Any] | None:
    state = torch_load(weights)
    if isinstance(state, Mapping) and all(isinstance(state.get(k), torch.Tensor) for k in MARKERS):
        return state
    return None


def sniff_hf(path: Path) -> bool:
    """The weights decide (a missing config.json is then named by load_hf, not met with "unrecognised")."""
    files = _files(path)
    return files is not None and _state(files[0]) is not None


def _read_config(config: Path) -> dict:
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(config, f"cannot read the hub's config.json ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        raise CheckpointError(config, "not a pytorch-pretrained-BigGAN config.json: no 'layers' list")
    return data


def _sn(source: ForeignState, theirs: str, shape: tuple, v_size: Any, ours: str, bias: bool = True,
        rows=None) -> None:
    """A spectral-norm layer: weight_orig (shape), weight_u (out,), weight_v (v_size,), and its bias."""
    source.take(f"{theirs}.weight_orig", shape, f"{ours}.weight", rows or (lambda t: t))
    source.take(f"{theirs}.weight_u", (shape[0],), f"{ours}.u", (lambda t: rows(t[:, None])[:, 0]) if rows else (lambda t: t))
    source.take(f"{theirs}.weight_v", (v_size,), f"{ours}.v")
    if bias:
        source.take(f"{theirs}.bias", (shape[0],), f"{ours}.bias", (lambda t: rows(t[:, None])[:, 0]) if rows else (lambda t: t))


def _norm(source: ForeignState, theirs: str, width: str, ours: str, conditional: bool = True) -> None:
    source.take(f"{theirs}.running_means", ("n", width), f"{ours}.mean")
    source.take(f"{theirs}.running_vars", ("n", width), f"{ours}.var")
    if conditional:
        for part in ("scale", "offset"):
            _sn(source, f"{theirs}.{part}", (width, "cond"), "cond", f"{ours}.{part}", bias=False)
    else:
        source.take(f"{theirs}.weight", (width,), f"{ours}.weight")
        source.take(f"{theirs}.bias", (width,), f"{ours}.bias")


def _dense_rows(t: torch.Tensor) -> torch.Tensor:
    """Their dense outputs are (y, x, c) (a TF NHWC reshape); ours channel-major (c, y, x). Rows of weight, u, bias."""
    c = t.shape[0] // 16
    return t.reshape(4, 4, c, -1).permute(2, 0, 1, 3).reshape(t.shape)


def _plan(source: ForeignState, layers: int, attention: int | None) -> int:
    """Every tensor of their BigGAN; returns the number of blocks."""
    source.take("embeddings.weight", ("embed", "classes"), "embed.weight")
    _sn(source, "generator.gen_z", ("c0x16", "cond"), "cond", "dense", rows=_dense_rows)
    block = 0
    for j in range(layers):
        theirs = f"generator.layers.{j}"
        if j == attention:
            for name in ATTENTION:
                out, c_in = {"theta": ("a8", "a"), "phi": ("a8", "a"), "g": ("a2", "a"), "o_conv": ("a", "a2")}[name]
                _sn(source, f"{theirs}.snconv1x1_{name}", (out, c_in, 1, 1), c_in, f"attention.{OURS_ATTENTION[name]}",
                    bias=False)
            source.take(f"{theirs}.gamma", (1,), "attention.gamma")
            continue
        c_in, mid, c_out = f"c{block}", f"m{block}", f"c{block + 1}"
        convs = [(c_in, mid, 1, c_in), (mid, mid, 3, f"m{block}x9"), (mid, mid, 3, f"m{block}x9"), (mid, c_out, 1, mid)]
        for k, (a, b, size, v) in enumerate(convs):
            _norm(source, f"{theirs}.bn_{k}", a, f"blocks.{block}.norm{k}")
            _sn(source, f"{theirs}.conv_{k}", (b, a, size, size), v, f"blocks.{block}.conv{k}")
        block += 1
    last = f"c{block}"
    _norm(source, "generator.bn", last, "norm", conditional=False)
    _sn(source, "generator.conv_to_rgb", (last, last, 3, 3), f"{last}x9", "to_rgb")
    return block


def load_hf(path: Path) -> Generator:
    files = _files(path)
    if files is None:
        raise CheckpointError(path, f"not a pytorch-pretrained-BigGAN model: expected a folder (or its {WEIGHTS}) "
                                    f"holding {WEIGHTS} and {CONFIG}")
    weights, config_file = files
    if not config_file.is_file():
        raise CheckpointError(weights, f"no {CONFIG} beside it: the layer plan (which blocks upsample) is only in the "
                                       f"hub's {CONFIG}; download it from the same model repo into {config_file.parent}")
    state = _state(weights)
    if state is None:
        raise CheckpointError(weights, f"not a pytorch-pretrained-BigGAN state dict: found {describe(torch_load(weights))}, "
                                       f"expected {' and '.join(MARKERS)} among its tensors")
    hub = _read_config(config_file)
    source = ForeignState(weights, "BigGAN", state)
    layers = layer_count(state, LAYER)
    at = sorted({j for j in range(layers) if f"generator.layers.{j}.snconv1x1_theta.weight_orig" in state})
    if len(at) > 1:
        raise source.error(f"self-attention in layers {at}: BigGAN-deep has one attention layer")
    attention = at[0] if at else None
    blocks = _plan(source, layers, attention)
    sizes = source.sizes()
    # sizes that follow from others: declared by name above so that each tensor is checked against them
    derived = {"c0x16": 16 * sizes.get("c0", 0), f"c{blocks}x9": 9 * sizes.get(f"c{blocks}", 0)}
    for i in range(blocks):
        derived[f"m{i}x9"] = 9 * sizes.get(f"m{i}", 0)
    if attention is not None:
        width = sizes.get(f"c{attention}", 0)
        derived.update(a=width, a8=width // 8, a2=width // 2)
    source.verify({**sizes, **derived}, "a BigGAN-deep generator")
    for i in range(blocks):
        if sizes[f"m{i}"] * REDUCTION != sizes[f"c{i}"]:
            raise source.error(f"block {i}: bottleneck width {sizes[f'm{i}']}, expected a {REDUCTION}th of its "
                               f"input width {sizes[f'c{i}']}")
    config = _config(source, config_file, hub, sizes, blocks, attention)
    generator = Generator(config)
    load_state(generator, source.converted(), weights)
    return generator.eval()


def _config(source: ForeignState, config_file: Path, hub: dict, sizes: dict, blocks: int,
            attention: int | None) -> BigGANConfig:
    layers, width = hub["layers"], hub.get("channel_width")
    channels = [sizes[f"c{i}"] for i in range(blocks + 1)]

    def wrong(problem: str) -> CheckpointError:
        return CheckpointError(config_file, f"does not match {source.path.name}: {problem}")

    if len(layers) != blocks:
        raise wrong(f"'layers' lists {len(layers)} blocks, the weights hold {blocks}")
    if isinstance(width, int):
        planned = [width * layer[1] for layer in layers] + [width * layers[-1][2]]
        if planned != channels:
            raise wrong(f"channel_width x layers gives widths {planned}, the weights have {channels}")
    if hub.get("attention_layer_position", attention) != attention:
        raise wrong(f"attention_layer_position {hub['attention_layer_position']}, the weights hold it at {attention}")
    z_dim = int(hub.get("z_dim", sizes["cond"] - sizes["embed"]))
    if z_dim + sizes["embed"] != sizes["cond"]:
        raise wrong(f"z_dim {z_dim} + class embedding {sizes['embed']} != the condition size {sizes['cond']}")
    upsample = [bool(layer[0]) for layer in layers]
    resolution = 4 * 2 ** sum(upsample)
    if hub.get("output_dim", resolution) != resolution:
        raise wrong(f"output_dim {hub['output_dim']}, but its layers upsample to {resolution} px")
    try:
        return BigGANConfig(resolution=resolution, channels=tuple(channels), upsample=tuple(upsample),
                            attention=attention, z_dim=z_dim, embed_dim=sizes["embed"], c_dim=sizes["classes"],
                            n_stats=sizes["n"], eps=float(hub.get("eps", 1e-4)))
    except ValueError as exc:
        raise source.error(f"cannot build a BigGAN-deep generator from it ({exc})") from None
