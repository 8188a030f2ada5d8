"""``dse train``: train a DSE encoder for a generator; the run is set up by :func:`dse_core.train.setup.plan_run`."""

from __future__ import annotations

import argparse
import sys

from .common import device_arg, lpips_args, truncation_args

TRAIN_OPTIONS = ("samples", "batch_size", "lr", "truncation_psi", "truncation_cutoff", "style_mixing_prob", "seed",
                 "log_every", "grid_every", "checkpoint_every", "precision", "latent_step", "class_sampling", "ema_halflife")


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a DSE encoder for a generator (resumable; torchrun for several processes)")
    p.add_argument("--gan", help="GAN family; alone, trains on its embedded demo generator")
    p.add_argument("--generator", help="checkpoint, converted folder, Hub repo id or demo:FAMILY")
    p.add_argument("-o", "--output", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in -o from its latest checkpoint, with "
                   "its own generator and options (those given must match, except --samples, which may grow)")
    p.add_argument("--preset", default=None, help="paper-s2 (default), paper-s1, code-s2, code-s1, "
                   "paper-s1-misaligned, code-s1-misaligned (the last two: Grad-CAM areas); settings a family cannot "
                   "honour (truncation, style mixing) are left out and said so")
    p.add_argument("--samples", type=int, default=None, help="training budget in samples (default 210000, the paper's "
                   "30000 x 7; with --resume, the run's own, so an interrupted run finishes where it meant to)")
    p.add_argument("--batch-size", type=int, default=None, help="per process (default 8 / 4 / 2 at 256 / 512 / 1024 px)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the preset's; paper-s2: "
                   "0.003, the others the paper's 0.0015)")
    truncation_args(p, None, "truncation psi of the training samples (default: the preset's; code-*: 0.7 on 8 ws, "
                    "else 1; families with truncation only)")
    p.add_argument("--style-mixing", dest="style_mixing_prob", type=float, default=None,
                   help="style-mixing probability (style-based families; default: the preset's)")
    p.add_argument("--latent-step", choices=["joint", "separate"], default=None,
                   help="joint: one optimizer step on image + latent loss; separate: a second step on the latent loss "
                   "alone (the authors' code). Default: the preset's (code-*: separate)")
    p.add_argument("--ema-halflife", type=int, default=None, metavar="SAMPLES",
                   help="save an EMA of the encoder's weights, older weights' share halving every SAMPLES samples; 0: the "
                   "last step's weights (default: the preset's; paper-s2: 1000, the others 0)")
    p.add_argument("--class-sampling", choices=["batch", "mixed"], default=None,
                   help="conditional generators: one class per batch (default, the authors' BigGAN training) or "
                   "one per sample")
    p.add_argument("--lpips-weight", type=float, default=None, help="override the preset's LPIPS weight (0: no LPIPS; "
                   "offline without local VGG16 weights, dse train needs this or --lpips-weights)")
    p.add_argument("--latent-weight", dest="latent_weights", action="append", default=None, metavar="NAME=WEIGHT",
                   help="weight of one predicted latent's term in the latent loss (Eq. 5), e.g. z=1 or ws=0 "
                   "(default 1 for each latent the encoder predicts); repeat for several")
    p.add_argument("--seed", type=int, default=None, help="default 0")
    p.add_argument("--log-every", type=int, default=None, help="steps (default 10)")
    p.add_argument("--grid-every", type=int, default=None, help="steps (default 500)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps (default 500)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None, help="autocast: bf16 (GPUs, and CPUs "
                   "with bf16 support) or fp16 (GPUs, with loss scaling); default fp32")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    lpips_args(p)
    group = p.add_argument_group("AT1/AT2 areas (Sec. III-B); Grad-CAM uses an ImageNet VGG16 with its classifier, never "
                                 "downloaded, or a classifier of your own (--gradcam-model)")
    group.add_argument("--attention", choices=["centre", "gradcam"], default=None,
                       help="centre: fixed centre crops (aligned images); gradcam: a classifier's heat maps and "
                       "heat-map-tinted images (misaligned images). Default: the preset's")
    group.add_argument("--gradcam-weights", help="a whole torchvision vgg16 state dict, classifier included "
                       "(default: --lpips-weights, which then must hold the classifier; else torchvision's cache); "
                       "with --gradcam-model: its state dict (.safetensors, or .pt read with weights_only)")
    group.add_argument("--gradcam-model", metavar="MODULE:CALLABLE", help="Grad-CAM on your own classifier: a callable "
                       "returning the nn.Module (images in, logits out), e.g. torchvision.models:resnet18 or "
                       "my_nets.py:build; recorded, so --resume rebuilds it")
    group.add_argument("--gradcam-layer", metavar="NAME", help="with --gradcam-model: the module whose feature map "
                       "Grad-CAM explains, as named in model.named_modules() (e.g. layer4, features.28)")
    group.add_argument("--gradcam-mean", metavar="M[,M,M]", help="with --gradcam-model: the input mean it expects on "
                       "[0, 1] images (default ImageNet's; 0.5 with --gradcam-std 0.5 for a [-1, 1] classifier)")
    group.add_argument("--gradcam-std", metavar="S[,S,S]", help="with --gradcam-model: the input std (default ImageNet's)")
    group.add_argument("--gradcam-min-size", type=int, metavar="PX", help="with --gradcam-model: its smallest input "
                       "side; smaller images are upsampled (default 2 ** its number of max-pool layers)")
    group.add_argument("--gradcam-hub", help="a Hugging Face repo holding those weights (default: --lpips-hub; "
                       "e.g. timm/vgg16.tv_in1k)")
    group.add_argument("--allow-untrained-gradcam", action="store_true",
                       help="with no weights found, run Grad-CAM on a random VGG16 (heat maps locate nothing; recorded)")
    device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.setup import VggWeights, train_encoder

    vgg = VggWeights(args.lpips_weights, args.lpips_hub, args.allow_untrained_lpips,
                     args.gradcam_weights, args.gradcam_hub, args.allow_untrained_gradcam, _classifier(args))
    options = {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
    try:
        result = train_encoder(args.output, args.generator, gan=args.gan, resume=args.resume, preset=args.preset,
                               lpips_weight=args.lpips_weight, latent_weights=_latent_weights(args.latent_weights),
                               attention=args.attention, vgg=vgg, device=args.device, progress=not args.quiet,
                               log=lambda m: print(m, file=sys.stderr), **options)
    except KeyboardInterrupt:
        return 130
    if result.rank == 0:
        print(f"trained {result.steps} steps ({result.samples} samples) -> {result.run_dir / 'encoder'}")
    return 0


def _classifier(args: argparse.Namespace):
    """The ClassifierSpec of --gradcam-model and its options; None without --gradcam-model."""
    from ..errors import DseError
    from ..loss import ClassifierSpec

    extras = [f"--gradcam-{name.replace('_', '-')}" for name in ("layer", "mean", "std", "min_size")
              if getattr(args, f"gradcam_{name}") is not None]
    if args.gradcam_model is None:
        if extras:
            raise DseError(f"{', '.join(extras)} describe(s) a classifier of your own", hint="add --gradcam-model "
                           "MODULE:CALLABLE, or drop them to use the VGG16")
        return None
    if args.gradcam_layer is None:
        raise DseError(f"--gradcam-model {args.gradcam_model} needs --gradcam-layer NAME",
                       hint="the module whose feature map Grad-CAM explains, e.g. its last conv block")
    given = {"mean": _numbers("--gradcam-mean", args.gradcam_mean), "std": _numbers("--gradcam-std", args.gradcam_std),
             "min_size": args.gradcam_min_size}
    try:
        return ClassifierSpec(args.gradcam_model, args.gradcam_layer, **{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:
        raise DseError(f"bad Grad-CAM classifier option: {exc}", hint="see dse train --help") from None


def _numbers(flag: str, text: str | None) -> tuple[float, ...] | None:
    """'0.5' -> (0.5, 0.5, 0.5); '0.485,0.456,0.406' -> the three."""
    from ..errors import DseError

    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise DseError(f"{flag} {text!r}: expected one number or three, comma-separated", hint="e.g. 0.5") from None
    return values * 3 if len(values) == 1 else values


def _latent_weights(items: list[str] | None) -> dict[str, float] | None:
    from ..errors import DseError

    if items is None:
        return None
    weights = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise DseError(f"--latent-weight {item!r}: expected NAME=WEIGHT, e.g. z=1", hint="see dse train --help") from None
    return weights
