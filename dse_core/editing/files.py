"""What ``dse edit`` writes: every step's image and latents (``dse generate`` reproduces them), a labelled grid
(rows = inputs, columns = steps) and ``edit.json``, the record of what was applied."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import write_json_atomic
from ..errors import DseError
from ..images import make_grid, save_image
from ..latents import find_latents, match_latents, read_latents, write_latents
from .apply import edit, interpolate as interpolate_latents, layer_indices, parse_strengths
from .direction import Direction


def open_latents(path: Path, generator: str | None, gan: str | None, device, models: dict,
                 checked: set | None = None, force: bool = False) -> tuple[dict, object, dict]:
    """(latents on device, G, the file's metadata with "generator" the spec used) for one latents file: G is the
    generator the file records (:func:`~dse_core.loading.latents_generator`), or ``generator``, loaded once per
    spec into ``models``.

    ``checked``: G is compared with the fingerprint the file records (as ``dse generate`` does; ``force``: a
    warning, not an error), once per (spec, fingerprint) pair, added to it; None: not compared.
    """
    from ..loading import check_latents_generator, latents_generator, load_generator

    file = read_latents(path)
    spec = latents_generator(path, file.metadata, generator, gan)
    if spec not in models:
        models[spec] = load_generator(spec, gan=gan or file.metadata.get("family"), device=device)
    G = models[spec]
    latents = {k: v.to(device) for k, v in match_latents(file, G, spec).items()}
    if checked is not None and (spec, file.metadata.get("generator_fingerprint")) not in checked:
        check_latents_generator(path, file.metadata, G, spec, force)
        checked.add((spec, file.metadata.get("generator_fingerprint")))
    return latents, G, {**file.metadata, "generator": spec}


GRID_ROWS = 16  # inputs shown in grid.png (every input still gets its folder of steps)


def edit_files(latents_path: str | Path, out_dir: Path, *, direction: str | Direction | None = None,
               interpolate: str | None = None, component: int = 0, strength: str | None = None,
               steps: int | None = None, layers: str | None = None, renormalize: bool = False,
               generator: str | None = None, gan: str | None = None, force: bool = False,
               device: torch.device = torch.device("cpu")) -> dict:
    """Edit every latents file under ``latents_path``; write the images, latents, grid and record into ``out_dir``.

    Each file's G must be the one it records (its fingerprint), as for ``dse generate``; ``force``: another
    ``generator`` is used anyway, with a warning.

    Step files are numbered (``00_-3``, ``01_-2``, ...: in order, and distinct however close the strengths);
    ``out_dir`` must be new or empty, so that no step of an earlier edit is taken for one of this edit.
    """
    from .readers import load_direction
    from ..interfaces import StyleGenerator

    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DseError(f"-o {out_dir}: {'is a file' if not out_dir.is_dir() else 'is not empty'}",
                       hint="give a new folder (an earlier edit's steps would mix with this one's)")
    if interpolate is not None and (strength is not None or component or layers or renormalize):
        raise DseError("--interpolate takes --steps only (--strength, --component, --layers and --renormalize "
                       "apply to --direction)")
    if steps is not None and steps < 2:
        raise DseError(f"--steps {steps}: at least 2")
    paths = find_latents(latents_path)
    models: dict = {}
    checked: set = set()
    # every file read (and its G checked) first
    loaded = [(path, *open_latents(path, generator, gan, device, models, checked, force)) for path in paths]
    if interpolate is not None:
        target, G_target, target_meta = open_latents(Path(interpolate), generator, gan, device, models, checked, force)
        steps_t = torch.linspace(0, 1, steps or 9).tolist()
        labels = [f"{i:02d}_t{t:.4g}" for i, t in enumerate(steps_t)]
        applied = {"interpolate": str(Path(interpolate).resolve()), "t": steps_t,
                   "path": "slerp in z, linear in ws and c"}
    else:
        G0 = loaded[0][2]
        chosen = direction if isinstance(direction, Direction) else load_direction(direction, G0)
        origin = str(direction) if not isinstance(direction, Direction) else "the direction"
        layer_ids = layer_indices(G0, layers or None)
        if renormalize and chosen.latent != "z":
            raise DseError(f"--renormalize applies to z-space edits; this direction edits {chosen.latent}")
        if not 0 <= component < len(chosen):
            raise DseError(f"--component {component}: {origin} has components 0..{len(chosen) - 1}")
        # a class move runs from one class (0) to the other (1); other directions both ways
        strength = strength or ("0:1" if chosen.latent == "c" else "-3:3")
        if steps is not None and ":" not in strength:
            raise DseError(f"--steps {steps} with --strength {strength}: --steps divides a range, like -3:3")
        alphas = parse_strengths(strength, steps)
        labels = [f"{i:02d}_{a:+.4g}" for i, a in enumerate(alphas)]
        one = chosen.component(component) if len(chosen) > 1 or component else chosen
        applied = {"direction": {**chosen.record(), "file": None if isinstance(direction, Direction) else
                                 str(Path(direction).resolve())},
                   "component": component, "component_name": None if one.names is None else one.names[0],
                   "strengths": alphas, "strength_unit": "std" if one.std is not None else "raw",
                   "std": None if one.std is None else float(one.std[0]), "layers": layer_ids,
                   "renormalize": renormalize}
    rows, outputs, checked = [], [], set()
    for path, latents, G, meta in loaded:
        if interpolate is not None:
            check_one_generator((path, G, meta), (interpolate, G_target, target_meta))
            z_space = () if isinstance(G, StyleGenerator) else ("z",)
            edited = interpolate_latents(latents, target, len(labels), z_space=z_space)
        else:
            if id(G) not in checked:  # each generator of the inputs, once
                chosen.check(G, origin=f"{origin} (for {path})")
                warn_if_made_for_another(chosen, G, origin)
                checked.add(id(G))
            edited = edit(latents, chosen, alphas, component=component, layers=layer_ids, renormalize=renormalize)
        folder = out_dir / path.stem
        images = []
        for label, step in zip(labels, edited):
            with torch.no_grad():
                image = G.decode(step)[0].cpu()
            save_image(image, folder / f"{label}.png")
            write_latents(folder, label, step, {k: str(v) for k, v in {**meta, "edit": label}.items()}, ["safetensors"])
            images.append(image)
        if len(rows) < GRID_ROWS:
            rows.append(torch.stack(images))
        outputs.append({"input": str(path.resolve()), "folder": str(folder), "generator": meta["generator"]})
    grid = torch.cat(rows)
    captions = [labels[i].split("_", 1)[1] if i < len(labels) else None for i in range(len(grid))]  # under row 1
    save_image(make_grid(grid, nrow=len(labels), labels=captions), out_dir / "grid.png")
    record = {"inputs": outputs, "steps": labels, "grid_rows": len(rows), **applied}
    write_json_atomic(out_dir / "edit.json", record)
    return record


def check_one_generator(a: tuple, b: tuple) -> None:
    """Two latents files, each ``(path, G that decodes it, metadata)``, interpolate only if one G decodes both
    (generators are loaded once per spec, so another object is another G: PTI's per-image tuned copies)."""
    (path_a, G_a, meta_a), (path_b, G_b, meta_b) = a, b
    if G_a is not G_b:
        raise DseError(f"{path_a} and {path_b} were inverted with different generators "
                       f"({meta_a['generator']} and {meta_b['generator']})", hint=_interpolate_hint(G_a, G_b))


def _interpolate_hint(*generators) -> str:
    """Latents decode only with their own G: how two images' latents can share one."""
    bases = [(getattr(G, "source", None) or {}).get("tuned_from") for G in generators]
    base = next((b for b in bases if b), None)
    if base is None:
        return "interpolate between latents inverted with one generator"
    spec = base.get("generator") or "BASE"
    return ("each image has its own tuned G (dse invert --refine generator): invert both in one batch with "
            f"--shared-tune (one G for both), or interpolate the pivots with the base G: --generator {spec} --force")


def warn_if_made_for_another(direction: Direction, G, origin) -> None:
    """A direction computed for other weights of the same shape still applies, but means something else: say so.

    A tuned copy of G (PTI) is not another generator for it: directions of the G it was tuned from are what
    PTI edits with."""
    import warnings

    from ..errors import DseWarning
    from ..models.format import generator_fingerprint

    made_for = direction.generator.get("fingerprint")
    tuned_from = ((getattr(G, "source", None) or {}).get("tuned_from") or {}).get("fingerprint")
    if made_for and made_for != tuned_from and made_for != generator_fingerprint(G):
        warnings.warn(f"{origin} was made for another generator ({direction.generator.get('spec') or made_for[:12]}); "
                      "its edits may mean something else here", DseWarning, stacklevel=3)
