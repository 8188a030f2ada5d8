"""``dse edit``: move inverted latents along a direction (or towards other latents) and decode every step."""

from __future__ import annotations

import argparse
import re

from .common import device_arg


def add_parser(sub) -> None:
    p = sub.add_parser("edit", help="edit inverted latents along a direction, or interpolate between two",
                       description="examples:\n"
                       "  dse edit out/latents/ --direction dirs/ --component 3 --strength -3:3 --steps 7 -o edits/\n"
                       "  dse edit out/latents/a.safetensors --direction smile_w_boundary.npy --layers 0-5 -o edits/\n"
                       "  dse edit out/latents/a.safetensors --interpolate out/latents/b.safetensors --steps 9 -o morph/",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    # "--strength -3:3" and "-2,0,2" are values, not options (argparse takes only plain negative numbers for values)
    p._negative_number_matcher = re.compile(r"^-\d*\.?\d+([:,]-?\d*\.?\d+)*$")
    p.add_argument("latents", help="a latents file written by dse invert (.safetensors, .npz, .npy) or a folder of them")
    p.add_argument("-o", "--output", required=True, help="output folder: grid.png, one folder per input, edit.json")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--direction", help="a direction: dse directions' folder or file, InterFaceGAN / idinvert .npy, "
                      "GANSpace .npz, e4e / HyperStyle / PTI .pt, rosinality's factor file")
    what.add_argument("--interpolate", metavar="LATENTS", help="a second latents file: morph each input towards it")
    p.add_argument("--component", type=int, default=0, help="which component of a direction set (default 0)")
    p.add_argument("--strength", default=None, help="alpha: one value (2), a list (-2,0,2) or a range (-3:3, with "
                   "--steps); in standard deviations where the direction knows them (PCA, SeFa, SVM: the latents' "
                   "spread along it), else raw. Default -3:3; 0:1 for a class move")
    p.add_argument("--steps", type=int, default=None, help="steps of a --strength range (default 7) or of "
                   "--interpolate (default 9)")
    p.add_argument("--layers", help="ws layers to edit, e.g. 0-5 or 0,2,4 or 8- (style-based families; default: the "
                   "direction's own, else all)")
    p.add_argument("--renormalize", action="store_true", help="z-space edits on the sphere where z lives: z scaled "
                   "to norm sqrt(z_dim) before the edit and after it (InterFaceGAN's z edits; for generators that "
                   "normalize z, as PGGAN does, the image is unchanged by the first scaling)")
    p.add_argument("--generator", help="override the generator recorded in the latents")
    p.add_argument("--force", action="store_true", help="edit with --generator even if it is not the recorded one")
    p.add_argument("--gan", help="GAN family (default: recorded in the latents)")
    device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..device import resolve_device
    from ..editing import edit_files

    record = edit_files(args.latents, Path(args.output), direction=args.direction, interpolate=args.interpolate,
                        component=args.component, strength=args.strength, steps=args.steps, layers=args.layers,
                        renormalize=args.renormalize, generator=args.generator, gan=args.gan,
                        force=args.force, device=resolve_device(args.device))
    print(f"edited {len(record['inputs'])} latent(s) x {len(record['steps'])} step(s) -> {args.output} "
          f"(grid.png, edit.json)")
    return 0
