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
``dse generate`` (:func:`dse_core.latents.read_latents`) checks. A refinement that tunes G (PTI) writes
each tuned copy to ``OUT/generators/<name>/`` (``OUT/generator/`` when one copy is shared), recording the
tuning and the generator it was tuned from, and that image's latents name the tuned copy instead, relative
to the latents file (``../generators/<name>``): OUT can be moved or copied whole. With a face detector
(``dse invert --align``, :mod:`dse_core.align`) each photo's FFHQ face crop is what is inverted, written to
``OUT/aligned/<name>.png`` and shown in the grid.

For a conditional generator each image's class is reported (:func:`class_entries`): the given one, or the
one the encoder's class head predicted, with its probability and the encoder's top 5, in metrics.json
("class"), metrics.csv, the printed table and as a caption under each reconstruction in the grid.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import attrs
import torch

from .config import write_bytes_atomic, write_json_atomic
from .data import IMAGE_SUFFIXES, BadImage, ImageScan, LoadedImage, describe_unsupported, load_image, scan_inputs
from .distributed import Dist, gather
from .errors import DseError
from .images import make_grid, save_image
from .latents import check_formats, check_latent_shapes, encode, model_name, write_latents
from .metrics import (IDENTITY, IDENTITY_DEFINITION, METRICS, class_label, format_table, image_metrics, per_image,
                      summarize)
from .progress import progress_bar
from .refine import Refinement


@attrs.frozen
class Inversion:
    latents: dict[str, torch.Tensor]  # every input of G.decode by name, e.g. {"ws": (N, num_ws, w_dim)}
    x_rec: torch.Tensor  # the reconstructions G(latents): (N, img_channels, resolution, resolution), not clamped
    # (N, c_dim) the class probabilities E's class head predicted, also where a class was given (then latents["c"]
    # holds the given one); refined with the latents when none was given. None: E has no class head.
    class_probs: torch.Tensor | None = None
    # per image, the tuned copy of G that made x_rec (refinement "generator"; shared_tune: one object N times);
    # None: the Inverter's G
    generators: list | None = None


