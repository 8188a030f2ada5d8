"""The ``dse`` command line. Each sub-command is a small function over the Python API.

User errors (:class:`DseError`) print one message and exit with status 2; set
``DSE_DEBUG=1`` (or pass ``--debug``) to see their traceback too.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from .errors import DseError


def _device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, ...")


def cmd_plugins(args: argparse.Namespace) -> int:
    import json

    from .plugins import get_host

    host = get_host()
    rows = host.plugins()
    if args.json:
        families = host.families
        print(json.dumps([
            {"plugin": r.name, "distribution": r.distribution, "version": r.version, "error": r.error,
             "families": [{"name": f, "formats": [fmt.name for fmt in families[f].formats]} for f in r.families]}
            for r in rows
        ], indent=2))
        return 0
    if not rows:
        print("no plugins installed (GAN families come from plugins: pip install dse-plugin-stylegan2)")
        return 0
    for r in rows:
        print(f"{r.name}  ({r.distribution or 'not installed'} {r.version})".rstrip())
        if r.error:
            print(f"  FAILED: {r.error}")
        for name in r.families:
            family = host.families[name]
            print(f"  family {name}: {family.description}")
            for fmt in family.formats:
                print(f"    format {fmt.name}: {fmt.description}")
    return 1 if any(r.error for r in rows) else 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .hub import is_pretrained_dir, sha256_of
    from .loading import load_generator

    out = Path(args.output)
    if is_pretrained_dir(out) and not args.force:
        raise DseError(f"{out} already holds a model", hint="pass --force to overwrite it, or choose another -o")
    generator = load_generator(args.checkpoint, gan=args.gan, device="cpu")
    source = dict(getattr(generator, "source", {}))
    if Path(args.checkpoint).is_file():
        source["sha256"] = sha256_of(args.checkpoint)
    generator.save_pretrained(out, source=source)
    params = sum(p.numel() for p in generator.parameters())
    print(f"converted {args.checkpoint} ({source.get('format', generator.family)}) -> {out}")
    print(f"  {generator.family} generator, {generator.resolution}px, z_dim={generator.z_dim}, "
          f"w_dim={getattr(generator, 'w_dim', '-')}, num_ws={getattr(generator, 'num_ws', '-')}, {params / 1e6:.2f}M parameters")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .images import make_grid, save_image
    from .loading import load_generator, resolve_device

    device = resolve_device(args.device)
    generator = load_generator(args.generator, gan=args.gan, device=device)
    if generator.c_dim and args.class_index is None:
        raise DseError(f"{args.generator} is conditional (c_dim={generator.c_dim})", hint="pass --class INDEX")
    rng = torch.Generator().manual_seed(args.seed)
    out = Path(args.output)
    single_file = out.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")
    images = []
    with torch.no_grad():
        for start in tqdm(range(0, args.num, args.batch_size), desc="sampling", unit="batch", disable=args.num <= args.batch_size):
            n = min(args.batch_size, args.num - start)
            z = torch.randn(n, generator.z_dim, generator=rng).to(device)
            c = None
            if generator.c_dim:
                c = torch.nn.functional.one_hot(torch.full((n,), args.class_index), generator.c_dim).float().to(device)
            x = generator(z, c, truncation_psi=args.truncation, truncation_cutoff=args.truncation_cutoff,
                          noise_mode=args.noise_mode).cpu()
            if not single_file:
                for i, image in enumerate(x):
                    save_image(image, out / f"seed{args.seed}_{start + i:05d}.png")
            images.append(x)
    grid = make_grid(torch.cat(images), nrow=args.nrow)
    target = out if single_file else out / "grid.png"
    save_image(grid, target)
    print(f"wrote {args.num} samples ({generator.family}, {generator.resolution}px, truncation {args.truncation}) -> {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dse", description="Invert images into the latent space of pretrained GANs (DSE).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("plugins", help="list installed plugins, their GAN families and checkpoint formats")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("convert", help="convert a checkpoint (any supported format) to safetensors + config.json")
    p.add_argument("checkpoint", help="checkpoint file or folder")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--gan", help="GAN family (default: detected from the file)")
    p.add_argument("--force", action="store_true", help="overwrite an existing model in the output folder")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("sample", help="draw random samples from a generator")
    p.add_argument("--generator", required=True, help="checkpoint file, converted folder or Hub repo id")
    p.add_argument("--gan", help="GAN family (default: detected)")
    p.add_argument("-n", "--num", type=int, default=16, help="number of samples")
    p.add_argument("-o", "--output", default="samples.png", help="a .png grid, or a folder for one PNG each plus grid.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation", type=float, default=1.0, help="truncation psi (1 = none)")
    p.add_argument("--truncation-cutoff", type=int, default=None, help="truncate only the first K ws")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    p.add_argument("--class", dest="class_index", type=int, default=None, help="class index for conditional generators")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--nrow", type=int, default=None, help="images per grid row")
    _device_arg(p)
    p.set_defaults(func=cmd_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("DSE_DEBUG") == "1"
    try:
        return args.func(args)
    except DseError as exc:
        if debug:
            traceback.print_exc()
        print(f"dse: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
