"""``dse app``: a local web page to invert, compare and edit (gradio, the optional ``app`` extra)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading

from .common import device_arg, lpips_args, positive_int

LOCAL = ("127.0.0.1", "localhost", "::1")
ANY = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # every address: open it on this machine's own


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
    p.add_argument("--port", type=port_number, default=7860, help="port to listen on (1-65535; default 7860)")
    p.add_argument("--workdir", default=None, help="where runs, edits and directions are written (default: a new "
                   "folder under the system's temporary folder)")
    p.add_argument("--max-upload-mb", type=positive_int, default=20, help="largest file the page accepts")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument("--no-lpips", action="store_true", help="skip the LPIPS metric (and the refinement loss's LPIPS term)")
    lpips_args(p)
    device_arg(p)
    p.set_defaults(func=run)


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1..65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1..65535, got {value}")
    return value


def check_port(host: str, port: int) -> None:
    """A port already taken is refused now, in one line, before any model loads (gradio would fail later)."""
    from ..errors import DseError

    if not _free(host, port):
        spare = next((p for p in range(port + 1, min(port + 100, 65536)) if _free(host, p)), None)
        raise DseError(f"port {port} is in use" + (f": pass --port {spare}" if spare else ": pass another --port"))


def _free(host: str, port: int) -> bool:
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return True  # an address that does not resolve: gradio says so itself
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _sigterm_as_ctrl_c():
    """``kill`` stops the page as Ctrl-C does (gradio closes its server, the temporary folder is removed);
    Python's default for SIGTERM would end it with no cleanup at all."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def page_address(host: str, port: int) -> str:
    """The address to open: this machine's own where the page listens on every address."""
    shown = ANY.get(host, host)
    return f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"


def run(args: argparse.Namespace) -> int:
    from ..app.backend import Studio, model_choices
    from ..app.page import import_gradio, launch
    from ..device import resolve_device
    from .common import optional_lpips

    import_gradio()  # without the extra: what to install, before any model loads
    check_port(args.host, args.port)
    if args.host not in LOCAL:
        print(f"dse: warning: serving on {args.host}: anyone who can reach this address can use the page "
              "(it has no authentication) and write files into its work folder", file=sys.stderr)
    choices = model_choices(args.gan, args.generator, args.encoder, folders=args.models)
    lpips = optional_lpips(args, refining=False)  # its note says "metric": whether a run refines is chosen on the page
    studio = Studio(choices, device=resolve_device(args.device), workdir=args.workdir, lpips=lpips)
    try:
        studio.pair(choices[0].label)  # a model that does not load fails here, in one line, not on the page
        where = f" (listening on every address: {args.host})" if args.host in ANY else ""
        kept = "kept" if args.workdir else "removed when it stops"
        print(f"dse app: {page_address(args.host, args.port)}{where} (models: {', '.join(studio.choices)}; files in "
              f"{studio.workdir}, {kept}); Ctrl-C stops it", file=sys.stderr)
        with _sigterm_as_ctrl_c():
            launch(studio, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, open_browser=args.open)
    finally:
        studio.close()  # a temporary work folder goes with the page (a --workdir is kept)
    return 0
