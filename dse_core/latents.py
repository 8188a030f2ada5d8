"""Latents by name: do an encoder and a generator agree on them, and the files they are written to.

A generator names what ``decode`` takes (``G.latent_shapes``: ``ws``, ``z``, ``c``, and fixed
inputs such as BigGAN's ``truncation``); an encoder names what it predicts
(``E.latent_shapes``) and records the fixed inputs it was trained at
(``E.config.fixed_latents``). Latents files hold every one of them by name: ``.safetensors``
(with the generator's spec and fingerprint in the metadata, which ``dse generate`` checks),
``.npz`` (the same arrays), or ``.npy`` (one bare array, for a generator with one latent).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Mapping, Sequence

import attrs
import numpy as np
import torch
from safetensors.torch import save

from .config import write_bytes_atomic
from .errors import DseError

LATENT_SUFFIXES = (".safetensors", ".npz", ".npy")  # what `dse generate` reads, preferred first for one stem
RENAMED = {"w": "ws"}  # names older dse versions wrote -> today's


def model_name(model, kind: str) -> str:
    spec = (getattr(model, "origin", None) or {}).get("spec")
    return f"{kind} {spec}" if spec else f"the {kind}"


def shape_text(shape: tuple[int, ...] | None) -> str:
    return "nothing" if shape is None else "(N, " + ", ".join(map(str, shape)) + ")"


def check_latent_shapes(G, E) -> None:
    """A :class:`DseError` naming both models unless E's latents are what G decodes.

    E must predict each of ``G.latent_names`` in G's shape, except a condition ``c``, which a
    caller may give instead; every other input of ``decode`` must be one E was trained at
    (``E.config.fixed_latents``).
    """
    wanted, predicted = G.latent_shapes, E.latent_shapes
    fixed = getattr(E.config, "fixed_latents", {})
    problems = []
    for name, shape in wanted.items():
        if name in G.latent_names:
            if predicted.get(name) != shape and not (name == "c" and name not in predicted):
                problems.append(f"{name}: the encoder predicts {shape_text(predicted.get(name))}, the generator "
                                f"takes {shape_text(shape)}")
        elif name not in fixed:
            problems.append(f"{name}: the generator takes it, and the encoder records no value it was trained at")
    problems += [f"{name}: the encoder predicts it, the generator takes no such latent"
                 for name in predicted if name not in wanted]
    problems += [f"{name}: the encoder was trained at a value of it, the generator takes no such input"
                 for name in fixed if name not in wanted]
    if problems:
        raise DseError(f"{model_name(E, 'encoder')} does not fit {model_name(G, 'generator')}: "
                       + "; ".join(problems) + " (they were not trained together)",
                       hint="pass the encoder trained for this generator (`dse train --generator ...` makes one)")


def for_decode(G, E, predicted: Mapping[str, torch.Tensor], c: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """What ``G.decode`` takes for E's ``predicted`` latents: those, E's fixed latents, and ``c`` where E predicts none."""
    n = next(iter(predicted.values())).shape[0] if predicted else (0 if c is None else c.shape[0])
    device = next(iter(predicted.values())).device if predicted else None
    latents = {name: torch.full((n, *G.latent_shapes[name]), value, device=device)
               for name, value in getattr(E.config, "fixed_latents", {}).items()}
    latents.update(predicted)
    if "c" in G.latent_shapes and "c" not in latents:
        if c is None:
            raise DseError(f"the {G.family} generator is conditional and {model_name(E, 'encoder')} predicts no class",
                           hint="give the class (--class, or c= in Python)")
        latents["c"] = c
    return latents


def encoder_condition(G, E, c: torch.Tensor | None, z: torch.Tensor | None = None) -> torch.Tensor | None:
    """What a conditional E reads for class c (None for an unconditional E, or where c is unknown).

    ``condition "class"``: c itself. ``"generator"``: ``G.condition_vector(z, c)``; where z is unknown (inverting)
    its mean, 0: the DSE authors fed a random z there; the mean gives every run the same answer.
    """
    if not E.c_dim or c is None:
        return None
    if E.config.condition == "class":
        return c
    if z is None:
        z = c.new_zeros(c.shape[0], G.z_dim)
    return G.condition_vector(z, c)


def encode(G, E, x: torch.Tensor, c: torch.Tensor | None = None,
           replace_class: bool = True) -> tuple[dict[str, torch.Tensor], list[str]]:
    """E's reading of images x as ``G.decode`` takes it, and the names of what E predicted in it.

    ``c`` conditions a conditional E, stands in for a class E does not predict, and (``replace_class``,
    as in inversion) replaces the class E does predict; training keeps the prediction, which its class
    loss trains.
    """
    if c is not None and not E.c_dim and "c" not in G.latent_shapes:
        raise DseError(f"the {G.family} generator decodes {', '.join(G.latent_shapes)}: its class enters through "
                       "sampling (its mapping network), which inversion skips, and the encoder reads none, so a "
                       "given class would change nothing", hint="drop the class")
    predicted = E(x, encoder_condition(G, E, c))
    if c is not None and replace_class:
        predicted.pop("c", None)
    return for_decode(G, E, predicted, c), list(predicted)


def fixed_latents(G, latents: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The inputs of ``decode`` beyond ``latent_names`` in sampled ``latents``, each one value for every sample."""
    fixed = {}
    for name in G.latent_shapes:
        if name in G.latent_names:
            continue
        values = latents[name].detach().flatten().unique()
        if values.numel() != 1:
            raise DseError(f"{name}: an encoder is trained at one value of it, but the samples hold {values.numel()}")
        value = values[0].item()
        # a float32 latent records the decimal it was written as (0.4, not 0.4000000059604645)
        fixed[name] = float(str(np.float32(value))) if values.dtype == torch.float32 else float(value)
    return fixed


