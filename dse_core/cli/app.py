"""``dse app``: a local web page to invert, compare and edit (gradio, the optional ``app`` extra)."""

from __future__ import annotations

import argparse
import sys

from .common import device_arg, lpips_args, positive_int

LOCAL = ("127.0.0.1", "localhost", "::1")


def add_parser(sub) -> None:
    p = sub.add_parser("app", help="a local web page: upload images, see their inversions, edit them (dse-gan[app])")
    p.add_argument("--gan", help="GAN family of --generator / --encoder (every installed demo is listed anyway)")
    p.add_argument("--generator", help="checkpoint, converted folder, Hub repo id or demo:FAMILY")
    p.add_argument("--encoder", help="encoder folder, Hub repo id or a family's encoder checkpoint")
    p.add_argument("--models", action="append", default=[], metavar="DIR",
                   help="list the encoders saved in DIR, in its subfolders and in theirs (dse train runs, dse convert "
                        "folders), each with the generator folder there it was trained on (matched by the "
                        "fingerprint the encoder records); repeatable")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                   "only; the page has no authentication)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--workdir", default=None, help="where runs, edits and directions are written (default: a new "
                   "folder under the system's temporary folder)")
    p.add_argument("--max-upload-mb", type=positive_int, default=20, help="largest file the page accepts")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument("--no-lpips", action="store_true", help="skip the LPIPS metric (and the refinement loss's LPIPS term)")
    lpips_args(p)
    device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..app.backend import Studio, model_choices
    from ..app.page import import_gradio, launch
    from ..device import resolve_device
    from ..errors import DseError
    from .common import load_lpips_for

    import_gradio()  # without the extra: what to install, before any model loads
    if args.host not in LOCAL:
        print(f"dse: warning: serving on {args.host}: anyone who can reach this address can use the page "
              "(it has no authentication) and write files into its work folder", file=sys.stderr)
    choices = model_choices(args.gan, args.generator, args.encoder, folders=args.models)
    try:
        lpips = load_lpips_for(args, needed=not args.no_lpips, without="--no-lpips")
    except DseError as exc:
        if args.lpips_weights or args.lpips_hub:
            raise
        print(f"dse: LPIPS metric skipped: {exc.message}", file=sys.stderr)
        lpips = None
    studio = Studio(choices, device=resolve_device(args.device), workdir=args.workdir, lpips=lpips)
    studio.pair(choices[0].label)  # a model that does not load fails here, in one line, not on the page
    print(f"dse app: http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port} "
          f"(models: {', '.join(studio.choices)}; files in {studio.workdir}); Ctrl-C stops it", file=sys.stderr)
    launch(studio, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, open_browser=args.open)
    return 0
