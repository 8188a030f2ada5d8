"""Inversion: images -> encoder -> latents -> generator -> reconstructions, and its files.

``Inverter`` is the Python API (a batch of tensors in, latents and reconstructions
out); ``invert_files`` is what ``dse invert`` runs: read images, batch them, write
latents, reconstructions, a grid and the metrics table. With a refinement
(:mod:`dse_core.refine`) everything written is after refinement, and
``metrics.json`` records its settings. Under torchrun the inputs
are sharded across ranks and rank 0 writes the run-level files. Interrupted
(Ctrl-C), it writes those files for the images done so far.

Every input gets its own output name (:func:`output_names`), and its latents'
metadata record the generator as a spec that loads from anywhere (an absolute
path, or a registry / Hub id / ``demo:FAMILY``) plus its fingerprint, which
``dse generate`` (:func:`read_latents`) checks.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import attrs
import numpy as np
import torch
from safetensors.torch import save

from .config import write_bytes_atomic, write_json_atomic
from .data import IMAGE_SUFFIXES, BadImage, LoadedImage, describe_unsupported, load_image, scan_inputs
from .errors import DseError
from .images import make_grid, save_image
from .metrics import METRICS, format_table, image_metrics, summarize
from .refine import Refinement
from .train.distributed import Dist, gather

LATENT_FORMATS = ("safetensors", "npy", "npz")
LATENT_SUFFIXES = (".safetensors", ".npz", ".npy")  # what `dse generate` reads, preferred first for one stem


@attrs.frozen
class Inversion:
    latents: dict[str, torch.Tensor]  # named as the generator's latent_names, e.g. {"w": (N, num_ws, w_dim)}
    reconstructions: torch.Tensor  # (N, img_channels, resolution, resolution), not clamped


class Inverter:
    """E then G in eval mode: ``Inverter(G, E)(images) -> Inversion``.

    ``refinement`` (a :class:`~dse_core.refine.Refinement`) optionally refines E's
    result before G decodes it: the latents and reconstructions are then the refined ones.
    """

    def __init__(self, generator, encoder, noise_mode: str = "const", refinement: Refinement | None = None):
        cfg = encoder.config
        if (cfg.resolution, cfg.img_channels) != (generator.resolution, generator.img_channels):
            raise DseError(
                f"the encoder takes {cfg.resolution}px {cfg.img_channels}-channel images but the generator makes "
                f"{generator.resolution}px {generator.img_channels}-channel ones: they were not trained together"
            )
        check_latent_shapes(generator, encoder)
        self.generator, self.encoder, self.noise_mode = generator.eval(), encoder.eval(), noise_mode
        self.refinement = refinement

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def __call__(self, images: torch.Tensor) -> Inversion:
        images = images.to(self.device)
        G = self.generator
        with torch.no_grad():
            out = self.encoder(images)
        latents = {name: getattr(out, name) for name in G.latent_names}
        if self.refinement is not None:
            latents = self.refinement(G, self.encoder, images, latents, noise_mode=self.noise_mode)
        with torch.no_grad():
            return Inversion(latents, G.decode(latents, noise_mode=self.noise_mode))


def latent_shapes(model) -> dict[str, tuple[int, ...] | None]:
    """Per-sample shape of each latent a generator decodes (by its ``latent_names``) or an encoder predicts.

    ``w``: (num_ws, w_dim); ``z``: (z_dim,); ``c``: (c_dim,). None: the model has no such latent.
    """
    names = getattr(model, "latent_names", None) or ("w", "z", "c")
    shapes: dict[str, tuple[int, ...] | None] = {}
    for name in names:
        if name == "w":
            shapes[name] = (model.num_ws, model.w_dim) if getattr(model, "num_ws", 0) else None
        elif name in ("z", "c"):
            shapes[name] = (getattr(model, f"{name}_dim"),) if getattr(model, f"{name}_dim", 0) else None
        else:
            shapes[name] = None
    return shapes


def _name(model, kind: str) -> str:
    spec = (getattr(model, "origin", None) or {}).get("spec")
    return f"{kind} {spec}" if spec else f"the {kind}"


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "nothing" if shape is None else "(N, " + ", ".join(map(str, shape)) + ")"


def check_latent_shapes(generator, encoder) -> None:
    """A :class:`DseError` naming both models unless E predicts every latent G decodes, in G's shapes."""
    wanted, predicted = latent_shapes(generator), latent_shapes(encoder)
    problems = [f"{name}: the encoder predicts {_shape_text(predicted.get(name))}, the generator takes "
                f"{_shape_text(shape)}" for name, shape in wanted.items()
                if shape is not None and predicted.get(name) != shape]
    if problems:
        raise DseError(f"{_name(encoder, 'encoder')} does not fit {_name(generator, 'generator')}: "
                       + "; ".join(problems) + " (they were not trained together)",
                       hint="pass the encoder trained for this generator (`dse train --generator ...` makes one)")


