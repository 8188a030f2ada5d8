"""``PretrainedMixin``: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` for a model built from one attrs config."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
from safetensors.torch import save

from ..config import from_dict, to_dict, write_bytes_atomic, write_json_atomic
from .card import write_model_card
from .format import CONFIG_FILE, FORMAT_VERSION, LIBRARY_NAME, WEIGHTS_FILE, load_state, read_header, read_weights
from .hub import commit_of, push_folder, resolve, split_revision


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for an ``nn.Module`` built from one attrs config."""

    kind: ClassVar[str]  # "generator" or "encoder"
    family: str  # a class attribute on generators; encoders set it per instance from their config
    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, directory: str | Path, source: Mapping[str, Any] | None = None, card: bool = True) -> Path:
        """Write ``model.safetensors`` then ``config.json``, each atomically, then the model card."""
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
        if card:
            write_model_card(directory)
        return directory

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | Path, revision: str | None = None, device: str | torch.device = "cpu"):
        """Load from a folder or a Hub repo id (``owner/name``, ``owner/name@rev`` or ``revision=``)."""
        directory = resolve(path_or_repo_id, revision)
        header = read_header(directory, expect_kind=cls.kind, expect_family=getattr(cls, "family", None))
        config = from_dict(cls.config_class, header["config"], source=f"{directory / CONFIG_FILE} ($.config)")
        model = cls(config)
        load_state(model, read_weights(directory / WEIGHTS_FILE), directory / WEIGHTS_FILE)
        model.source = header.get("source", {})
        model.origin = _origin_of(path_or_repo_id, directory)
        return model.to(device).eval()

    def push_to_hub(self, repo_id: str, private: bool = False, revision: str | None = None, token: str | None = None,
                    commit_message: str | None = None, license: str | None = None):
        """Save to a temporary folder and upload it (``create_repo(exist_ok=True)`` + ``upload_folder``).

        ``revision`` is a branch (created from main when missing). Returns the ``CommitInfo``.
        """
        with tempfile.TemporaryDirectory(prefix="dse-save-") as tmp:
            self.save_pretrained(tmp, source=getattr(self, "source", None), card=False)
            return push_folder(tmp, repo_id, private=private, revision=revision, token=token,
                               commit_message=commit_message, license=license)


def _origin_of(spec: str | Path, directory: Path) -> dict:
    """Where a model was loaded from: the Hub repo and the commit of its cached snapshot, if any."""
    commit = commit_of(directory)
    if commit is None or Path(spec).exists():
        return {"spec": str(spec)}
    return {"spec": str(spec), "repo_id": split_revision(str(spec))[0], "revision": commit}
