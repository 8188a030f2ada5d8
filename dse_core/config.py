"""Frozen attrs configs and the one cattrs converter that reads and writes them.

Every model takes exactly one frozen config; ``to_dict``/``from_dict`` turn it into
plain JSON-able data and back. A bad file or dict raises :class:`ConfigError`
naming the source, each bad field (``$.channels['8']``) and what was expected.
Types are strict: 64.7 is not an int, "0.01" is not a float, true is not 1 (an int
is a float, though, and JSON's string keys are the int keys of ``dict[int, ...]``).
"""

from __future__ import annotations

import collections.abc
import json
import math
import os
import tempfile
import typing
from pathlib import Path
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_mapping_structure_fn
from cattrs.v import format_exception

from .errors import ConfigError

T = TypeVar("T")

# Unknown keys are refused: a typo in a hand-edited config must not pass silently.
converter = cattrs.Converter(forbid_extra_keys=True)


class WrongType(TypeError):
    """A value of the wrong JSON type; its message is the whole explanation ("expected int, got str 'x'")."""


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _strict(expected: type, accepted: tuple[type, ...]):
    """A structure hook taking only ``accepted`` types (never bool for a number): 64.7 is not an int, "0.01" not a float."""
    def structure(value: Any, _type: Any) -> Any:
        if isinstance(value, accepted) and (expected is bool or not isinstance(value, bool)):
            return expected(value)
        raise WrongType(f"expected {expected.__name__}, got {_shown(value)}")
    return structure


for _expected, _accepted in [(int, (int,)), (float, (int, float)), (bool, (bool,)), (str, (str,))]:
    converter.register_structure_hook(_expected, _strict(_expected, _accepted))


class _IntKey:
    """Marks the int keys of ``dict[int, ...]`` fields: JSON writes them as strings ("8": 512)."""


def _structure_int_key(value: Any, _type: Any) -> int:
    if isinstance(value, str) and value.lstrip("-").isdigit() and str(int(value)) == value:
        return int(value)
    return _strict(int, (int,))(value, int)


def _is_int_keyed_dict(type_: Any) -> bool:
    args = typing.get_args(type_)
    return typing.get_origin(type_) in (dict, collections.abc.Mapping) and len(args) == 2 and args[0] is int


def _is_sequence(type_: Any) -> bool:
    return typing.get_origin(type_) in (tuple, list)


def _sequence_hook(type_: Any):
    """cattrs' own hook for ``type_``, refusing a string or mapping (which it would take apart into items)."""
    structure_items = _items_converter.get_structure_hook(type_)

    def structure(value: Any, _type: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise WrongType(f"expected a list, got {_shown(value)}")
        return structure_items(value, type_)
    return structure


converter.register_structure_hook(_IntKey, _structure_int_key)
converter.register_structure_hook_factory(
    _is_int_keyed_dict, lambda type_: make_mapping_structure_fn(type_, converter, key_type=_IntKey))
_items_converter = converter.copy()  # strict items; without the list check below, which would call itself
converter.register_structure_hook_factory(_is_sequence, _sequence_hook)


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
        problems = cattrs.transform_error(exc, path="$", format_exception=_describe)
        raise ConfigError(source, [_path_first(p) for p in problems]) from None
    except (TypeError, ValueError) as exc:  # attrs validators run in __init__
        raise ConfigError(source, [f"$: {exc}"]) from None


def _path_first(problem: str) -> str:
    """cattrs writes "expected int, got str 'x' @ $.z_dim"; we write "$.z_dim: expected int, got str 'x'"."""
    message, at, path = problem.rpartition(" @ ")
    return f"{path}: {message}" if at else problem


def _describe(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, WrongType):
        return str(exc)
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
    """The process umask, read without changing it where the OS allows (setting it races other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it, briefly
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


# -- validators shared by model configs ------------------------------------------------------------

def resolutions(resolution: int, lowest: int = 4) -> list[int]:
    """The feature-map sizes of a network working at ``resolution``, ascending: ``[lowest, 2 * lowest, ..., resolution]``."""
    return [2**i for i in range(int(math.log2(lowest)), int(math.log2(resolution)) + 1)]


def power_of_two(_, attribute, value: int) -> None:
    """attrs validator: a resolution, a power of two >= 4."""
    if value < 4 or value & (value - 1):
        raise ValueError(f"{attribute.name} must be a power of two >= 4, got {value}")


def channel_plan(instance: Any, attribute, value: dict[int, int]) -> None:
    """attrs validator: a positive width for each of :func:`resolutions` ``(instance.resolution)``, none else.

    An instance with a ``final_resolution`` (an encoder that stops above 4x4) needs widths down to that size only.
    """
    lowest = getattr(instance, "final_resolution", 4)
    if lowest > instance.resolution:
        raise ValueError(f"final_resolution {lowest} is above the image size {instance.resolution}")
    wanted = resolutions(instance.resolution, lowest)
    if sorted(value) != wanted:
        raise ValueError(f"{attribute.name} must give a width for each resolution {wanted}, got {sorted(value)}")
    if any(c <= 0 for c in value.values()):
        raise ValueError(f"{attribute.name} must be positive, got {value}")
