"""``dse sample``: random samples of a generator, as a grid (and one PNG each)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import IMAGE_SUFFIXES, device_arg, generator_spec, positive_int, truncation_args


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="draw random samples from a generator")
    p.add_argument("--generator", help="checkpoint file, converted folder, Hub repo id or demo:FAMILY")
    p.add_argument("--gan", help="GAN family (default: detected); alone, samples its embedded demo generator")
    p.add_argument("-n", "--num", type=positive_int, default=16, help="number of samples")
    p.add_argument("-o", "--output", default="samples.png", help="a .png grid, or a folder for one PNG each plus grid.png")
    p.add_argument("--seed", type=int, default=0)
    truncation_args(p, 1.0, "truncation psi (1 = none; families with truncation only)")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    p.add_argument("--class", dest="classes", nargs="+", default=None, metavar="CLASS",
                   help="class index or name for conditional generators (several: cycled over the samples)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--nrow", type=positive_int, default=None, help="images per grid row")
    device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ..device import resolve_device
    from ..errors import DseError
    from ..images import make_grid, save_image
    from ..interfaces import check_psi, check_truncation
    from ..loading import load_generator

    check_psi(args.truncation_psi)  # before anything loads
    device = resolve_device(args.device)
    spec = generator_spec(args)
    G = load_generator(spec, gan=args.gan, device=device)
    check_truncation(G, args.truncation_psi, args.truncation_cutoff)
    if G.c_dim and args.classes is None:
        raise DseError(f"{spec} is conditional ({G.c_dim} classes)", hint="pass --class INDEX (or a class name)")
    if args.classes is not None and not G.c_dim:
        raise DseError(f"--class {' '.join(args.classes)}: {spec} is unconditional", hint="drop --class")
    classes = G.class_vector(args.classes) if args.classes else None  # (K, c_dim), checked before any sampling
    rng = torch.Generator().manual_seed(args.seed)
    out = Path(args.output)
    single_file = out.suffix.lower() in IMAGE_SUFFIXES
    images = []
    with torch.no_grad():
        for start in tqdm(range(0, args.num, args.batch_size), desc="sampling", unit="batch", disable=args.num <= args.batch_size):
            n = min(args.batch_size, args.num - start)
            z = G.sample_z(n, args.truncation_psi, generator=rng).to(device)
            c = None if classes is None else classes[torch.arange(start, start + n) % len(classes)].to(device)
            x = G(z, c, truncation_psi=args.truncation_psi, truncation_cutoff=args.truncation_cutoff,
                  noise_mode=args.noise_mode).cpu()
            if not single_file:
                for i, image in enumerate(x):
                    save_image(image, out / f"seed{args.seed}_{start + i:05d}.png")
            images.append(x)
    grid = make_grid(torch.cat(images), nrow=args.nrow)
    target = out if single_file else out / "grid.png"
    save_image(grid, target)
    print(f"wrote {args.num} samples ({G.family}, {G.resolution}px, truncation psi {args.truncation_psi}) -> {target}")
    return 0
