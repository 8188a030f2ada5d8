"""``dse invert``: images (files or folders) -> latents, reconstructions, a grid and the metrics table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DseError
from .common import device_arg, lpips_args, lpips_note, optional_lpips, positive_int, refine_method


def add_parser(sub) -> None:
    p = sub.add_parser("invert", help="invert images (files or folders) with an encoder")
    p.add_argument("inputs", nargs="+", help="images (PNG, JPEG, WebP, BMP, TIFF) or folders of them")
    p.add_argument("-o", "--output", default="out", help="output folder")
    p.add_argument("--gan", help="GAN family; alone, uses its embedded demo generator and encoder")
    p.add_argument("--generator", help="checkpoint, converted folder, Hub repo id or demo:FAMILY")
    p.add_argument("--encoder", help="encoder folder (a run's encoder/), Hub repo id, a family's encoder checkpoint "
                   "(e.g. the DSE authors' .pth) or demo:FAMILY")
    p.add_argument("--class", dest="class_", default=None, metavar="CLASS",
                   help="conditional generators: the class of every image (index, or name: case, _ and - "
                   "ignored, e.g. golden_retriever), instead of the encoder's prediction (which is still reported)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--format", nargs="*", choices=["npy", "npz"], default=[],
                   help="also write the latents as .npy (the generator's one latent as a bare array, e.g. ws for "
                   "InterFaceGAN) or .npz (every latent by name)")
    p.add_argument("--background", default=None, metavar="COLOUR",
                   help="what transparent pixels become: white, black, grey or #rrggbb (default: what the model's "
                   "images look like, as its folder records; else white)")
    p.add_argument("--align", action="store_true",
                   help="face photos: invert each one's FFHQ face crop (eyes level, where FFHQ has them, from dlib's "
                   "landmarks; needs pip install \"dse-gan[align]\"), written to OUT/aligned/; a photo without a "
                   "face is skipped and named")
    p.add_argument("--identity", action="store_true",
                   help="faces: add the identity metrics, the cosine similarity of dlib's face descriptors of each "
                   "image and its reconstruction (at the image's landmarks) and whether dlib judges them the same "
                   "person (distance < 0.6); an image without a face has none (needs pip install \"dse-gan[align]\")")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    p.add_argument("--no-lpips", action="store_true", help="skip the LPIPS metric (and the refinement loss's LPIPS term)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (else: one over the batches and, refining, one per stage of each batch; "
                   "on a terminal redrawn in place, in a log a line every few seconds and each bar's final state)")
    p.add_argument("--force", action="store_true", help="use an encoder trained for another generator anyway")
    group = p.add_argument_group("refinement of each inversion (paper Table III); everything written is after it")
    group.add_argument("--refine", choices=["latents", "encoder", "generator", "w"],
                       help="latents: optimise the encoder's latents per image (the paper's In-domain row; w is "
                       "the old name); encoder: fine-tune a copy of E on each batch, then re-encode it (DSE (E); "
                       "results depend on --batch-size); generator: tune a copy of G per image with the latents "
                       "fixed (PTI, with its loss: MSE + LPIPS), written to OUT/generators/NAME/ for dse generate")
    group.add_argument("--refine-steps", type=int, default=None,
                       help="Adam steps (default 100; 300 for generator)")
    group.add_argument("--refine-lr", type=float, default=None,
                       help="Adam learning rate (default 0.01 for latents, 1e-3 for encoder, 3e-4 for generator)")
    group.add_argument("--then", choices=["latents", "encoder", "generator", "w"], default=None,
                       help="a second stage, starting from the first's latents: e.g. --refine latents --then "
                       "generator (PTI: optimise the pivots, then tune G on them); generator comes last, encoder "
                       "first (it re-encodes the images)")
    group.add_argument("--then-steps", type=int, default=None, help="the second stage's steps (default as above)")
    group.add_argument("--then-lr", type=float, default=None, help="the second stage's learning rate")
    group.add_argument("--shared-tune", action="store_true",
                       help="tune one G on the whole batch (one batch only; written to OUT/generator/) instead of "
                       "one per image")
    group.add_argument("--refine-preset", default=None,
                       help="whose image loss terms the latents and encoder stages minimise (tuning G minimises "
                       "PTI's): paper-s2 (default), paper-s1, code-s2, code-s1; "
                       "LPIPS is a term only with trained VGG16 weights or --allow-untrained-lpips, never with --no-lpips")
    lpips_args(p)
    device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import distributed
    from ..align import FaceDetector
    from ..identity import FaceIdentity
    from ..data import parse_colour
    from ..device import resolve_device
    from ..invert import Inverter, check_output_folder, invert_files, scan_for_inversion
    from ..loading import inversion_metadata, load_pair
    from ..refine import make_refinement

    method = refine_method(args.refine)
    refine = dict(method=method, steps=args.refine_steps, lr=args.refine_lr, preset=args.refine_preset,
                  then=refine_method(args.then), then_steps=args.then_steps, then_lr=args.then_lr,
                  shared_tune=args.shared_tune)
    make_refinement(**refine)  # bad --refine-* options fail before anything loads
    background = None if args.background is None else parse_colour(args.background)
    align = FaceDetector() if args.align else None  # before any model loads: without the extra, what to install
    identity = FaceIdentity() if args.identity else None
    device = resolve_device(args.device)
    encoder_spec = args.encoder or (f"demo:{args.gan}" if not args.generator and args.gan else None)
    if encoder_spec is None:
        raise DseError("say which encoder to use", hint="pass --encoder PATH (a trained run's encoder/ folder, or a Hub repo id)")
    scan = scan_for_inversion(args.inputs)  # no image to read: fail before any model loads or -o is made
    check_output_folder(Path(args.output))  # an unusable -o: fail before loading, not after tuning a batch
    dist, device = distributed.init(device)
    G, encoder, spec = load_pair(args.generator, args.encoder, args.gan, device=device, force=args.force)
    c = None if args.class_ is None else G.class_vector([args.class_])
    lpips = optional_lpips(args, refining=bool(method))
    if lpips is not None:
        lpips = lpips.to(device)
    metadata = inversion_metadata(G, spec, encoder_spec)
    # each stage's bar sits under the batch bar on a terminal; in a log both are plain lines (progress.progress_bar)
    stage_bars = not args.quiet and dist.is_main
    inverter = Inverter(G, encoder, noise_mode=args.noise_mode,
                        refinement=make_refinement(**refine, lpips=lpips, progress=stage_bars))
    report = invert_files(scan, inverter, args.output, batch_size=args.batch_size,
                          formats=["safetensors", *args.format], lpips=lpips, lpips_note=lpips_note(lpips),
                          metadata=metadata, c=c, background=background, align=align, identity=identity, dist=dist,
                          progress=not args.quiet,
                          log=lambda m: print(m, file=sys.stderr))
    if dist.is_main:
        failed = f"{len(report.failed)} failed: " + ", ".join(str(f.path) for f in report.failed)
        if report.inverted == 0 and not report.interrupted:
            print(f"no image was inverted: {failed}")
        else:
            print(f"inverted {report.inverted} image(s) -> {report.out_dir}" + (f"; {failed}" if report.failed else ""))
    distributed.shutdown()
    if report.interrupted:
        print(f"dse: interrupted: {report.out_dir / 'metrics.json'} covers the {report.inverted} image(s) done",
              file=sys.stderr)
        return 130
    return 1 if report.failed else 0
