"""ImageNet VGG16 weights without downloads, for LPIPS's backbone and Grad-CAM.

dse never lets torchvision fetch them. They come from, in order: an explicit local
file (a torchvision ``vgg16`` state dict, ``.pth`` or ``.safetensors``), a Hugging
Face Hub repo (``hf_hub_download``; the cache only when ``HF_HUB_OFFLINE`` is set),
or torchvision's own cache (``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``).
With none, :func:`find_vgg16` raises a :class:`DseError` saying how to provide them,
unless the caller accepts an untrained VGG16: then one loud warning, and the caller
records ``trained=False``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping

import torch

from ..models.files import torch_load
from ..errors import CheckpointError, DseError

TORCHVISION_VGG16_FILE = "vgg16-397923af.pth"  # torchvision's IMAGENET1K_V1 weights, as cached by torch.hub
HUB_EXAMPLE = "timm/vgg16.tv_in1k"  # a Hub copy of those weights (model.safetensors)


def find_vgg16(weights: str | Path | None, hub_repo: str | None, hub_filename: str, *, needed_by: str,
               allow_untrained: bool, warning: type[Warning], untrained_means: str) -> tuple[Path, str] | None:
    """The VGG16 weights file and where it came from; None (after one ``warning``) when untrained is allowed.

    ``needed_by`` names the user ("LPIPS", "Grad-CAM attention") in the error;
    ``untrained_means`` says in the warning what a random VGG16 does to the result.
    """
    found, tried = _search(weights, hub_repo, hub_filename)
    if found is not None:
        return found
    if not allow_untrained:
        raise DseError(
            f"{needed_by} needs ImageNet VGG16 weights and none were found "
            f"(dse never lets torchvision download them); tried: {'; '.join(tried)}",
            hint=f"pass a local torchvision vgg16 state dict (.pth or .safetensors), or a Hub repo such as "
            f"{HUB_EXAMPLE!r} (cached, or reachable without HF_HUB_OFFLINE), or copy {TORCHVISION_VGG16_FILE} to "
            f"{torchvision_cache_file().parent}; allow_untrained=True runs on a random VGG16 instead",
        )
    warnings.warn(f"{needed_by} is running on an UNTRAINED VGG16 (no weights found; tried: {'; '.join(tried)}); "
                  f"{untrained_means}", warning, stacklevel=3)
    return None


def torchvision_cache_file() -> Path:
    """Where torchvision caches its VGG16 download (follows ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG16_FILE


def _search(weights, hub_repo, hub_filename) -> tuple[tuple[Path, str] | None, list[str]]:
    """The first available backbone file and a description of its source, else what was tried."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise DseError(f"{path}: no such VGG16 weights file")
        return (path, str(path)), []
    tried = []
    if hub_repo is not None:
        try:
            return (hub_file(hub_repo, hub_filename), f"hf://{hub_repo}/{hub_filename}"), []
        except DseError as exc:
            tried.append(str(exc))
    cache = torchvision_cache_file()
    if cache.is_file():
        return (cache, str(cache)), tried
    tried.append(f"{cache}: not found")
    return None, tried


def hub_file(hub_repo: str, filename: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    repo_id, _, revision = hub_repo.partition("@")
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision or None, local_files_only=offline))
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
        raise DseError(f"{hub_repo}: {filename} is not in the Hugging Face cache and {why}") from None
    except (EntryNotFoundError, HfHubHTTPError, HFValidationError, OSError) as exc:
        raise DseError(f"{hub_repo}: cannot get {filename} ({type(exc).__name__}: {exc})") from None


def read_state_dict(path: Path, what: str = "a torchvision vgg16") -> Mapping[str, torch.Tensor]:
    """A state dict from ``.safetensors``, else a ``torch.save`` file read without running code; ``what`` it is of."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(path, f"cannot read safetensors ({exc})") from None
    state = torch_load(path)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, f"expected a state dict (names -> tensors) of {what}")
    return state