def write_latents(out_dir: Path, stem: str, latents: dict[str, torch.Tensor], metadata: dict[str, str],
                  formats: Sequence[str]) -> None:
    """``stem.safetensors`` (+ ``.npy`` / ``.npz``) in ``out_dir``; every file written atomically."""
    tensors = {k: v.detach().cpu().float().contiguous() for k, v in latents.items()}
    if "safetensors" in formats:
        write_bytes_atomic(out_dir / f"{stem}.safetensors", save(tensors, metadata=metadata))
    arrays = {k: v.numpy() for k, v in tensors.items()}
    if "npy" in formats:  # InterFaceGAN and most editing tools read one bare array, e.g. (1, num_ws, w_dim)
        [array] = arrays.values()
        buffer = io.BytesIO()
        np.save(buffer, array)
        write_bytes_atomic(out_dir / f"{stem}.npy", buffer.getvalue())
    if "npz" in formats:  # every latent by name
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_bytes_atomic(out_dir / f"{stem}.npz", buffer.getvalue())


def check_formats(G, formats: Sequence[str]) -> None:
    """``npy`` holds one bare array: refused (before any work) for a generator that decodes several."""
    if "npy" in formats and len(G.latent_shapes) != 1:
        raise DseError(f"--format npy writes one bare array, but the {G.family} generator decodes "
                       f"{', '.join(G.latent_shapes)}", hint="use --format npz (every latent by name)")


@attrs.frozen
class LatentFile:
    """One latents file, as read back by :func:`read_latents`."""

    path: Path
    tensors: dict[str, torch.Tensor]  # by latent name; a .npy's one array is under "" until matched to a generator
    metadata: dict[str, str]  # the .safetensors metadata (for .npy / .npz: that of the .safetensors beside it, if any)


def find_latents(path: str | Path) -> list[Path]:
    """A latents file, or a folder's latents: one file per stem (.safetensors, else .npz, else .npy), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DseError(f"{path}: no such file or folder", hint="point at the latents/ folder of a `dse invert` run")
    best: dict[str, Path] = {}
    for file in sorted(path.iterdir()):
        if file.suffix in LATENT_SUFFIXES and (file.stem not in best or LATENT_SUFFIXES.index(file.suffix)
                                                < LATENT_SUFFIXES.index(best[file.stem].suffix)):
            best[file.stem] = file
    if not best:
        raise DseError(f"{path}: no latents ({', '.join(LATENT_SUFFIXES)}) found",
                       hint="point at the latents/ folder of a `dse invert` run")
    return [best[stem] for stem in sorted(best)]


def read_latents(path: str | Path) -> LatentFile:
    """Read a .safetensors, .npz or .npy latents file; a :class:`DseError` names a file it cannot read."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.suffix not in LATENT_SUFFIXES:
        raise DseError(f"{path}: not a latents file (expected {', '.join(LATENT_SUFFIXES)})",
                       hint="pass a file or the latents/ folder written by `dse invert`")
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), "pt") as f:
                return LatentFile(path, {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {}))
        if path.suffix == ".npy":
            arrays = {"": np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
    except (SafetensorError, OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DseError(f"{path}: cannot read it as {path.suffix} latents ({exc})",
                       hint="the file is corrupt or truncated: write it again with `dse invert`") from None
    sibling = path.with_suffix(".safetensors")
    metadata = read_latents(sibling).metadata if sibling.is_file() else {}
    return LatentFile(path, {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in arrays.items()}, metadata)


def match_latents(file: LatentFile, G, generator_name: str) -> dict[str, torch.Tensor]:
    """``file``'s latents as ``G.decode`` takes them (N, ...); a :class:`DseError` when they do not fit."""
    wanted = G.latent_shapes
    tensors = {RENAMED.get(k, k) if RENAMED.get(k) in wanted else k: v for k, v in file.tensors.items()}
    if "" in tensors:  # a .npy holds one unnamed array: the generator's only latent
        if len(wanted) != 1:
            raise DseError(f"{file.path}: a .npy holds one array, but generator {generator_name} decodes "
                           f"{', '.join(wanted)}", hint="pass the .safetensors or .npz file of the same image")
        tensors = {next(iter(wanted)): tensors.pop("")}
    problems = []
    for name, shape in wanted.items():
        tensor = tensors.get(name)
        if tensor is not None and tuple(tensor.shape) == shape:
            tensors[name] = tensor = tensor[None]  # one sample saved without its batch dimension
        if tensor is None or tuple(tensor.shape[1:]) != shape:
            got = "nothing" if tensor is None else str(tuple(tensor.shape))
            problems.append(f"{name}: found {got}, the generator takes {shape_text(shape)}")
    if problems:
        raise DseError(f"{file.path}: these latents do not fit generator {generator_name}: " + "; ".join(problems),
                       hint="pass --generator with the generator they were inverted with (or leave it out to use "
                       "the one recorded in the .safetensors)")
    return {name: tensors[name] for name in wanted}
