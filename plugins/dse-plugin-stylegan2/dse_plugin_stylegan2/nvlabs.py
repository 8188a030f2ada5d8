"""Reader for NVlabs stylegan2-ada-pytorch network pickles (``network-snapshot-*.pkl``).

These files are plain pickles of the training snapshot (``G``, ``D``, ``G_ema``, ...)
whose networks unpickle by executing the Python source stored inside them. We
read them with :func:`dse_core.safe_load` instead: only the globals
the format needs are resolved, each to a stand-in, so every network comes back
as a :class:`PersistentRecord` (tensors, sub-records, recorded constructor
arguments) and none of the file's code runs.

The architecture is inferred from those tensors and attributes; our tensor names
mirror NVlabs' (``mapping.fc{i}``, ``synthesis.b{res}.conv0``), so converting is
dropping the ``resample_filter`` buffers and flipping the up-conv kernels. Layers
NVlabs runs in float16 (``num_fp16_res``) run in float32 here, which is what NVlabs
computes with ``force_fp32=True``; ``conv_clamp`` applies as in its float32 path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dse_core import (PICKLE_DATA_GLOBALS, CheckpointError, PersistentRecord, describe, load_state, persistent_record,
                      safe_load, separable_filter)

from .model import Generator, StyleGAN2Config

# Everything a stylegan2-ada-pytorch snapshot pickle names, mapped to our stand-ins.
NVLABS_GLOBALS = {
    **PICKLE_DATA_GLOBALS,
    "torch_utils.persistence._reconstruct_persistent_obj": persistent_record,
    "dnnlib.util.EasyDict": dict,  # only ever holds keyword arguments
}
GENERATOR_KEYS = ("G_ema", "G")
SNIFF_BYTES = 1 << 16  # the persistence global appears right after training_set_kwargs


def sniff_nvlabs(path: Path) -> bool:
    """A binary pickle that names ``torch_utils.persistence`` near its start."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return False
    return len(head) > 2 and head[0] == 0x80 and 2 <= head[1] <= 5 and b"torch_utils.persistence" in head


def load_nvlabs(path: Path) -> Generator:
    """``G_ema`` (else ``G``) of an NVlabs pickle as our generator, checked tensor by tensor."""
    record = _generator_record(safe_load(path, NVLABS_GLOBALS), path)
    missing = [name for name in ("mapping", "synthesis") if name not in record.children]
    if missing:
        raise CheckpointError(path, f"the generator has no `{missing[0]}` sub-module (it has "
                                    f"{', '.join(f'`{k}`' for k in record.children) or 'none'})")
    try:
        _check_supported(record, path)
        config = _config(record)
        _check_recorded_sizes(record, config, path)
        generator = Generator(config)
    except (KeyError, IndexError, ValueError, TypeError, RuntimeError) as exc:  # data of the wrong type or shape
        problem = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise CheckpointError(path, f"cannot infer the StyleGAN2 architecture from the pickle ({problem})") from None
    load_state(generator, _our_state(record, config), path)
    return generator.eval()


def _generator_record(snapshot: Any, path: Path) -> PersistentRecord:
    """The snapshot dict's generator, or the pickle itself when someone pickled a generator alone."""
    found = [snapshot] if isinstance(snapshot, PersistentRecord) else []
    if isinstance(snapshot, dict):
        found = [snapshot.get(k) for k in GENERATOR_KEYS]
    for record in found:
        if isinstance(record, PersistentRecord):
            if record.class_name != "Generator":
                raise CheckpointError(path, f"holds a {record.class_name}, not a StyleGAN2 Generator")
            return record
    what = describe(snapshot) if isinstance(snapshot, dict) else f"a {type(snapshot).__name__}"
    raise CheckpointError(path, f"no generator in the pickle: found {what}, expected a dict with 'G_ema' or 'G'")


# -- architecture -----------------------------------------------------------------------


def _attribute(record: PersistentRecord, name: str, default: Any, types: tuple[type, ...]) -> Any:
    """A recorded attribute, checked to be of one of ``types`` (a pickle may hold anything there)."""
    value = record.attributes.get(name, default)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        wanted = " or ".join("None" if t is type(None) else t.__name__ for t in types)
        raise TypeError(f"{record.class_name}.{name} is a {type(value).__name__}, not {wanted}")
    return value


def _blocks(record: PersistentRecord) -> dict[int, PersistentRecord]:
    synthesis = record.children["synthesis"]
    found = {int(m.group(1)): b for name, b in synthesis.children.items() if (m := re.fullmatch(r"b(\d+)", name))}
    return dict(sorted(found.items()))


def _layers(blocks: dict[int, PersistentRecord], names=("conv0", "conv1", "torgb")) -> list[PersistentRecord]:
    return [layer for b in blocks.values() for name, layer in b.children.items() if name in names]


