"""The ``dse`` command line: one module per command, its parser beside its handler, each a small layer
over the Python API.

User errors (:class:`DseError`) print one message and exit with status 2, and so does an exception
raised inside a plugin (naming the plugin); ``--debug`` (or ``DSE_DEBUG=1``) shows the traceback.
Building the parser imports no torch and no plugin: ``dse --help`` is instant.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings

from ..errors import DseError, DseWarning
from . import app, convert, directions, edit, eval, generate, invert, plugins, push, registry, sample, train

COMMANDS = (plugins, convert, sample, invert, eval, train, generate, edit, directions, app, registry, push)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dse", description="Invert images into the latent space of pretrained GANs (DSE).")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error too (or set DSE_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("DSE_DEBUG") == "1"  # before or after the command name
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    args._argv = argv
    try:
        with warnings.catch_warnings():
            _show_user_warnings()
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
    except OSError as exc:  # an unwritable -o, a full disk, a folder where a file was expected, ...
        if debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"dse: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        blame = _plugin_blame(exc, args)
        if blame is None:
            raise  # a bug in dse itself: the traceback is the report
        if debug:
            traceback.print_exc()
        print(f"dse: error: {blame}", file=sys.stderr)
        return 2


def _plugin_blame(exc: Exception, args: argparse.Namespace) -> str | None:
    """One line for an exception raised inside a plugin: family, distribution, the error, the options given."""
    from ..plugins import plugin_of_traceback

    found = plugin_of_traceback(exc)
    if found is None:
        return None
    families, distribution, where = found
    options = _options_given(args)
    return (f"the {families} plugin ({distribution}) failed: {type(exc).__name__}: {exc} (at {where})"
            + (f"; options: {options}" if options else "")
            + "\n  hint: if an option above does not apply to this family, drop it; otherwise report it to "
            + f"{distribution} (dse --debug ... shows the traceback)")


def _options_given(args: argparse.Namespace) -> str:
    """The options as typed after the command name (``--truncation-psi 0.7 --gan mygan``)."""
    tokens = args._argv[args._argv.index(args.command) + 1:] if args.command in args._argv else args._argv
    return " ".join(tokens)


def _show_user_warnings() -> None:
    """Print dse's own warnings as ``dse: warning: ...`` (others keep Python's format)."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DseWarning):
            print(f"dse: warning: {message}", file=sys.stderr)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show


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