class Inverter:
    """E then G in eval mode: ``Inverter(G, E)(images, c=None) -> Inversion``.

    ``c`` (N, c_dim), for a conditional generator: the class of each image, used in place of
    the encoder's prediction (and fed to a conditional encoder); without it the encoder's
    predicted class is decoded. ``refinement`` (a :class:`~dse_core.refine.Refinement`)
    optionally refines what E predicted (never a given c) before G decodes it: the latents
    and reconstructions are then the refined ones. ``Inversion.class_probs`` is what E's class head
    predicted, if it has one: the class decoded when none is given, E's opinion when one is.
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

    def __call__(self, images: torch.Tensor, c: torch.Tensor | None = None) -> Inversion:
        G, E = self.generator, self.encoder
        images = images.to(self.device)
        if c is not None and (c.ndim != 2 or tuple(c.shape) != (len(images), G.c_dim)):
            raise DseError(f"c must be (N, c_dim) = ({len(images)}, {G.c_dim}) for these images, got {tuple(c.shape)}")
        c = None if c is None else c.to(self.device)
        if E.needs_c and c is None:
            raise DseError(f"{model_name(E, 'encoder')} is conditional and cannot predict the class (it has no class "
                           "head): it needs the class of each image", hint="give the class (--class, or c= in Python)")
        with torch.no_grad():  # E's class kept (replace_class=False) to report it, then a given class replaces it
            latents, predicted = encode(G, E, images, c, replace_class=False)
        probs = latents["c"] if "c" in predicted else None
        if c is not None and probs is not None:  # a given class wins over E's, and is not refined
            latents, predicted = {**latents, "c": c}, [name for name in predicted if name != "c"]
        refined = None
        if self.refinement is not None:
            refined = self.refinement.run(G, E, images, latents, names=predicted, c=c, noise_mode=self.noise_mode)
            latents = refined.latents
            probs = latents["c"] if "c" in predicted else probs  # the refined class is the one decoded
        if refined is not None and refined.generators is not None:  # decoded by the tuned copies as they were tuned
            return Inversion(latents, refined.x_rec, probs, refined.generators)
        with torch.no_grad():
            return Inversion(latents, G.decode(latents, noise_mode=self.noise_mode), probs)


def scan_for_inversion(inputs: Sequence[str | Path]) -> ImageScan:
    """The images under ``inputs``; a :class:`DseError` (before anything is written) when there is none."""
    scan = scan_inputs(inputs)
    if not scan.found:
        skipped = describe_unsupported(scan.unsupported) if scan.unsupported else ""
        missing = f"; {', '.join(str(b.path) for b in scan.missing)}: no such file or folder" if scan.missing else ""
        raise DseError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {', '.join(map(str, inputs))}"
                       + (f"; skipped {skipped} in other formats" if skipped else "") + missing)
    return scan


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


@attrs.frozen
class InversionReport:
    inverted: int
    failed: list[BadImage]
    summary: dict
    out_dir: Path
    interrupted: bool = False  # Ctrl-C: the files hold the images done before it


def invert_files(
    inputs: Sequence[str | Path] | ImageScan,
    inverter: Inverter,
    out_dir: str | Path,
    batch_size: int = 8,
    formats: Sequence[str] = ("safetensors",),
    lpips: Callable | None = None,
    lpips_note: str = "",
    metadata: dict | None = None,
    c: torch.Tensor | None = None,
    background: tuple[int, int, int] | None = None,
    align: Callable | None = None,
    identity: Callable | None = None,
    dist: Dist = Dist(),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> InversionReport:
    """Invert every image under ``inputs`` (paths, or :func:`scan_for_inversion`'s scan); bad files are named,
    skipped and counted, and nothing is written until an image has been read.

    ``c`` (1, c_dim): the class of every image (conditional generators), instead of the encoder's
    prediction (each image's row records it, marked ``given``, with the encoder's own prediction when it has a class
    head). ``background``: the RGB that transparent pixels are composited on (default:
    what the generator's folder records of its images, else white). ``align`` (a
    :class:`~dse_core.align.FaceDetector`): invert each image's FFHQ face crop (one without a face is skipped and
    named). ``identity`` (a :class:`~dse_core.identity.FaceIdentity`): the identity metrics too (none for an image
    without a face). Ctrl-C stops after the image being
    written: the run files then cover the images done (under torchrun, those of rank 0) and the report
    says ``interrupted``. ``progress``: a bar over the batches on stderr (rank 0's; see
    :func:`~dse_core.progress.progress_bar`: redrawn on a terminal, a few plain lines in a log), beside the
    refinement's own bars when it has ``progress``.
    """
    G = inverter.generator
    check_formats(G, formats)
    if c is not None and (c.ndim != 2 or c.shape[0] != 1):
        raise DseError(f"invert_files: c is the one class of every image, (1, c_dim); got {tuple(c.shape)}")
    scan = inputs if isinstance(inputs, ImageScan) else scan_for_inversion(inputs)
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    mine, failed = _inputs(scan, dist, log)
    meta = {"latents": ",".join(G.latent_shapes), **{k: str(v) for k, v in (metadata or {}).items()}}
    if align is not None:
        meta["aligned"] = "FFHQ face crop"  # the latents are of the crop, not of the whole photo
    if identity is not None:
        meta["identity"] = identity.model
    refinement = None
    if inverter.refinement is not None:
        refinement = {**inverter.refinement.record(), "batch_size": batch_size}
        meta["refinement"] = inverter.refinement.describe()
        _check_shared_tune(inverter.refinement, len(mine), batch_size, dist)
        if dist.is_main:
            _note_tuned_size(inverter.refinement, G, len(scan.found), out_dir, log)
    if background is None:
        background = image_background(G)
    rows, pairs = [], []
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    interrupted = False
    try:
        with progress_bar(len(batches), "inverting", unit="batch", enabled=progress and dist.is_main) as bar:
            for batch in batches:
                _invert_batch(batch, inverter, out_dir, formats, lpips, meta, rows, pairs, failed, c, background,
                              log, align, identity)
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
        log(f"interrupted: writing the run files for the {len(rows)} image(s) done")
    if not interrupted:  # interrupted, the other ranks may be gone: each keeps its own
        rows = [r for part in gather(rows, dist) for r in part]
        failed = [f for part in gather(failed, dist) for f in part]
        pairs = [p for part in gather(pairs, dist) for p in part]
    summary = summarize(rows)
    if dist.is_main:
        if rows or interrupted:  # not one image read: nothing to write, the failures are in the log
            _write_run_files(out_dir, rows, failed, summary, pairs[:128], lpips_note, meta, refinement, interrupted)
        if refinement:
            rows_named = " then ".join(stage.record()["paper_row"] for stage in inverter.refinement.stages)
            losses = "; then ".join(stage.loss_name for stage in inverter.refinement.stages)
            log(f"refined ({rows_named}): {meta['refinement']}; loss {losses}; LPIPS term {refinement['lpips']}")
        log(format_table(summary, lpips_note, rows) if rows else "no image was inverted: no metrics")
        if identity is not None and (faceless := sum(IDENTITY[0] not in r for r in rows)):
            log(f"note: {faceless} of {len(rows)} input(s) had no face found, so no identity metrics")
    return InversionReport(len(rows), failed, summary, out_dir, interrupted)


def _check_shared_tune(refinement: Refinement, count: int, batch_size: int, dist: Dist) -> None:
    """One shared tuned G is written to OUT/generator/: it must have seen every image, so one batch only."""
    if refinement.stages[-1].shared_tune and (count > batch_size or dist.world_size > 1):
        raise DseError(f"--shared-tune tunes one G on one batch, but {count} images make several "
                       f"(--batch-size {batch_size}{', several processes' if dist.world_size > 1 else ''})",
                       hint=f"pass --batch-size {count} on one process, or drop --shared-tune (one G per image)")


def check_output_folder(out_dir: Path) -> None:
    """A :class:`DseError` naming ``out_dir`` unless it is a writable folder, or one that can be made: before
    any model loads or any image is inverted (tuning G would otherwise fail at its first save). Makes nothing."""
    import os

    existing = next(p for p in (out_dir.absolute(), *out_dir.absolute().parents) if p.exists())
    if not existing.is_dir():
        what = "is a file" if existing == out_dir.absolute() else f"cannot be made: {existing} is a file"
        raise DseError(f"-o {out_dir} {what}", hint="pass a folder (new or existing) for the outputs")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DseError(f"-o {out_dir}: {existing} is not writable", hint="pass a folder you can write to")


def _note_tuned_size(refinement: Refinement, G, count: int, out_dir: Path, log: Callable[[str], None]) -> None:
    """Per-image tuning writes a whole G per image: say what that costs on disk, once, before tuning."""
    if not refinement.tunes_generator or refinement.stages[-1].shared_tune or count < 2:
        return
    size = sum(v.numel() * 4 for v in G.state_dict().values())  # save_pretrained writes float32
    log(f"note: --refine generator writes one tuned G per image to {out_dir / 'generators'}: {size / 1e6:.1f} MB "
        f"each, {count * size / 1e6:.1f} MB for {count} images (--shared-tune: one G for the batch)")


def _write_tuned(tuned, out_dir: Path, name: str, stage: Refinement, base: dict, image: str) -> dict:
    """Save a tuned G beside the latents; the latents' metadata that make ``dse generate`` decode with it: its
    folder relative to the latents file, so that OUT can be moved or copied whole."""
    import os

    from .models.format import generator_fingerprint

    folder = (out_dir / "generator") if stage.shared_tune else (out_dir / "generators" / name)
    tuned.save_pretrained(folder, source=_tuned_source(tuned, stage, base, image))
    relative = Path(os.path.relpath(folder.absolute(), (out_dir / "latents").absolute())).as_posix()
    return {"generator": relative, "generator_fingerprint": generator_fingerprint(tuned),
            "tuned_from": base.get("generator") or base["fingerprint"]}


def _tuned_source(tuned, stage: Refinement, base: dict, image: str) -> dict:
    """A tuned G's record: the tuning, and the base generator it is a copy of with the base's own record (its
    training is not the copy's); the base's image record kept, as the copy makes the same kind of images."""
    base_source = getattr(tuned, "source", None) or {}  # a deep copy of the base: its record
    tuning = {k: v for k, v in stage.record().items() if k not in ("paper_row", "preset", "loss_config", "then")}
    return {"format": "tuned", "tuning": {**tuning, "method": "PTI (pivotal tuning, Roich et al. 2022)"},
            "tuned_on": "the images of this run" if stage.shared_tune else image,
            "tuned_from": {**base, "source": base_source},
            **({"images": base_source["images"]} if base_source.get("images") else {})}


def image_background(G) -> tuple[int, int, int]:
    """What transparent pixels become for ``G``: the background its folder records of its images, else white."""
    from .data import parse_colour

    recorded = ((getattr(G, "source", None) or {}).get("images") or {}).get("background")
    return parse_colour(recorded) if isinstance(recorded, str) else (255, 255, 255)


def _inputs(scan: ImageScan, dist: Dist, log: Callable[[str], None]):
    """This rank's (path, output name) pairs, and the inputs that do not exist (named once, by rank 0)."""
    suffixes = ", ".join(IMAGE_SUFFIXES)
    failed = list(scan.missing) if dist.is_main else []  # every rank finds the same missing inputs
    if dist.is_main:
        if scan.unsupported:
            log(f"skipped {describe_unsupported(scan.unsupported)} in the input folders: dse reads {suffixes}")
        for bad in failed:
            log(f"skipped {bad.path}: {bad.reason}")
    names = output_names(scan.found, scan.roots)  # over all inputs: the same on every rank
    return list(zip(scan.found, names))[dist.rank :: dist.world_size], failed


def _invert_batch(batch: Sequence[tuple[Path, str]], inverter: Inverter, out_dir: Path, formats: Sequence[str],
                  lpips, meta: dict, rows: list, pairs: list, failed: list, c: torch.Tensor | None,
                  background: tuple[int, int, int], log: Callable[[str], None], align: Callable | None = None,
                  identity: Callable | None = None) -> None:
    """Read, invert and write one batch; appends each image's row once its files are written."""
    G = inverter.generator
    loaded: list[tuple[LoadedImage, str]] = []
    for path, name in batch:
        try:
            loaded.append((load_image(path, G.resolution, G.img_channels, background, align=align), name))
        except (ValueError, OSError) as exc:
            failed.append(BadImage(path, str(exc)))
            log(f"skipped {path}: {exc}")
    if not loaded:
        return
    images = torch.stack([item.tensor for item, _ in loaded])
    c = None if c is None else c.expand(len(loaded), -1)
    result = _invert_fitting(inverter, images, c, log)
    x_rec = result.x_rec.cpu()
    scores = image_metrics(images, x_rec, lpips=lpips, identity=identity)
    classes = class_entries(G, result.class_probs, c)
    tuned_meta = {}  # per tuned G (by id): its folder and fingerprint, for its images' latents
    base = None if result.generators is None else _base_generator(G, meta)
    for i, (item, name) in enumerate(loaded):
        latents = {k: v[i : i + 1] for k, v in result.latents.items()}
        if result.generators is not None:  # each tuned G written once (shared: the first image writes it)
            tuned = result.generators[i]
            if id(tuned) not in tuned_meta:
                stage = inverter.refinement.stages[-1]
                tuned_meta[id(tuned)] = _write_tuned(tuned, out_dir, name, stage, base, str(item.path))
            latents_meta = {**meta, **tuned_meta[id(tuned)]}
        else:
            latents_meta = meta
        write_latents(out_dir / "latents", name, latents, {**latents_meta, "image": str(item.path)}, formats)
        save_image(x_rec[i], out_dir / "reconstructions" / f"{name}.png")
        if align is not None:  # what was inverted: the crop, not the photo
            save_image(images[i], out_dir / "aligned" / f"{name}.png")
        row = {"image": str(item.path), "output": name, **per_image(scores, i),  # identity: none without a face
               "notes": "; ".join(item.notes)}
        if classes:
            row["class"] = classes[i]
        rows.append(row)
        for note in item.notes:
            log(f"{item.path}: {note}")
        if len(pairs) < 64:  # (image, caption): the reconstruction is captioned with its class
            pairs.extend([(images[i], None), (x_rec[i], class_label(classes[i]) if classes else None)])


def _base_generator(G, meta: dict) -> dict:
    """What a tuned G records of the generator it was tuned from: its spec (when known) and fingerprint."""
    from .models.format import generator_fingerprint

    return {"generator": meta.get("generator"), "family": G.family,
            "fingerprint": meta.get("generator_fingerprint") or generator_fingerprint(G)}


TOP_K = 5  # classes listed per image in metrics.json ("top5"), fewer when c_dim is smaller
CLASS_DEFINITION = ("the class: given (--class), else the encoder's most probable class (G decodes the encoder's "
                    "class probabilities, a mixture of class embeddings, near one-hot when it is sure); "
                    "probability: the encoder's probability of it (null without a class head); top5: the encoder's "
                    "most probable classes, most probable first")


def class_entries(G, probs: torch.Tensor | None, c: torch.Tensor | None) -> list[dict] | None:
    """Per image, metrics.json's "class": {index, name, probability, given, top5: [{index, name, probability}]};
    None where there is no class to report (an unconditional G, or no class given and none predicted)."""
    if not G.c_dim or (probs is None and c is None):
        return None
    probs = None if probs is None else probs.detach().float().cpu()
    decoded = (probs if c is None else c).detach().float().cpu()
    entries = []
    for i, index in enumerate(decoded.argmax(dim=1).tolist()):
        entry = {"index": index, "name": class_name(G, index), "probability": None, "given": c is not None,
                 "top5": None}
        if probs is not None:
            top = probs[i].topk(min(TOP_K, G.c_dim))
            entry["probability"] = float(probs[i, index])
            entry["top5"] = [{"index": j, "name": class_name(G, j), "probability": p}
                             for p, j in zip(top.values.tolist(), top.indices.tolist())]
        entries.append(entry)
    return entries


def class_name(G, index: int) -> str | None:
    """Class ``index``'s name, when the generator knows its classes' names."""
    names = G.class_names
    return names[index] if names and index < len(names) else None


def _invert_fitting(inverter: Inverter, images: torch.Tensor, c: torch.Tensor | None,
                    log: Callable[[str], None]) -> Inversion:
    """``inverter(images, c)``, in halves (and halves of those) when the GPU runs out of memory."""
    try:
        return inverter(images, c)
    except torch.cuda.OutOfMemoryError:
        if len(images) == 1:
            raise DseError("CUDA out of memory inverting a single image",
                           hint="use --device cpu, or drop --refine (refinement keeps gradients through G)") from None
    if inverter.refinement is not None and inverter.refinement.stages[-1].shared_tune:
        raise DseError(f"CUDA out of memory tuning one shared G on {len(images)} images",
                       hint="use fewer images, or drop --shared-tune (one G per image)")
    torch.cuda.empty_cache()
    half = (len(images) + 1) // 2
    log(f"CUDA out of memory at batch size {len(images)}: inverting it as {half} + {len(images) - half}")
    halves = [(images[:half], None if c is None else c[:half]), (images[half:], None if c is None else c[half:])]
    parts = [_invert_fitting(inverter, part, part_c, log) for part, part_c in halves]
    probs = None if parts[0].class_probs is None else torch.cat([p.class_probs for p in parts])
    generators = None if parts[0].generators is None else [g for p in parts for g in p.generators]
    return Inversion({k: torch.cat([p.latents[k] for p in parts]) for k in parts[0].latents},
                     torch.cat([p.x_rec for p in parts]), probs, generators)


def _write_run_files(out_dir: Path, rows, failed, summary, pairs, lpips_note: str, meta: dict,
                     refinement: dict | None, interrupted: bool = False) -> None:
    if pairs:
        labels = [label for _, label in pairs]
        grid = make_grid(torch.stack([image for image, _ in pairs]), nrow=min(8, len(pairs)),
                         labels=labels if any(labels) else None)
        save_image(grid, out_dir / "grid.png")
    classes = any("class" in r for r in rows)
    faces = "identity" in meta  # --identity
    write_json_atomic(out_dir / "metrics.json", {
        "definitions": "PSNR (peak 1), SSIM and MSE on pixels in [0, 1]; LPIPS (VGG) and cosine similarity on [-1, 1]"
                       + (f"; {IDENTITY_DEFINITION}" if faces else "")
                       + (f"; class: {CLASS_DEFINITION}" if classes else ""),
        "lpips": lpips_note or "not computed",
        "summary": summary,
        "images": rows,
        "failed": [{"image": str(f.path), "reason": f.reason} for f in failed],
        "metadata": meta,
        "refinement": refinement,  # None: G(E(y)) as is
        "interrupted": interrupted,  # True: stopped by Ctrl-C, "images" are those done before
    })
    buffer = io.StringIO()
    class_columns = ["class", "class_name", "class_probability", "class_given"] if classes else []
    identity_columns = list(IDENTITY) if faces else []
    writer = csv.DictWriter(buffer, fieldnames=["image", "output", *METRICS, *identity_columns, *class_columns,
                                                "notes"],
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(_csv_row(r) for r in rows)
    write_bytes_atomic(out_dir / "metrics.csv", buffer.getvalue().encode())


def _csv_row(row: dict) -> dict:
    """metrics.csv's row: the class flattened into its columns."""
    entry = row.get("class")
    if not entry:
        return row
    return {**row, "class": entry["index"], "class_name": entry["name"] or "",
            "class_probability": "" if entry["probability"] is None else entry["probability"],
            "class_given": entry["given"]}
