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
    from .encoder.convert import sniff_authors_encoder
    from .hub import is_pretrained_dir, sha256_of
    from .loading import load_encoder, load_generator

    out = Path(args.output)
    if is_pretrained_dir(out) and not args.force:
        raise DseError(f"{out} already holds a model", hint="pass --force to overwrite it, or choose another -o")
    source_path = Path(args.checkpoint)
    if source_path.is_file() and sniff_authors_encoder(source_path):
        model = load_encoder(source_path, gan=args.gan, device="cpu")
    else:
        model = load_generator(args.checkpoint, gan=args.gan, device="cpu")
    source = dict(getattr(model, "source", {}))
    if source_path.is_file():
        source["sha256"] = sha256_of(source_path)
    model.save_pretrained(out, source=source)
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} ({source.get('format', model.family)}) -> {out}")
    print(f"  {model.family} {model.kind}, {model.resolution}px, w_dim={getattr(model, 'w_dim', '-')}, "
          f"num_ws={getattr(model, 'num_ws', '-')}, {params / 1e6:.2f}M parameters")
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


def _generator_spec(args: argparse.Namespace) -> str:
    """--generator, or the --gan family's embedded demo."""
    if args.generator:
        return args.generator
    if not args.gan:
        raise DseError("say which generator to use", hint="pass --gan FAMILY (its demo model) or --generator PATH")
    return f"demo:{args.gan}"


def _lpips_for(args: argparse.Namespace, needed: bool):
    """The LPIPS module the user's options allow, or None when no trained backbone is available and none was allowed."""
    from .loss import load_lpips

    if not needed:
        return None
    return load_lpips(args.lpips_weights, hub_repo=args.lpips_hub, allow_untrained=args.allow_untrained_lpips)


def _lpips_note(lpips) -> str:
    if lpips is None:
        return "not computed"
    return "VGG, trained backbone" if lpips.trained else "VGG, UNTRAINED backbone (not the published metric)"


def cmd_invert(args: argparse.Namespace) -> int:
    from .invert import Inverter, invert_files
    from .loading import load_encoder, load_generator, resolve_device
    from .train import distributed

    device = resolve_device(args.device)
    dist, device = distributed.init(device)
    generator_spec = _generator_spec(args)
    encoder_spec = args.encoder or (f"demo:{args.gan}" if not args.generator and args.gan else None)
    if encoder_spec is None:
        raise DseError("say which encoder to use", hint="pass --encoder PATH (a trained run's encoder/ folder, or a Hub repo id)")
    generator = load_generator(generator_spec, gan=args.gan, device=device)
    encoder = load_encoder(encoder_spec, gan=generator.family, device=device)
    try:
        lpips = _lpips_for(args, needed=not args.no_lpips)
    except DseError as exc:
        if args.lpips_weights or args.lpips_hub:
            raise
        print(f"dse: LPIPS metric skipped: {exc.message}", file=sys.stderr)
        lpips = None
    if lpips is not None:
        lpips = lpips.to(device)
    metadata = {"family": generator.family, "generator": generator_spec, "encoder": encoder_spec,
                "resolution": generator.resolution, "latents": ",".join(generator.latent_names)}
    report = invert_files(args.inputs, Inverter(generator, encoder, noise_mode=args.noise_mode), args.output,
                          batch_size=args.batch_size, formats=["safetensors", *args.format], lpips=lpips,
                          lpips_note=_lpips_note(lpips), metadata=metadata, dist=dist, progress=not args.quiet,
                          log=lambda m: print(m, file=sys.stderr))
    if dist.is_main:
        print(f"inverted {report.inverted} image(s) -> {report.out_dir}"
              + (f"; {len(report.failed)} failed: " + ", ".join(str(f.path) for f in report.failed) if report.failed else ""))
    distributed.shutdown()
    return 1 if report.failed else 0


