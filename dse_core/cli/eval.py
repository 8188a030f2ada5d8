"""``dse eval``: encoders x refinements on held-out G(z) and/or a folder of images -> report.md/csv/json, grid.png."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import DseError
from .common import device_arg, lpips_args, lpips_note, optional_lpips, positive_int, refine_method

DEFAULT_SYNTHETIC = 256


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="compare encoders and refinements: PSNR, SSIM, MSE, LPIPS, cosine, s/image")
    p.add_argument("-o", "--output", default="report", help="output folder (report.md, report.csv, per_image.csv, "
                   "report.json, grid.png)")
    p.add_argument("--gan", help="GAN family; alone, uses its embedded demo generator and encoder")
    p.add_argument("--generator", help="checkpoint, converted folder, Hub repo id or demo:FAMILY")
    p.add_argument("--encoder", action="append", default=[], metavar="ENCODER",
                   help="an encoder (as dse invert takes it); repeat to compare several")
    p.add_argument("--synthetic", type=positive_int, default=None, metavar="N",
                   help=f"evaluate on N G(z) samples from --seed (default {DEFAULT_SYNTHETIC} when no --images)")
    p.add_argument("--images", default=None, metavar="FOLDER", help="evaluate on these images, read as dse invert does "
                   "(a file it cannot read is skipped and listed in the report)")
    p.add_argument("--class", dest="class_", default=None, metavar="CLASS",
                   help="conditional generators: the class of every --images image, as dse invert takes it (index "
                   "or name); every method decodes it and the encoder's prediction is scored against it (G(z) "
                   "samples are scored against their sampled class)")
    p.add_argument("--refine", action="append", default=[], metavar="METHOD",
                   help="none, or a dse invert --refine method (latents, encoder, generator), or stages joined "
                   "by + (latents+generator: dse invert's --refine latents --then generator); a stage's own steps "
                   "after a colon (latents:20+generator:300; else --refine-steps, else the method's default); "
                   "repeat to compare (default: none)")
    p.add_argument("--optimise-from-mean", type=int, action="append", default=[], metavar="STEPS",
                   help="the baseline without an encoder (Image2StyleGAN, NVlabs' projector): STEPS Adam steps on "
                   "the latents from G's mean latent (lr: --optimise-lr; loss: --refine-preset); repeat to compare")
    p.add_argument("--optimise-lr", type=float, default=None, metavar="LR",
                   help="--optimise-from-mean's Adam learning rate, so the baseline runs at its own best (default: "
                   "--refine-lr, else the latents refinement's)")
    p.add_argument("--refine-steps", type=int, default=None, help="Adam steps of every refinement stage without "
                   "its own (--refine latents:STEPS) (default: the method's, 100; generator 300)")
    p.add_argument("--refine-lr", type=float, default=None, help="Adam learning rate (default: per method)")
    p.add_argument("--refine-preset", default=None, help="whose image loss terms to minimise (default paper-s2)")
    p.add_argument("--seed", type=int, default=None, help="the G(z) samples' seed (default 2026: held out from "
                   "training, see dse_core.evaluate)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--no-lpips", action="store_true", help="skip the LPIPS metric (and the refinement loss's LPIPS term)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help="use an encoder trained for another generator anyway")
    p.add_argument("--align", action="store_true", help="face photos: evaluate on each --images photo's FFHQ face "
                   "crop, as dse invert --align makes it (needs pip install \"dse-gan[align]\")")
    p.add_argument("--identity", action="store_true", help="faces: add the identity columns, the cosine similarity of "
                   "dlib's face descriptors of input and reconstruction (at the input's landmarks) and the share "
                   "judged the same person; inputs without a face are left out and counted (needs pip install "
                   "\"dse-gan[align]\")")
    lpips_args(p)
    device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..device import resolve_device
    from ..evaluate import DEFAULT_SEED, evaluate, markdown, write_report
    from ..invert import scan_for_inversion

    methods = [_method(m) for m in args.refine] or [None]
    refinements = _refinements(args, methods, lpips=None)  # bad --refine* options fail before anything loads
    mean_starts = _mean_starts(args, lpips=None)
    _refuse_repeats(args, refinements, mean_starts)
    _check_output(args.output)
    if args.images is not None:
        scan_for_inversion([args.images])  # no image to read: fail before any model loads
    elif args.class_ is not None:
        raise DseError("--class is the class of the --images: G(z) samples keep their sampled class",
                       hint="pass --images FOLDER, or drop --class")
    synthetic = args.synthetic or (0 if args.images else DEFAULT_SYNTHETIC)
    device = resolve_device(args.device)
    align = _face_detector(args)  # before any model loads: without the extra, what to install
    identity = _face_identity(args)
    G, encoders = _models(args, device)
    c = None if args.class_ is None else G.class_vector([args.class_])
    lpips = optional_lpips(args, refining=any(methods) or bool(mean_starts))
    if lpips is not None:
        lpips = lpips.to(device)
        refinements, mean_starts = _refinements(args, methods, lpips), _mean_starts(args, lpips)
    report = evaluate(G, encoders, refinements, images=args.images, synthetic=synthetic,
                      seed=DEFAULT_SEED if args.seed is None else args.seed, batch_size=args.batch_size,
                      lpips=lpips, lpips_note=lpips_note(lpips), device=device, progress=not args.quiet,
                      log=lambda m: None if args.quiet else print(m, file=sys.stderr), mean_starts=mean_starts, c=c,
                      align=align, identity=identity)
    write_report(report, args.output)
    print(markdown(report))
    print(f"\nwrote report.md, report.csv, per_image.csv, report.json, grid.png -> {args.output}")
    return 0


def _face_detector(args: argparse.Namespace):
    if not args.align:
        return None
    if args.images is None:
        raise DseError("--align aligns the --images photos: G(z) samples are the generator's own crop already",
                       hint="pass --images FOLDER, or drop --align")
    from ..align import FaceDetector

    return FaceDetector()


def _face_identity(args: argparse.Namespace):
    if not args.identity:
        return None
    from ..identity import FaceIdentity

    return FaceIdentity()


def _check_output(folder: str) -> None:
    """-o must be (or become) a folder we can write in: found before the models load and the compute runs."""
    out = Path(folder)
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise DseError(f"-o {folder}: {existing} is a file, not a folder",
                       hint="pass a new or existing folder for the report (report.md, report.csv, ...)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DseError(f"-o {folder}: cannot write in {existing}", hint="pass a folder you can write to")


def _method(spec: str) -> list[tuple[str, int | None]] | None:
    """--refine SPEC: None for none, else its stages as (method, steps or None): latents:20+generator -> [("latents",
    20), ("generator", None)]."""
    spec = spec.strip().lower()
    return None if spec == "none" else [_stage(spec, part) for part in spec.split("+")]


def _stage(spec: str, part: str) -> tuple[str, int | None]:
    from ..refine import METHODS

    name, colon, steps = (s.strip() for s in part.partition(":"))
    if name == "none" and (colon or "+" in spec):
        raise DseError(f"--refine {spec}: none is no refinement, so it has no steps and no stages",
                       hint="--refine none alone (E alone), or a method: latents, encoder, generator")
    if name not in (*METHODS, "w"):
        raise DseError(f"unknown refinement {name!r}", hint=f"use --refine none, {', '.join(METHODS)} (stages joined "
                       "by +, e.g. latents+generator; a stage's steps after a colon, e.g. latents:20)")
    if colon and not (steps.isdigit() and int(steps) >= 1):  # 0 steps: --refine none with a refinement's overhead
        raise DseError(f"--refine {spec}: {name}'s steps must be a whole number >= 1, not {steps!r}",
                       hint="e.g. --refine latents:100 or --refine latents:20+generator:300 (no refinement: none)")
    return refine_method(name), int(steps) if colon else None


def _refinements(args: argparse.Namespace, methods, lpips) -> list:
    """(--refine SPEC, its Refinement or None) per --refine; a stage without its own steps takes --refine-steps."""
    from ..refine import make_refinement

    options = dict(steps=args.refine_steps, lr=args.refine_lr, preset=args.refine_preset)
    if not any(methods):  # --refine-* without a method: its one-line error (--optimise-from-mean uses lr and preset)
        make_refinement(None, **(dict(steps=options["steps"]) if args.optimise_from_mean else options))
    return [(spec, _refinement(make_refinement, spec, m, options, lpips) if m else None)
            for spec, m in zip(args.refine or ["none"], methods)]


def _refuse_repeats(args: argparse.Namespace, refinements, mean_starts) -> None:
    """The same method twice (--encoder E twice, --refine w and latents, ...): refused before any model loads."""
    from ..evaluate import method_names

    method_names(_encoder_specs(args), [r for _, r in refinements], mean_starts)


def _mean_starts(args: argparse.Namespace, lpips) -> list:
    """--optimise-from-mean STEPS: latent refinements (--optimise-lr, --refine-preset) from G's mean latent."""
    from ..refine import make_refinement

    if args.optimise_lr is not None and not args.optimise_from_mean:
        raise DseError("--optimise-lr given without --optimise-from-mean", hint="add --optimise-from-mean STEPS")
    lr = args.refine_lr if args.optimise_lr is None else args.optimise_lr
    if bad := [s for s in args.optimise_from_mean if s < 0]:
        raise DseError(f"--optimise-from-mean {bad[0]}: steps must be >= 0", hint="e.g. --optimise-from-mean 200")
    return [make_refinement("latents", steps=steps, lr=lr, preset=args.refine_preset, lpips=lpips)
            for steps in args.optimise_from_mean]