def _stem(path: Path, roots: Sequence[Path]) -> str:
    """A readable output name: the path below the input folder it came from."""
    for root in roots:
        if root.is_dir() and path.is_relative_to(root):
            return "__".join(path.relative_to(root).with_suffix("").parts)
    return path.stem


def output_names(paths: Sequence[Path], roots: Sequence[Path]) -> list[str]:
    """One unique, deterministic output name per input (case-insensitively unique: for every file system).

    The path below its input folder (``nested__wide``); where that is taken twice, the
    extension is added (``dup-png``, ``dup-jpg``), then the parent folder (``a__x``), then a number (``x-2``).
    """
    names = [_stem(p, roots) for p in paths]
    for widen in (_add_suffix, _add_parent, _add_number):
        groups: dict[str, list[int]] = defaultdict(list)
        for i, name in enumerate(names):
            groups[name.casefold()].append(i)
        taken = set(groups)
        for members in groups.values():
            if len(members) > 1:
                for i, name in zip(members, widen([names[i] for i in members], [paths[i] for i in members], taken)):
                    names[i] = name
    return names


def _add_suffix(names: list[str], paths: list[Path], taken: set[str]) -> list[str]:
    if len({p.suffix.lower() for p in paths}) == 1:
        return names  # the same extension: it tells them apart no better
    return [f"{n}-{p.suffix.lower().lstrip('.')}" for n, p in zip(names, paths)]


def _add_parent(names: list[str], paths: list[Path], taken: set[str]) -> list[str]:
    if len({p.parent.name.casefold() for p in paths}) == 1:
        return names
    return [f"{p.parent.name}__{n}" if p.parent.name else n for n, p in zip(names, paths)]


def _add_number(names: list[str], paths: list[Path], taken: set[str]) -> list[str]:
    out = [names[0]]
    for name in names[1:]:
        k = 2
        while f"{name}-{k}".casefold() in taken:
            k += 1
        taken.add(f"{name}-{k}".casefold())
        out.append(f"{name}-{k}")
    return out


def _write_latents(out_dir: Path, stem: str, latents: dict[str, torch.Tensor], metadata: dict[str, str],
                   formats: Sequence[str]) -> None:
    tensors = {k: v.detach().cpu().float().contiguous() for k, v in latents.items()}
    if "safetensors" in formats:
        write_bytes_atomic(out_dir / f"{stem}.safetensors", save(tensors, metadata=metadata))
    arrays = {k: v.numpy() for k, v in tensors.items()}
    if "npy" in formats:  # InterFaceGAN reads a bare (1, num_ws, w_dim) array
        buffer = io.BytesIO()
        np.save(buffer, next(iter(arrays.values())))
        write_bytes_atomic(out_dir / f"{stem}.npy", buffer.getvalue())
    if "npz" in formats:  # the NVlabs projector's projected_w.npz layout: key "w"
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_bytes_atomic(out_dir / f"{stem}.npz", buffer.getvalue())