def _check_supported(record: PersistentRecord, path: Path) -> None:
    """Our generator is the skip architecture with leaky-ReLU layers; say so instead of mis-loading others."""
    blocks = _blocks(record)
    kinds = {_attribute(b, "architecture", "skip", (str,)) for b in blocks.values()}
    if kinds != {"skip"}:
        raise CheckpointError(path, f"only the 'skip' StyleGAN2 generator architecture is supported; this one uses "
                                    f"{', '.join(repr(k) for k in sorted(kinds - {'skip'}))}")
    fcs = [layer for name, layer in record.children["mapping"].children.items() if name.startswith("fc")]
    layers = _layers(blocks, ("conv0", "conv1")) + fcs
    activations = {str(_attribute(layer, "activation", None, (str, type(None)))) for layer in layers}
    if activations != {"lrelu"}:
        raise CheckpointError(path, f"only leaky-ReLU mapping and synthesis layers are supported; "
                                    f"found {sorted(activations)}")


def _config(record: PersistentRecord) -> StyleGAN2Config:
    mapping, blocks = record.children["mapping"], _blocks(record)
    fc = [mapping.children[f"fc{i}"] for i in range(_count(mapping, r"fc(\d+)"))]
    embed = mapping.children.get("embed")
    embed_features = embed.tensors["weight"].shape[0] if embed is not None else 0
    w_dim, hidden = fc[-1].tensors["weight"].shape[0], fc[0].tensors["weight"].shape[0]
    last = blocks[max(blocks)]
    return StyleGAN2Config(
        resolution=max(blocks),
        channels={res: b.children["conv1"].tensors["weight"].shape[0] for res, b in blocks.items()},
        z_dim=fc[0].tensors["weight"].shape[1] - embed_features,
        w_dim=w_dim,
        c_dim=embed.tensors["weight"].shape[1] if embed is not None else 0,
        mapping_layers=len(fc),
        mapping_features=None if len(fc) == 1 or hidden == w_dim else hidden,
        mapping_lr_mul=_lr_multiplier(fc[0]),
        embed_features=None if embed_features in (0, w_dim) else embed_features,
        img_channels=last.children["torgb"].tensors["weight"].shape[0],
        resample_filter=_resample_filter(blocks[4].tensors["resample_filter"]),
        conv_clamp=_conv_clamp(blocks),
    )


def _lr_multiplier(layer: PersistentRecord) -> float:
    value = layer.init_kwargs.get("lr_multiplier", 1)
    if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{layer.class_name}'s lr_multiplier is a {type(value).__name__}, not a number")
    return float(value)


def _count(record: PersistentRecord, pattern: str) -> int:
    return sum(1 for name in record.children if re.fullmatch(pattern, name))


def _resample_filter(kernel: torch.Tensor) -> tuple[float, ...]:
    """NVlabs stores the normalized filter: 2-D for short filters, 1-D (separable) for 8+ taps."""
    if kernel.ndim == 1:
        return tuple(round(v, 6) for v in (kernel.double() / kernel[0]).tolist())
    return separable_filter(kernel)


def _conv_clamp(blocks: dict[int, PersistentRecord]) -> float | None:
    clamps = {_attribute(layer, "conv_clamp", None, (int, float, type(None))) for layer in _layers(blocks)}
    if len(clamps) != 1:
        raise ValueError(f"layers use different conv_clamp values {sorted(clamps, key=str)}")
    clamp = clamps.pop()
    return None if clamp is None else float(clamp)


def _check_recorded_sizes(record: PersistentRecord, config: StyleGAN2Config, path: Path) -> None:
    """The generator's own recorded sizes must agree with what its tensors say."""
    inferred = {"z_dim": config.z_dim, "c_dim": config.c_dim, "w_dim": config.w_dim, "img_resolution": config.resolution,
                "img_channels": config.img_channels, "num_ws": config.num_ws}
    recorded = {k: record.attributes[k] for k in inferred if k in record.attributes}
    for k, v in recorded.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise CheckpointError(path, f"the generator's recorded {k} is a {type(v).__name__}, not a size")
    wrong = [f"{k}={v} recorded, {inferred[k]} from the tensors" for k, v in recorded.items() if v != inferred[k]]
    if wrong:
        raise CheckpointError(path, f"the generator's recorded sizes contradict its tensors: {'; '.join(wrong)}")


# -- tensors ----------------------------------------------------------------------------


def _our_state(record: PersistentRecord, config: StyleGAN2Config) -> dict[str, torch.Tensor]:
    """Their tensors under our names: the same names, less the filter buffers we rebuild from the config."""
    state = {k: v for k, v in record.state_dict().items() if not k.endswith("resample_filter")}
    for res in config.channels:
        key = f"synthesis.b{res}.conv0.weight"
        if key in state and state[key].ndim == 4:  # NVlabs keeps up-conv kernels flipped relative to the TF layout
            state[key] = state[key].flip(2, 3)  # we use (see model.py); other shapes: load_state reports them
    return state
