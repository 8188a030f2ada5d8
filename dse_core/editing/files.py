"""What ``dse edit`` writes: every step's image and latents (``dse generate`` reproduces them), a labelled grid
(rows = inputs, columns = steps) and ``edit.json``, the record of what was applied."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import write_json_atomic
from ..errors import DseError
from ..images import make_grid, save_image
from ..latents import find_latents, match_latents, read_latents, write_latents
from .apply import edit, interpolate as interpolate_latents, parse_layers, parse_strengths
from .direction import Direction


def _load(path: Path, generator: str | None, gan: str | None, device, models: dict) -> tuple[dict, object, dict]:
    """(latents on device, G, the file's metadata) for one latents file; generators are loaded once per spec."""
    from ..loading import load_generator

    file = read_latents(path)
    spec = generator or file.metadata.get("generator") or (f"demo:{gan}" if gan else None)
    if not spec:
        raise DseError(f"{path}: no generator recorded (a {path.suffix} file without its .safetensors beside it)",
                       hint="pass --generator with the generator the latents were inverted with")
    if spec not in models:
        models[spec] = load_generator(spec, gan=gan or file.metadata.get("family"), device=device)
    G = models[spec]
    latents = {k: v.to(device) for k, v in match_latents(file, G, spec).items()}
    return latents, G, {**file.metadata, "generator": spec}


def edit_files(latents_path: str | Path, out_dir: Path, *, direction: str | Direction | None = None,
               interpolate: str | None = None, component: int = 0, strength: str = "-3:3", steps: int | None = None,
               layers: str | None = None, renormalize: bool = False, generator: str | None = None,
               gan: str | None = None, device: torch.device = torch.device("cpu")) -> dict:
    """Edit every latents file under ``latents_path``; write the images, latents, grid and record into ``out_dir``."""
    from .readers import load_direction
    from ..interfaces import StyleGenerator

    paths = find_latents(latents_path)
    models: dict = {}
    loaded = [(path, *_load(path, generator, gan, device, models)) for path in paths]  # every file read first
    if interpolate is not None:
        target, G_target, _ = _load(Path(interpolate), generator, gan, device, models)
        steps_t = torch.linspace(0, 1, steps or 9).tolist()
        labels = [f"t{t:.2f}" for t in steps_t]
        applied = {"interpolate": str(interpolate), "t": steps_t}
    else:
        G0 = loaded[0][2]
        chosen = direction if isinstance(direction, Direction) else load_direction(direction, G0)
        chosen.check(G0, origin=str(direction))
        num_ws = G0.latent_shapes["ws"][0] if "ws" in G0.latent_shapes else 0
        layer_ids = parse_layers(layers, num_ws) if layers and num_ws else None
        if layers and not num_ws:
            raise DseError(f"--layers {layers}: the {G0.family} generator has no per-layer ws")
        alphas = parse_strengths(strength, steps)
        labels = [f"{a:+.2f}" for a in alphas]
        one = chosen.component(component) if len(chosen) > 1 or component else chosen
        applied = {"direction": {**chosen.record(), "file": str(direction)}, "component": component,
                   "component_name": None if one.names is None else one.names[0], "strengths": alphas,
                   "strength_unit": "std" if one.std is not None else "raw",
                   "std": None if one.std is None else float(one.std[0]), "layers": layer_ids,
                   "renormalize": renormalize}
    rows, outputs = [], []
    for path, latents, G, meta in loaded:
        if interpolate is not None:
            if G is not G_target:
                raise DseError(f"{path} and {interpolate} were inverted with different generators")
            z_space = () if isinstance(G, StyleGenerator) else ("z",)
            edited = interpolate_latents(latents, target, len(labels), z_space=z_space)
        else:
            edited = edit(latents, chosen, alphas, component=component, layers=layer_ids, renormalize=renormalize)
        with torch.no_grad():
            images = torch.cat([G.decode(step) for step in edited]).cpu()
        folder = out_dir / path.stem
        for label, step, image in zip(labels, edited, images):
            save_image(image, folder / f"{label}.png")
            write_latents(folder, label, step, {k: str(v) for k, v in {**meta, "edit": label}.items()}, ["safetensors"])
        rows.append(images)
        outputs.append({"input": str(path), "folder": str(folder)})
    grid = torch.cat(rows)
    captions = [labels[i] if i < len(labels) else None for i in range(len(grid))]  # the steps, under the first row
    save_image(make_grid(grid, nrow=len(labels), labels=captions), out_dir / "grid.png")
    record = {"inputs": outputs, "steps": labels, **applied}
    write_json_atomic(out_dir / "edit.json", record)
    return record
