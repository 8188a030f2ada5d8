"""User-facing errors.

Everything a user can cause (a bad file, a wrong name, a broken plugin) raises a
:class:`DseError`. The command line prints ``str(error)`` as one message and exits
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Iterable, Sequence


class DseError(Exception):
    """Base class of every error meant for the user: message first, then a hint."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class CheckpointError(DseError):
    """A checkpoint file that cannot be read as the format it claims or was asked for."""

    def __init__(self, path: str | Path, problem: str, hint: str | None = None):
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}", hint)


class DamagedFileError(CheckpointError):
    """The file's bytes are broken (empty, truncated, failing its checksums): no format could read it."""


class ConfigError(DseError):
    """A config file (or dict) whose fields do not have the expected types or values."""

    def __init__(self, source: str | Path, problems: Iterable[str], hint: str | None = None):
        self.source = str(source)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.source}: invalid config\n{lines}", hint)


class UnknownNameError(DseError):
    """A name (GAN family, checkpoint format, model id, class) that is not known, with close matches."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str | None = None):
        known = sorted(known)
        close = close_matches(name, known)
        message = f"unknown {kind} {name!r}"
        if close:
            message += f"; did you mean {', '.join(repr(c) for c in close)}?"
        if len(known) <= MAX_LISTED:
            message += f" (known: {', '.join(known) if known else 'none'})"
        else:  # e.g. the 1000 ImageNet classes: a count, not a page of names
            message += f" ({len(known)} known)"
        self.name = name
        self.known = known
        super().__init__(message, hint)


MAX_LISTED = 30  # an unknown name's message lists the known ones up to this many


def name_key(name: str) -> str:
    """How names compare for a match: case-insensitively, with ``_``, ``-`` and spaces alike."""
    return " ".join(re.split(r"[\s_-]+", name.casefold())).strip()


def close_matches(name: str, known: Sequence[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``known`` that look like ``name`` (compared by :func:`name_key`): names that contain it as a
    word first (``retriever`` -> ``golden retriever``), then similar spellings (``golden retriver``)."""
    by_key: dict[str, list[str]] = {}
    for k in known:
        by_key.setdefault(name_key(k), []).append(k)
    key = name_key(name)
    keys = [k for k in by_key if re.search(rf"\b{re.escape(key)}\b", k)] if len(key) >= 3 else []  # shorter: noise
    keys += [k for k in difflib.get_close_matches(key, list(by_key), n=n, cutoff=0.5) if k not in keys]
    return [k for found in keys for k in by_key[found]][:n]


class PluginError(DseError):
    """A plugin that failed to import, or whose hook raised or handed over something invalid."""


class DseWarning(UserWarning):
    """A warning meant for the user (the CLI prints it as ``dse: warning: ...``)."""
