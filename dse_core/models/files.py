"""Reading other projects' checkpoint files safely.

``torch.load`` always runs with ``weights_only=True``: only tensors, containers and
the globals a format is known to need (an explicit allow-list per format) are
unpickled. Anything else is refused with an error naming the global, instead of
running code from the file.
"""

from __future__ import annotations

import functools
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from ..errors import CheckpointError, DamagedFileError

_UNSUPPORTED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)", re.IGNORECASE)


def torch_load(path: str | Path, allowed_globals: Iterable[Any] = ()) -> Any:
    """Load a ``torch.save`` file on the CPU without executing code from it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if path.stat().st_size == 0:
        raise DamagedFileError(path, "the file is empty (0 bytes)")
    return _torch_load_cached(path.resolve(), path.stat().st_mtime_ns, tuple(allowed_globals))


def _torch_load_cached(path: Path, mtime_ns: int, allowed: tuple) -> Any:
    result, problem = _read_once(path, mtime_ns, allowed)
    if problem is not None:
        raise problem.with_traceback(None)
    return result


@functools.lru_cache(maxsize=2)  # sniffing and loading the same file read (and check) it once, failures included
def _read_once(path: Path, _mtime_ns: int, allowed: tuple) -> tuple[Any, CheckpointError | None]:
    try:
        return _read(path, allowed), None
    except CheckpointError as exc:
        return None, exc


def _read(path: Path, allowed: tuple) -> Any:
    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        _check_zip_crcs(path)
    try:
        with torch.serialization.safe_globals(list(allowed)), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols it then reads fine
            return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        found = _UNSUPPORTED_GLOBAL.search(str(exc))
        if not is_zip and _is_plain_pickle(path):
            raise CheckpointError(path, "a plain Python pickle, not a torch.save checkpoint; no installed format reads it "
                                        "without running code from it") from None
        if found:
            raise CheckpointError(
                path,
                f"loading it would need to unpickle `{found.group(1)}`, which is not on this format's "
                "allow-list; dse refuses to run code from checkpoint files",
                hint="if this file is from a project dse supports, run `dse plugins` to see the formats it reads",
            ) from None
        raise CheckpointError(path, f"not a PyTorch checkpoint ({_first_line(exc)})") from None
    except Exception as exc:  # the unpickler raises KeyError, IndexError, ... on garbage
        if _looks_like_checkpoint(path):
            raise DamagedFileError(path, f"cannot read the file; it is corrupt or truncated ({_first_line(exc)})") from None
        raise CheckpointError(path, f"cannot read the file; it is not a PyTorch checkpoint ({_first_line(exc)})") from None


def _check_zip_crcs(path: Path) -> None:
    """torch.load never checks the zip's CRC-32s, so damaged tensor bytes would load as garbage: check them here.

    Members stored with CRC 0 are skipped: ``torch.serialization.set_crc32_options(False)`` writes 0 for all.
    Reading is cheap next to loading (about 4 GB/s), and the OS cache serves torch.load's read afterwards.
    """
    member = "the zip directory"
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.CRC == 0 and info.file_size:
                    continue
                member = info.filename
                with archive.open(info) as f:
                    while f.read(1 << 24):
                        pass
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, an encrypted or unknown-compression member, ...
        raise DamagedFileError(path, f"the file is damaged: zip member {member!r} fails its integrity check "
                                    f"({_first_line(exc)})",
                              hint="download or copy the checkpoint again") from None


# torch.save's legacy (non-zip) format, every release before 2020: a pickle whose first object is this magic
# number (LONG1 opcode, 10 bytes), then the protocol version, the system info and the pickled object
_LEGACY_TORCH_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(14)


def _is_plain_pickle(path: Path) -> bool:
    """A pickle (PROTO opcode first) that is not torch.save's legacy format."""
    head = _head(path)
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5 and head[2:] != _LEGACY_TORCH_MAGIC


def _looks_like_checkpoint(path: Path) -> bool:
    """A zip (torch.save) or pickle signature: damage, rather than the wrong kind of file."""
    head = _head(path)
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].split(". ")[0] if text else type(exc).__name__


# training checkpoints keep their models one level down: genforce's runner saves {"models": {"generator_smooth": ...},
# "optimizers": ...}
CONTAINERS = ("models",)


def find_state_dict(obj: Any, keys: Iterable[str], containers: Iterable[str] = CONTAINERS
                    ) -> tuple[str, Mapping[str, torch.Tensor]] | None:
    """(where, state dict) of the first ``obj[key]`` that is a tensor dict, or None.

    ``where`` names the place as the file does ("generator_smooth", "models.generator_smooth"); when ``obj`` has
    none of ``keys``, each of ``containers`` is searched the same way.
    """
    if not isinstance(obj, Mapping):
        return None
    keys = tuple(keys)
    for key in keys:
        value = obj.get(key)
        if isinstance(value, Mapping) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
            return key, value
    for container in containers:
        found = find_state_dict(obj.get(container), keys, ())
        if found is not None:
            return f"{container}.{found[0]}", found[1]
    return None


def state_dict_in(obj: Any, keys: Iterable[str], containers: Iterable[str] = CONTAINERS) -> Mapping[str, torch.Tensor] | None:
    """The first ``obj[key]`` that is a tensor dict (see :func:`find_state_dict`), for checkpoints that nest it."""
    found = find_state_dict(obj, keys, containers)
    return None if found is None else found[1]


def describe(obj: Any, limit: int = 6) -> str:
    """A one-line summary of what a checkpoint holds, for 'found X, expected Y' errors."""
    if isinstance(obj, Mapping):
        keys = [str(k) for k in obj]
        tensors = sum(isinstance(v, torch.Tensor) for v in obj.values())
        shown = ", ".join(keys[:limit]) + (f", ... ({len(keys)} keys)" if len(keys) > limit else "")
        if tensors == len(keys) and keys:
            return f"a state dict with keys {shown}"
        nested = [f"{k!s}: {describe(v, limit=3)}" for k, v in list(obj.items())[:2] if isinstance(v, Mapping)]
        return f"a dict with keys {shown}" + (f" ({'; '.join(nested)})" if nested else "")
    return f"a {type(obj).__name__}"
