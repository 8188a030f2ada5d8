"""Progress bars for long work (dse invert's batches and refinement stages): tqdm on a terminal, plain lines in a log.

A bar redrawn in place is right on a terminal; in a log file or a pipe every redraw would be kept on one line and
tqdm's close would repeat the final state, so there each state is its own line, at most one per ``LOG_INTERVAL``.
"""

from __future__ import annotations

import contextlib
import re
import sys
from typing import Iterator

LOG_INTERVAL = 10.0  # seconds between a bar's lines when stderr is not a terminal (a log)


class _NoBar:
    """What :func:`progress_bar` gives when off: a bar that draws nothing (and no tqdm made)."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass


class _LogLines:
    """A log's view of a tqdm bar: each state tqdm draws becomes one line; blank redraws (erasing) write nothing.

    tqdm redraws a bar in place (a carriage return, then the state): a log would keep every state on one line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        for part in re.split(r"[\r\n]", text):
            if part.strip():
                self.stream.write(part.rstrip() + "\n")

    def flush(self) -> None:
        getattr(self.stream, "flush", lambda: None)()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


@contextlib.contextmanager
def progress_bar(total: int, desc: str, unit: str = "step", enabled: bool = True, nested: bool = False) -> Iterator:
    """A tqdm bar on stderr counting to ``total`` (``bar.update(k)``), closed on leaving; a no-op one unless ``enabled``.

    On a terminal it is redrawn in place; ``nested``: on the line under an outer bar (dse invert's batches), cleared
    when done. Elsewhere (stderr a file or a pipe: a log) tqdm's in-place redraws would all be kept, and its close
    would repeat the final state: there each drawn state is one line (no cursor moves), the first after ``LOG_INTERVAL``
    seconds, then at most one per ``LOG_INTERVAL``, and the final state once, on closing.
    """
    if not enabled:
        yield _NoBar()
        return
    from tqdm import tqdm

    stream = sys.stderr
    if _is_terminal(stream):
        options = dict(leave=False, position=1) if nested else {}
        with tqdm(total=total, desc=desc, unit=unit, file=stream, **options) as bar:
            yield bar
        return
    bar = tqdm(total=total, desc=desc, unit=unit, file=_LogLines(stream), position=0, leave=False, ascii=True,
               mininterval=LOG_INTERVAL, maxinterval=LOG_INTERVAL, delay=LOG_INTERVAL)
    try:
        yield bar
    finally:
        if not bar.disable and bar.n != getattr(bar, "last_print_n", None):
            bar.refresh()  # the final state, once: closing (leave=False) draws nothing in a log
        bar.close()
