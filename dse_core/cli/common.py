"""Options and helpers several commands share. Nothing here imports torch at module level."""

from __future__ import annotations

import argparse

from ..errors import DseError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # what -o may name as a single picture


def device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, ...")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def truncation_args(parser: argparse.ArgumentParser, default: float | None, help_psi: str) -> None:
    parser.add_argument("--truncation-psi", "--truncation", dest="truncation_psi", type=float, default=default,
                        metavar="PSI", help=help_psi)
    parser.add_argument("--truncation-cutoff", type=int, default=None, metavar="K",
                        help="truncate only the first K ws (style-based families)")


def generator_spec(args: argparse.Namespace) -> str:
    """--generator, or the --gan family's embedded demo."""
    if args.generator:
        return args.generator
    if not args.gan:
        raise DseError("say which generator to use", hint="pass --gan FAMILY (its demo model) or --generator PATH")
    return f"demo:{args.gan}"


def lpips_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("LPIPS (VGG16 backbone weights; never downloaded)")
    group.add_argument("--lpips-weights", help="a local torchvision vgg16 state dict (.pth or .safetensors)")
    group.add_argument("--lpips-hub", help="a Hugging Face repo holding those weights (e.g. timm/vgg16.tv_in1k)")
    group.add_argument("--allow-untrained-lpips", action="store_true",
                       help="with no weights found, run LPIPS on an untrained backbone (recorded in the outputs)")


def load_lpips_for(args: argparse.Namespace, needed: bool, without: str):
    """The LPIPS module the user's options allow; a DseError in options' words when there is none."""
    from ..loss.perceptual import lpips_for_command

    return lpips_for_command(args.lpips_weights, args.lpips_hub, args.allow_untrained_lpips, without) if needed else None


def optional_lpips(args: argparse.Namespace, refining: bool):
    """:func:`load_lpips_for` where LPIPS is optional (dse invert, eval, app): without weights, the metric (and the
    refinement loss's term) is skipped with a note; weights given but unusable stay an error."""
    import sys

    try:
        return load_lpips_for(args, needed=not args.no_lpips, without="--no-lpips")
    except DseError as exc:
        if args.lpips_weights or args.lpips_hub:
            raise
        uses = "metric and refinement loss term" if refining else "metric"
        print(f"dse: LPIPS {uses} skipped: {exc.message}", file=sys.stderr)
        return None


def lpips_note(lpips) -> str:
    if lpips is None:
        return "not computed"
    return "VGG, trained backbone" if lpips.trained else "VGG, UNTRAINED backbone (not the published metric)"


def refine_method(name: str | None) -> str | None:
    """--refine / --then: ``w`` is latents' old name (said once, as a warning)."""
    if name == "w":
        import warnings

        from ..errors import DseWarning

        warnings.warn("--refine w is now --refine latents (it refines whatever latents the family has)", DseWarning,
                      stacklevel=2)
        return "latents"
    return name