def _refinement(make_refinement, spec: str, stages: list, options: dict, lpips):
    """``latents:20+generator``: dse invert's --refine latents --refine-steps 20 --then generator; a stage without
    its own steps takes --refine-steps (else its method's default), every stage --refine-lr."""
    if len(stages) > 2:
        raise DseError(f"--refine {spec}: at most two stages", hint="e.g. --refine latents+generator")
    (first, steps), *then = stages
    chain = dict(then=then[0][0], then_steps=_steps(then[0][1], options), then_lr=options["lr"]) if then else {}
    return make_refinement(first, **{**options, "steps": _steps(steps, options)}, lpips=lpips, **chain)


def _steps(own: int | None, options: dict) -> int | None:
    return options["steps"] if own is None else own


def _models(args: argparse.Namespace, device):
    """G and [(name, E)]: as dse invert picks them (--gan alone: the demo pair; --encoder alone: its recorded G)."""
    from ..loading import load_encoder, load_pair

    specs = _encoder_specs(args)
    G, first, _ = load_pair(args.generator, specs[0], args.gan, device=device, force=args.force)
    return G, [(specs[0], first)] + [(s, load_encoder(s, gan=G.family, device=device, generator=G, force=args.force))
                                     for s in specs[1:]]


def _encoder_specs(args: argparse.Namespace) -> list[str]:
    """--encoder's, else (--gan alone) the family's demo encoder: the encoder column of the report."""
    specs = args.encoder or ([f"demo:{args.gan}"] if not args.generator and args.gan else [])
    if not specs:
        raise DseError("say which encoder to evaluate", hint="pass --encoder PATH (repeat it to compare several)")
    return specs


