"""Models on disk and on the Hugging Face Hub: ``config.json`` + ``model.safetensors``.

The layout is huggingface_hub's: a folder (or Hub repo) holding the weights as
safetensors and a ``config.json`` describing them::

    {"library_name": "dse", "format_version": 1, "kind": "generator",
     "family": "stylegan2", "resolution": 256, "config": {...}, "source": {...}}

``config`` is the model's attrs config; ``source`` records where the weights came
from (original format, file name, sha256). Models mix in :class:`PretrainedMixin`
and get ``save_pretrained`` / ``from_pretrained``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .config import from_dict, read_json, to_dict, write_bytes_atomic, write_json_atomic
from .errors import CheckpointError, DseError

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
LIBRARY_NAME = "dse"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_pretrained_dir(path: str | Path) -> bool:
    """A folder written by ``save_pretrained`` (our own format)."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        return False
    try:
        return json.loads((path / CONFIG_FILE).read_text()).get("library_name") == LIBRARY_NAME
    except (OSError, ValueError, AttributeError):
        return False


def resolve(path_or_repo_id: str | Path, revision: str | None = None) -> Path:
    """A local folder for a path, or the cached snapshot of a Hub repo (``owner/name[@rev]``)."""
    path = Path(path_or_repo_id)
    if path.exists():
        return path
    text = str(path_or_repo_id)
    if not _REPO_ID.match(text):
        raise DseError(f"{text}: no such file or folder")
    repo_id, _, rev = text.partition("@")
    return download(repo_id, revision or rev or None)


def download(repo_id: str, revision: str | None = None) -> Path:
    """Fetch (or find in the cache) a model repo; offline misses name the command to run."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    where = f"{repo_id}@{revision or 'main'}"
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE, "README.md"]))
    except LocalEntryNotFoundError:
        raise DseError(
            f"{where} is not in the local Hugging Face cache and the Hub cannot be reached",
            hint=f"on a connected machine run `dse pull {repo_id}"
            + (f" --revision {revision}`" if revision else "`")
            + " and copy the cache (HF_HOME) here",
        ) from None
    except RepositoryNotFoundError:
        raise DseError(f"{where}: no such repository on the Hub (or it is private: set HF_TOKEN)") from None
    except HfHubHTTPError as exc:
        raise DseError(f"{where}: download failed: {exc}") from None


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for an ``nn.Module`` built from one attrs config."""

    kind: ClassVar[str]  # "generator" or "encoder"
    family: str  # a class attribute on generators; encoders set it per instance from their config
    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, directory: str | Path, source: Mapping[str, Any] | None = None) -> Path:
        """Write ``model.safetensors`` then ``config.json``, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}
        header = {
            "library_name": LIBRARY_NAME,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "family": self.family,
            "resolution": getattr(self, "resolution", None),
            "config": to_dict(self.config),
            "source": dict(source or {}),
        }
        metadata = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in header.items() if k != "config"}
        write_bytes_atomic(directory / WEIGHTS_FILE, save(state, metadata=metadata))
        write_json_atomic(directory / CONFIG_FILE, header)
        return directory

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | Path, revision: str | None = None, device: str | torch.device = "cpu"):
        directory = resolve(path_or_repo_id, revision)
        header = read_header(directory, expect_kind=cls.kind, expect_family=getattr(cls, "family", None))
        config = from_dict(cls.config_class, header["config"], source=f"{directory / CONFIG_FILE} ($.config)")
        model = cls(config)
        load_state(model, read_weights(directory / WEIGHTS_FILE), directory / WEIGHTS_FILE)
        model.source = header.get("source", {})
        return model.to(device).eval()


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
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors ({_preview(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors ({_preview(unexpected)})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches ({_preview(shapes)})")
    if problems:
        raise CheckpointError(path, "weights do not match the architecture: " + "; ".join(problems))
    model.load_state_dict(dict(state), strict=True)


def _preview(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f", ... {len(items) - n} more" if len(items) > n else "")

