"""dse's own model format: a folder of ``config.json`` + ``model.safetensors`` (+ a model card).

The layout is huggingface_hub's, so the same folder is a Hub repo::

    {"library_name": "dse", "format_version": 1, "kind": "generator",
     "family": "stylegan2", "resolution": 256, "config": {...}, "source": {...}}

``config`` is the model's attrs config; ``source`` records where the weights came
from (original format, file name, sha256, license) and, for encoders, the generator
they were trained for (its fingerprint, see :func:`generator_fingerprint`). A folder
may also hold the reconstruction grid and a metrics table that the card shows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..config import read_json
from ..errors import CheckpointError
from .convert import check_tensors

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
GRID_FILE = "reconstruction.png"  # x over G(E(x)), shown by the card
METRICS_FILE = "metrics.json"  # {"summary": {name: {mean, std, n}}, "training_loss": {term: value}}, shown by the card
REPO_FILES = [CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, GRID_FILE, METRICS_FILE]
LIBRARY_NAME = "dse"


def is_pretrained_dir(path: str | Path) -> bool:
    """A folder written by ``save_pretrained`` (our own format)."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        return False
    try:
        return json.loads((path / CONFIG_FILE).read_text()).get("library_name") == LIBRARY_NAME
    except (OSError, ValueError, AttributeError):
        return False


def read_header(directory: Path, expect_kind: str | None = None, expect_family: str | None = None) -> dict:
    """Read and check ``config.json`` of a saved model."""
    path = directory / CONFIG_FILE
    header = read_json(path)
    if not isinstance(header, dict) or header.get("library_name") != LIBRARY_NAME:
        raise CheckpointError(path, "not a dse model config (no \"library_name\": \"dse\")",
                              hint="convert the original checkpoint with `dse convert`")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(path, f"format_version {version!r} is newer than this dse understands ({FORMAT_VERSION})",
                              hint="upgrade dse-gan")
    for key, want in (("kind", expect_kind), ("family", expect_family)):
        if want is not None and header.get(key) != want:
            raise CheckpointError(path, f"is a {header.get(key)!r} {key}, expected {want!r}")
    return header


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(path, "weights file is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(path, f"cannot read safetensors ({exc}); the file is corrupt or truncated") from None


def load_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Strict ``load_state_dict`` that reports every missing, unexpected or mis-shaped tensor."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_tensors(path, "weights do not match the architecture", {k: tuple(v.shape) for k, v in state.items()}, expected)
    model.load_state_dict(dict(state), strict=True)


def generator_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over the state dict in sorted key order (name, shape, float32 bytes): independent of the file format.

    The same weights read from a rosinality ``.pt``, an NVlabs pickle or our safetensors give the same
    fingerprint; any changed tensor gives another.
    """
    state = model.state_dict()
    return _fingerprint(sorted(state), state.__getitem__)


def saved_fingerprint(folder: str | Path) -> str:
    """:func:`generator_fingerprint` of a saved generator from its weights file alone, tensor by tensor: no model
    is built (``dse app --models`` pairs encoders with generator folders this way)."""
    from safetensors import safe_open

    with safe_open(str(Path(folder) / WEIGHTS_FILE), "pt") as f:  # "numpy" would read a 0-d tensor as shape (1,)
        return _fingerprint(sorted(f.keys()), f.get_tensor)


def _fingerprint(names, get) -> str:
    digest = hashlib.sha256()
    for name in names:
        tensor = get(name).detach().to("cpu", torch.float32).contiguous()
        digest.update(name.encode() + b"\0" + repr(tuple(tensor.shape)).encode() + b"\0")
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def generator_record(generator, spec: str | Path) -> dict:
    """What an encoder records about the generator it is trained for (``config.json`` ``source.generator``)."""
    origin = getattr(generator, "origin", None) or {}
    record = {"id": str(spec), "family": generator.family, "resolution": generator.resolution,
              "fingerprint": generator_fingerprint(generator)}
    record.update({k: origin[k] for k in ("registry_id", "repo_id", "revision", "file", "license", "license_url")
                   if origin.get(k)})
    record["source"] = dict(getattr(generator, "source", None) or {})
    return record


def describe_generator(record: Mapping[str, Any]) -> str:
    """``'id' (repo@rev, fingerprint 1a2b3c4d5e6f)`` for error messages."""
    parts = []
    if record.get("repo_id"):
        parts.append(f"{record['repo_id']}@{str(record.get('revision') or 'main')[:12]}")
    if record.get("fingerprint"):
        parts.append(f"fingerprint {record['fingerprint'][:12]}")
    name = record.get("registry_id") or record.get("id") or "an unnamed generator"
    return f"{name!r}" + (f" ({', '.join(parts)})" if parts else "")
