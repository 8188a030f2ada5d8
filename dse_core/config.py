"""Frozen attrs configs and the one cattrs converter that reads and writes them.

Every model takes exactly one frozen config; ``to_dict``/``from_dict`` turn it into
plain JSON-able data and back. A bad file or dict raises :class:`ConfigError`
naming the source, each bad field (``$.channels.8``) and what was expected.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import cattrs
from cattrs.v import format_exception

from .errors import ConfigError

T = TypeVar("T")

# Unknown keys are refused: a typo in a hand-edited config must not pass silently.
converter = cattrs.Converter(forbid_extra_keys=True)


def to_dict(config: Any) -> dict:
    """The JSON-able form of an attrs config."""
    return converter.unstructure(config)


def from_dict(cls: type[T], data: Any, source: str | Path = "<config>") -> T:
    """Build ``cls`` from plain data; errors name ``source``, the field and the expectation."""
    if not isinstance(data, dict):
        raise ConfigError(source, [f"$: expected a JSON object for {cls.__name__}, found {type(data).__name__}"])
    try:
        return converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        raise ConfigError(source, cattrs.transform_error(exc, path="$", format_exception=_describe)) from None
    except (TypeError, ValueError) as exc:  # attrs validators run in __init__
        raise ConfigError(source, [f"$: {exc}"]) from None


def _describe(exc: BaseException, type_: Any) -> str:
    # attrs validators explain themselves ("'resolution' must be > 0: -1"); cattrs would say "invalid value"
    if type(exc) is ValueError and str(exc):
        return f"invalid value ({exc})"
    return format_exception(exc, type_)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, ["file not found"]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"not valid JSON: {exc}"]) from None


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON so that a crash never leaves a half-written file behind."""
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | Path, payload: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # name the file the user asked for, not our temporary
        blocking = next((p for p in path.parents if p.exists()), None)
        why = f"{blocking} is a file, not a folder" if blocking and not blocking.is_dir() else exc.strerror
        raise OSError(exc.errno, f"cannot write here ({why})", str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the user's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

