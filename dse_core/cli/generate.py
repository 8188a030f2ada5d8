"""``dse generate``: images back from latents files written by ``dse invert`` (or any .npy / .npz of them)."""

from __future__ import annotations

import argparse
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
    from ..editing.files import open_latents
    from ..images import save_image
    from ..latents import find_latents

    if Path(args.output).suffix.lower() in IMAGE_SUFFIXES:
        raise DseError(f"-o {args.output}: dse generate writes one PNG per latent file into a folder",
                       hint="pass a folder name")
    device = resolve_device(args.device)
    paths = find_latents(args.latents)
    generators: dict[str, object] = {}
    checked: set[tuple[str, str]] = set()  # (generator spec, recorded fingerprint) pairs already compared
    for path in paths:
        latents, G, _ = open_latents(path, args.generator, args.gan, device, generators, checked, args.force)
        with torch.no_grad():
            image = G.decode(latents, noise_mode=args.noise_mode)[0]
        save_image(image.cpu(), Path(args.output) / f"{path.stem}.png")
    print(f"generated {len(paths)} image(s) -> {args.output}")
    return 0
