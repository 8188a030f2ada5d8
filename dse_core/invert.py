"""Inversion: images -> encoder -> latents -> generator -> reconstructions, and its files.

``Inverter`` is the Python API (a batch of tensors in, latents and reconstructions
out); ``invert_files`` is what ``dse invert`` runs: read images, batch them, write
latents, reconstructions, a grid and the metrics table. With a refinement
(:mod:`dse_core.refine`) everything written is after refinement, and
``metrics.json`` records its settings. Under torchrun the inputs
are sharded across ranks and rank 0 writes the run-level files.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable, Sequence

import attrs
import numpy as np
import torch
from safetensors.torch import save

from .config import write_bytes_atomic, write_json_atomic
from .data import BadImage, LoadedImage, find_images, load_image
from .errors import DseError
from .images import make_grid, save_image
from .metrics import METRICS, format_table, image_metrics, summarize
from .refine import Refinement
from .train.distributed import Dist, gather

LATENT_FORMATS = ("safetensors", "npy", "npz")


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


def _stem(path: Path, roots: Sequence[Path]) -> str:
    """A unique, readable output name: the path below the input folder it came from."""
    for root in roots:
        if root.is_dir() and path.is_relative_to(root):
            return "__".join(path.relative_to(root).with_suffix("").parts)
    return path.stem


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
class InversionReport:
    inverted: int
    failed: list[BadImage]
    summary: dict
    out_dir: Path


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
    """Invert every image under ``inputs``; bad files are named, skipped and counted."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    G = inverter.generator
    paths, missing = find_images(inputs)
    if not paths and not missing:
        raise DseError(f"no images (.png, .jpg, .jpeg, .webp) found in {', '.join(map(str, inputs))}")
    roots = [Path(p) for p in inputs]
    mine = paths[dist.rank :: dist.world_size]
    failed = list(missing) if dist.is_main else []  # every rank finds the same missing inputs
    for bad in failed:
        log(f"skipped {bad.path}: {bad.reason}")
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    refinement = None
    if inverter.refinement is not None:
        refinement = {**inverter.refinement.record(), "batch_size": batch_size}
        meta["refinement"] = f"{refinement['method']}, {refinement['steps']} steps, lr {refinement['lr']}"
    rows, pairs = [], []
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    for batch_paths in tqdm(batches, desc="inverting", unit="batch", disable=not progress or not dist.is_main):
        loaded: list[LoadedImage] = []
        for path in batch_paths:
            try:
                loaded.append(load_image(path, G.resolution, G.img_channels))
            except (ValueError, OSError) as exc:
                failed.append(BadImage(path, str(exc)))
                log(f"skipped {path}: {exc}")
        if not loaded:
            continue
        images = torch.stack([item.tensor for item in loaded])
        result = inverter(images)
        recon = result.reconstructions.cpu()
        scores = image_metrics(images, recon, lpips=lpips)
        for i, item in enumerate(loaded):
            stem = _stem(item.path, roots)
            latents = {k: v[i : i + 1] for k, v in result.latents.items()}
            _write_latents(out_dir / "latents", stem, latents, {**meta, "image": str(item.path)}, formats)
            save_image(recon[i], out_dir / "reconstructions" / f"{stem}.png")
            rows.append({"image": str(item.path), "output": stem, **{k: float(v[i]) for k, v in scores.items()},
                         "notes": "; ".join(item.notes)})
            for note in item.notes:
                log(f"{item.path}: {note}")
            if len(pairs) < 64:
                pairs.extend([images[i], recon[i]])

    rows = [r for part in gather(rows, dist) for r in part]
    failed = [f for part in gather(failed, dist) for f in part]
    pairs = [p for part in gather(pairs, dist) for p in part][:128]
    summary = summarize(rows)
    if dist.is_main:
        _write_run_files(out_dir, rows, failed, summary, pairs, lpips_note, meta, refinement)
        if refinement:
            log(f"refined ({refinement['paper_row']}): {meta['refinement']}, {refinement['preset']} image loss, "
                f"LPIPS term {refinement['lpips']}")
        log(format_table(summary, lpips_note))
    return InversionReport(len(rows), failed, summary, out_dir)


def _write_run_files(out_dir: Path, rows, failed, summary, pairs, lpips_note: str, meta: dict,
                     refinement: dict | None) -> None:
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
    })
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["image", "output", *METRICS, "notes"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(out_dir / "metrics.csv", buffer.getvalue().encode())
