"""``dse convert``: any checkpoint a plugin reads (generator or encoder) -> config.json + model.safetensors."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert a checkpoint (any supported format) to safetensors + config.json")
    p.add_argument("checkpoint", help="checkpoint file or folder, registry id or Hub repo id")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--gan", help="GAN family (default: detected from the file)")
    p.add_argument("--force", action="store_true", help="overwrite an existing model in the output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..loading import convert_checkpoint, describe_model

    model = convert_checkpoint(args.checkpoint, args.output, gan=args.gan, force=args.force)
    print(f"converted {args.checkpoint} ({model.source.get('format', model.family)}) -> {args.output}")
    print(f"  {describe_model(model)}")
    return 0
