"""``dse generate``: images back from latents files written by ``dse invert`` (or any .npy / .npz of them)."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from ..errors import DseError
from .common import IMAGE_SUFFIXES, device_arg


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="images back from latents saved by dse invert")
    p.add_argument("latents", help="a latents file (.safetensors, .npz, .npy) or a folder of them")
    p.add_argument("-o", "--output", default="regen", help="output folder")
    p.add_argument("--generator", help="override the generator recorded in the latents")
    p.add_argument("--force", action="store_true", help="decode with --generator even if it is not the recorded one")
    p.add_argument("--gan", help="GAN family (default: recorded in the latents)")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..device import resolve_device
    from ..images import save_image
    from ..latents import find_latents, match_latents, read_latents
    from ..loading import load_generator

    if Path(args.output).suffix.lower() in IMAGE_SUFFIXES:
        raise DseError(f"-o {args.output}: dse generate writes one PNG per latent file into a folder",
                       hint="pass a folder name")
    device = resolve_device(args.device)
    paths = find_latents(args.latents)
    generators: dict[str, object] = {}
    checked: set[tuple[str, str]] = set()  # (generator spec, recorded fingerprint) pairs already compared
    for path in paths:
        file = read_latents(path)
        spec = args.generator or file.metadata.get("generator") or (f"demo:{args.gan}" if args.gan else None)
        if not spec:
            raise DseError(f"{path}: no generator recorded (a {path.suffix} file without its .safetensors beside it)",
                           hint="pass --generator with the generator the latents were inverted with "
                                "(--gan FAMILY alone: its demo generator)")
        if spec not in generators:
            generators[spec] = load_generator(spec, gan=args.gan or file.metadata.get("family"), device=device)
        G = generators[spec]
        latents = {k: v.to(device) for k, v in match_latents(file, G, spec).items()}
        recorded = file.metadata.get("generator_fingerprint")  # absent in latents of older dse versions
        if recorded and (spec, recorded) not in checked:
            _check_fingerprint(path, file.metadata, G, spec, args.force)
            checked.add((spec, recorded))
        with torch.no_grad():
            image = G.decode(latents, noise_mode=args.noise_mode)[0]
        save_image(image.cpu(), Path(args.output) / f"{path.stem}.png")
    print(f"generated {len(paths)} image(s) -> {args.output}")
    return 0


def _check_fingerprint(path: Path, metadata: dict, G, spec: str, force: bool) -> None:
    """Latents decode as they were inverted only with the generator ``dse invert`` recorded (its fingerprint)."""
    from ..errors import DseWarning
    from ..models.format import describe_generator, generator_fingerprint

    found = generator_fingerprint(G)
    if found == metadata["generator_fingerprint"]:
        return
    wanted = describe_generator({"id": metadata.get("generator"), "fingerprint": metadata["generator_fingerprint"]})
    message = (f"{path}: these latents were inverted with generator {wanted}, not with "
               f"{describe_generator({'id': spec, 'fingerprint': found})}")
    if not force:
        raise DseError(message, hint="pass --generator with the generator they were inverted with, "
                       "or --force to decode them with this one anyway")
    warnings.warn(message + "; decoding anyway (--force)", DseWarning, stacklevel=2)
