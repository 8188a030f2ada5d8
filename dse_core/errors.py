"""User-facing errors.

Everything a user can cause (a bad file, a wrong name, a broken plugin) raises a
:class:`DseError`. The command line prints ``str(error)`` as one message and exits
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable


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
    """A name (GAN family, checkpoint format, model id) that is not known, with close matches."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str | None = None):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        message = f"unknown {kind} {name!r}"
        if close:
            message += f"; did you mean {', '.join(repr(c) for c in close)}?"
        message += f" (known: {', '.join(known) if known else 'none'})"
        self.name = name
        self.known = known
        super().__init__(message, hint)


class PluginError(DseError):
    """A plugin that failed to import, or whose hook raised or handed over something invalid."""


class DseWarning(UserWarning):
    """A warning meant for the user (the CLI prints it as ``dse: warning: ...``)."""