@attrs.frozen
class LatentFile:
    """One latents file written by :func:`invert_files`, as read back by :func:`read_latents`."""

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


def match_latents(file: LatentFile, generator, generator_name: str) -> dict[str, torch.Tensor]:
    """``file``'s latents as ``generator.decode`` takes them (N, ...); a :class:`DseError` when they do not fit."""
    wanted = {k: v for k, v in latent_shapes(generator).items() if v is not None}
    tensors = dict(file.tensors)
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
            problems.append(f"{name}: found {got}, the generator takes {_shape_text(shape)}")
    if problems:
        raise DseError(f"{file.path}: these latents do not fit generator {generator_name}: " + "; ".join(problems),
                       hint="pass --generator with the generator they were inverted with (or leave it out to use "
                       "the one recorded in the .safetensors)")
    return {name: tensors[name] for name in wanted}


@attrs.frozen
class InversionReport:
    inverted: int
    failed: list[BadImage]
    summary: dict
    out_dir: Path
    interrupted: bool = False  # Ctrl-C: the files hold the images done before it


def invert_files(
    inputs: Sequence[str | Path],
    inverter: Inverter,
    out_dir: str | Path,
    batch_size: int = 8,
    formats: Sequence[str] = ("safetensors",),
    lpips: Callable | None = None,
    lpips_note: str = "",
    metadata: dict | None = None,
    dist: Dist = Dist(),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> InversionReport:
    """Invert every image under ``inputs``; bad files are named, skipped and counted.

    Ctrl-C stops after the image being written: the run files then cover the images done
    (under torchrun, those of rank 0) and the report says ``interrupted``.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    mine, failed = _inputs(inputs, dist, log)
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    refinement = None
    if inverter.refinement is not None:
        refinement = {**inverter.refinement.record(), "batch_size": batch_size}
        meta["refinement"] = f"{refinement['method']}, {refinement['steps']} steps, lr {refinement['lr']}"
    rows, pairs = [], []
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    interrupted = False
    try:
        for batch in tqdm(batches, desc="inverting", unit="batch", disable=not progress or not dist.is_main):
            _invert_batch(batch, inverter, out_dir, formats, lpips, meta, rows, pairs, failed, log)
    except KeyboardInterrupt:
        interrupted = True
        log(f"interrupted: writing the run files for the {len(rows)} image(s) done")
    if not interrupted:  # interrupted, the other ranks may be gone: each keeps its own
        rows = [r for part in gather(rows, dist) for r in part]
        failed = [f for part in gather(failed, dist) for f in part]
        pairs = [p for part in gather(pairs, dist) for p in part]
    summary = summarize(rows)
    if dist.is_main:
        _write_run_files(out_dir, rows, failed, summary, pairs[:128], lpips_note, meta, refinement, interrupted)
        if refinement:
            log(f"refined ({refinement['paper_row']}): {meta['refinement']}, {refinement['preset']} image loss, "
                f"LPIPS term {refinement['lpips']}")
        log(format_table(summary, lpips_note, rows) if rows else "no image was inverted: no metrics")
    return InversionReport(len(rows), failed, summary, out_dir, interrupted)


def _inputs(inputs: Sequence[str | Path], dist: Dist, log: Callable[[str], None]):
    """This rank's (path, output name) pairs, and the inputs that do not exist (named once, by rank 0)."""
    scan = scan_inputs(inputs)
    suffixes = ", ".join(IMAGE_SUFFIXES)
    skipped = describe_unsupported(scan.unsupported) if scan.unsupported else ""
    if not scan.found and not scan.missing:
        raise DseError(f"no images ({suffixes}) found in {', '.join(map(str, inputs))}"
                       + (f"; skipped {skipped} in other formats" if skipped else ""))
    failed = list(scan.missing) if dist.is_main else []  # every rank finds the same missing inputs
    if dist.is_main:
        if skipped:
            log(f"skipped {skipped} in the input folders: dse reads {suffixes}")
        for bad in failed:
            log(f"skipped {bad.path}: {bad.reason}")
    names = output_names(scan.found, [Path(p) for p in inputs])  # over all inputs: the same on every rank
    return list(zip(scan.found, names))[dist.rank :: dist.world_size], failed


def _invert_batch(batch: Sequence[tuple[Path, str]], inverter: Inverter, out_dir: Path, formats: Sequence[str],
                  lpips, meta: dict, rows: list, pairs: list, failed: list, log: Callable[[str], None]) -> None:
    """Read, invert and write one batch; appends each image's row once its files are written."""
    G = inverter.generator
    loaded: list[tuple[LoadedImage, str]] = []
    for path, name in batch:
        try:
            loaded.append((load_image(path, G.resolution, G.img_channels), name))
        except (ValueError, OSError) as exc:
            failed.append(BadImage(path, str(exc)))
            log(f"skipped {path}: {exc}")
    if not loaded:
        return
    images = torch.stack([item.tensor for item, _ in loaded])
    result = _invert_fitting(inverter, images, log)
    recon = result.reconstructions.cpu()
    scores = image_metrics(images, recon, lpips=lpips)
    for i, (item, name) in enumerate(loaded):
        latents = {k: v[i : i + 1] for k, v in result.latents.items()}
        _write_latents(out_dir / "latents", name, latents, {**meta, "image": str(item.path)}, formats)
        save_image(recon[i], out_dir / "reconstructions" / f"{name}.png")
        rows.append({"image": str(item.path), "output": name, **{k: float(v[i]) for k, v in scores.items()},
                     "notes": "; ".join(item.notes)})
        for note in item.notes:
            log(f"{item.path}: {note}")
        if len(pairs) < 64:
            pairs.extend([images[i], recon[i]])


def _invert_fitting(inverter: Inverter, images: torch.Tensor, log: Callable[[str], None]) -> Inversion:
    """``inverter(images)``, in halves (and halves of those) when the GPU runs out of memory."""
    try:
        return inverter(images)
    except torch.cuda.OutOfMemoryError:
        if len(images) == 1:
            raise DseError("CUDA out of memory inverting a single image",
                           hint="use --device cpu, or drop --refine (refinement keeps gradients through G)") from None
    torch.cuda.empty_cache()
    half = (len(images) + 1) // 2
    log(f"CUDA out of memory at batch size {len(images)}: inverting it as {half} + {len(images) - half}")
    parts = [_invert_fitting(inverter, images[:half], log), _invert_fitting(inverter, images[half:], log)]
    return Inversion({k: torch.cat([p.latents[k] for p in parts]) for k in parts[0].latents},
                     torch.cat([p.reconstructions for p in parts]))


def _write_run_files(out_dir: Path, rows, failed, summary, pairs, lpips_note: str, meta: dict,
                     refinement: dict | None, interrupted: bool = False) -> None:
    if pairs:
        save_image(make_grid(torch.stack(pairs), nrow=min(8, len(pairs))), out_dir / "grid.png")
    write_json_atomic(out_dir / "metrics.json", {
        "definitions": "PSNR (peak 1), SSIM and MSE on pixels in [0, 1]; LPIPS (VGG) and cosine similarity on [-1, 1]",
        "lpips": lpips_note or "not computed",
        "summary": summary,
        "images": rows,
        "failed": [{"image": str(f.path), "reason": f.reason} for f in failed],
        "metadata": meta,
        "refinement": refinement,  # None: G(E(y)) as is
        "interrupted": interrupted,  # True: stopped by Ctrl-C, "images" are those done before
    })
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["image", "output", *METRICS, "notes"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(out_dir / "metrics.csv", buffer.getvalue().encode())
