"""``dse plugins``: installed plugins, their GAN families and checkpoint formats."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    p = sub.add_parser("plugins", help="list installed plugins, their GAN families and checkpoint formats")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..plugins import get_host

    host = get_host()
    rows = host.plugins()
    if args.json:
        families = host.families
        print(json.dumps([
            {"plugin": r.name, "distribution": r.distribution, "version": r.version, "error": r.error, "warning": r.warning,
             "families": [{"name": f, "latents": families[f].latent, "formats": [fmt.name for fmt in families[f].formats],
                           "encoder_formats": [fmt.name for fmt in families[f].encoder_formats]} for f in r.families]}
            for r in rows
        ], indent=2))
        return 0
    if host.skipped:
        print(f"not loaded (DSE_LOAD_PLUGINS): {', '.join(sorted(host.skipped))}")
    if not rows:
        if not host.skipped:
            print("no plugins installed (GAN families come from plugins: pip install dse-plugin-stylegan2)")
        return 0
    for r in rows:
        print(f"{r.name}  ({' '.join(filter(None, [r.distribution or 'not installed', r.version]))})")
        if r.error:
            print(f"  FAILED: {r.error}")
        if r.warning:
            print(f"  warning: {r.warning}")
        for name in r.families:
            family = host.families[name]
            print(f"  family {name}: {family.description}; inversion predicts {family.latent}")
            for fmt in family.formats:
                print(f"    format {fmt.name}: {fmt.description}")
            for fmt in family.encoder_formats:
                print(f"    encoder format {fmt.name}: {fmt.description}")
    return 1 if any(r.error for r in rows) else 0