def cmd_train(args: argparse.Namespace) -> int:
    import attrs

    from .loading import load_generator, resolve_device
    from .loss import ImageWeights, get_preset
    from .train import TrainConfig, train

    preset = get_preset(args.preset)
    device = resolve_device(args.device)
    generator_spec = _generator_spec(args)
    generator = load_generator(generator_spec, gan=args.gan)
    family = _family(generator.family)
    if family.encoder is None:
        raise DseError(f"the {family.name} plugin defines no encoder variant; it cannot be inverted yet")
    encoder_config = family.encoder(generator)
    encoder_config = attrs.evolve(encoder_config, downsample="fused" if preset.fused_downsample else "avgpool")
    loss_config = preset.loss
    if args.lpips_weight is not None:
        loss_config = attrs.evolve(loss_config, image=attrs.evolve(loss_config.image, lpips=args.lpips_weight))
    config = TrainConfig(
        preset=args.preset, samples=args.samples, batch_size=args.batch_size, lr=args.lr,
        truncation_psi=args.truncation, truncation_cutoff=args.truncation_cutoff,
        style_mixing_prob=preset.style_mixing_prob if args.style_mixing is None else args.style_mixing,
        seed=args.seed, log_every=args.log_every, grid_every=args.grid_every,
        checkpoint_every=args.checkpoint_every, precision=args.precision,
    )
    lpips = _lpips_for(args, needed=loss_config.image.lpips > 0)
    info = {"id": generator_spec, "family": generator.family, "resolution": generator.resolution,
            "source": getattr(generator, "source", {})}
    try:
        result = train(generator, args.output, config, loss_config, encoder_config, lpips=lpips, resume=args.resume,
                       device=device, generator_info=info, progress=not args.quiet,
                       log=lambda m: print(m, file=sys.stderr))
    except KeyboardInterrupt:
        return 130
    print(f"trained {result.steps} steps ({result.samples} samples) -> {result.run_dir / 'encoder'}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import torch
    from safetensors import safe_open

    from .images import save_image
    from .loading import load_generator, resolve_device

    device = resolve_device(args.device)
    paths = sorted(Path(args.latents).glob("*.safetensors")) if Path(args.latents).is_dir() else [Path(args.latents)]
    if not paths:
        raise DseError(f"{args.latents}: no .safetensors latents found", hint="point at the latents/ folder of a `dse invert` run")
    generators: dict[str, object] = {}
    for path in paths:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            latents = {k: f.get_tensor(k).to(device) for k in f.keys()}
        spec = args.generator or meta.get("generator")
        if not spec:
            raise DseError(f"{path}: no generator recorded in its metadata", hint="pass --generator")
        if spec not in generators:
            generators[spec] = load_generator(spec, gan=args.gan or meta.get("family"), device=device)
        with torch.no_grad():
            image = generators[spec].decode(latents, noise_mode=args.noise_mode)[0]
        save_image(image.cpu(), Path(args.output) / f"{path.stem}.png")
    print(f"generated {len(paths)} image(s) -> {args.output}")
    return 0


def _family(name: str):
    from .plugins import get_host

    return get_host().family(name)


def _lpips_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("LPIPS (VGG16 backbone weights; never downloaded)")
    group.add_argument("--lpips-weights", help="a local torchvision vgg16 state dict (.pth or .safetensors)")
    group.add_argument("--lpips-hub", help="a Hugging Face repo holding those weights (e.g. timm/vgg16.tv_in1k)")
    group.add_argument("--allow-untrained-lpips", action="store_true",
                       help="with no weights found, run LPIPS on an untrained backbone (recorded in the outputs)")


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

    p = sub.add_parser("invert", help="invert images (files or folders) with an encoder")
    p.add_argument("inputs", nargs="+", help="images (PNG, JPEG, WebP) or folders of them")
    p.add_argument("-o", "--output", default="out", help="output folder")
    p.add_argument("--gan", help="GAN family; alone, uses its embedded demo generator and encoder")
    p.add_argument("--generator", help="checkpoint, converted folder, Hub repo id or demo:FAMILY")
    p.add_argument("--encoder", help="encoder folder (a run's encoder/), Hub repo id, authors' .pth or demo:FAMILY")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--format", nargs="*", choices=["npy", "npz"], default=[],
                   help="also write w+ as .npy (InterFaceGAN) or .npz (NVlabs projector)")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    p.add_argument("--no-lpips", action="store_true", help="skip the LPIPS metric")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _lpips_args(p)
    _device_arg(p)
    p.set_defaults(func=cmd_invert)

    p = sub.add_parser("train", help="train a DSE encoder for a generator (resumable; torchrun for several processes)")
    p.add_argument("--gan", help="GAN family; alone, trains on its embedded demo generator")
    p.add_argument("--generator", help="checkpoint, converted folder, Hub repo id or demo:FAMILY")
    p.add_argument("-o", "--output", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in -o from its latest checkpoint")
    p.add_argument("--preset", default="paper-s2", help="paper-s2 (default), paper-s1, code-s2, code-s1")
    p.add_argument("--samples", type=int, default=210_000, help="training budget in samples (paper: 30000 x 7)")
    p.add_argument("--batch-size", type=int, default=None, help="per process (default 8 / 4 / 2 at 256 / 512 / 1024 px)")
    p.add_argument("--lr", type=float, default=0.0015)
    p.add_argument("--truncation", type=float, default=1.0, help="truncation psi of the training samples")
    p.add_argument("--truncation-cutoff", type=int, default=None)
    p.add_argument("--style-mixing", type=float, default=None, help="style-mixing probability (default: the preset's)")
    p.add_argument("--lpips-weight", type=float, default=None, help="override the preset's LPIPS weight (0: no LPIPS)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=10, help="steps")
    p.add_argument("--grid-every", type=int, default=500, help="steps")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32", help="bf16/fp16 on GPUs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _lpips_args(p)
    _device_arg(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="images back from latents saved by dse invert")
    p.add_argument("latents", help="a latents .safetensors file or a folder of them")
    p.add_argument("-o", "--output", default="regen", help="output folder")
    p.add_argument("--generator", help="override the generator recorded in the latents")
    p.add_argument("--gan", help="GAN family (default: recorded in the latents)")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    _device_arg(p)
    p.set_defaults(func=cmd_generate)
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
    except BrokenPipeError:  # `dse plugins | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _exit(code: int) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # torch 2.14 + gloo: a process that used DistributedDataParallel can abort in C++ static
        # destructors at interpreter exit ("terminate called without an active exception"), turning
        # a finished run into a failure. Every output is written and closed by now: leave directly.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def run() -> None:
    """The console script: ``dse ...``."""
    _exit(main())


if __name__ == "__main__":
    run()
