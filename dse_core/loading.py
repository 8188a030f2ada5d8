"""``load_generator`` / ``load_encoder``: one entry point each for every supported checkpoint, folder or Hub repo."""

from __future__ import annotations

from pathlib import Path

import torch

from . import hub
from .checkpoints import describe, torch_load
from .encoder import Encoder
from .encoder.convert import BE_FAMILIES, load_authors_encoder, sniff_authors_encoder
from .errors import CheckpointError, DseError, UnknownNameError
from .families import CheckpointFormat, GanFamily
from .plugins import get_host


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else is passed to torch."""
    if str(device) != "auto":
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DseError(f"--device {device} asked for, but CUDA is not available here", hint="use --device cpu or auto")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_generator(
    path_or_repo_id: str | Path,
    gan: str | None = None,
    device: str | torch.device = "cpu",
    revision: str | None = None,
):
    """Load any supported generator, ready to call: ``G(z, c, truncation_psi, ...)``.

    ``path_or_repo_id`` is a checkpoint file in a format some plugin reads, a folder
    written by ``save_pretrained`` (or ``dse convert``), a Hub repo id
    (``owner/name[@revision]``), or ``demo:<family>`` for a plugin's embedded demo.
    ``gan`` restricts the search to one family; without it the family is sniffed.
    Returns the generator in eval mode on ``device``.
    """
    host = get_host()
    path = _local_path(path_or_repo_id, "generator", revision)
    device = resolve_device(device)

    if hub.is_pretrained_dir(path):
        header = hub.read_header(path, expect_kind="generator")
        family = host.family(header["family"])
        if gan is not None and gan != family.name:
            raise CheckpointError(path, f"holds a {family.name} generator, not {gan}", hint=f"use --gan {family.name}")
        return family.generator_class.from_pretrained(path, device=device)

    candidates = [host.family(gan)] if gan else list(host.families.values())
    match = _sniff(candidates, path)
    if match is None:
        raise _no_format_error(path, gan, candidates, host.families.values())
    family, fmt = match
    generator = fmt.load(path)
    generator.source = {"format": f"{family.name}/{fmt.name}", "file": path.name}
    return generator.to(device).eval()


def load_encoder(
    path_or_repo_id: str | Path,
    gan: str | None = None,
    device: str | torch.device = "cpu",
    revision: str | None = None,
):
    """Load a DSE encoder in eval mode (noise off): ``E(x).w``, ``.zc``, ``.z``.

    ``path_or_repo_id`` is a folder written by ``Encoder.save_pretrained``, a Hub repo
    id (``owner/name[@revision]``), or one of the DSE authors' encoder checkpoints
    (``E_model_*.pth``, ``torch.save(E.state_dict())`` of their ``BE``). Their files do
    not say which generator they invert: ``gan`` does (default ``stylegan2``); for our
    folders it is checked against the saved family.
    """
    path = _local_path(path_or_repo_id, "encoder", revision)
    device = resolve_device(device)
    if hub.is_pretrained_dir(path):
        header = hub.read_header(path, expect_kind="encoder")
        if gan is not None and gan != header.get("family"):
            raise CheckpointError(path, f"holds an encoder for {header.get('family')}, not {gan}",
                                  hint=f"use --gan {header.get('family')}")
        return Encoder.from_pretrained(path, device=device)
    family = gan or "stylegan2"
    if family not in BE_FAMILIES:
        raise UnknownNameError("GAN family for a DSE authors' (BE) encoder", family, BE_FAMILIES,
                               hint="the authors' BE checkpoints invert StyleGAN or StyleGAN2; pass gan= one of those")
    if path.is_dir() or not sniff_authors_encoder(path):
        raise _not_an_encoder_error(path)
    return load_authors_encoder(path, family).to(device).eval()


def _not_an_encoder_error(path: Path) -> CheckpointError:
    if path.is_dir():
        found = f"a folder holding {', '.join(sorted(p.name for p in path.iterdir())[:8]) or 'nothing'}"
    else:
        try:
            found = describe(torch_load(path))
        except CheckpointError as exc:
            return exc  # unreadable or truncated: that is the real problem
    return CheckpointError(
        path,
        f"not an encoder checkpoint: found {found}; expected a folder written by save_pretrained (kind \"encoder\") "
        "or a DSE authors' BE state dict (FromRGB.from_rgb.weight, decode_block.N.*)",
    )


DEMO_PREFIX = "demo:"


def demo_path(family_name: str, kind: str) -> Path:
    """The folder of a family's embedded demo generator or encoder (``demo:stylegan2``)."""
    family = get_host().family(family_name)
    if family.demo is None or not (family.demo / kind).is_dir():
        raise DseError(f"the {family_name} plugin ships no demo {kind}",
                       hint=f"pass --{kind} with a checkpoint, a converted folder or a Hub repo id")
    return family.demo / kind


def _local_path(path_or_repo_id: str | Path, kind: str, revision: str | None) -> Path:
    """A local file or folder for a path, ``demo:<family>``, or a Hub repo id."""
    text = str(path_or_repo_id)
    if text.startswith(DEMO_PREFIX):
        return demo_path(text[len(DEMO_PREFIX):], kind)
    path = hub.resolve(path_or_repo_id, revision)
    if path.is_file() and path.name == hub.WEIGHTS_FILE and hub.is_pretrained_dir(path.parent):
        path = path.parent
    return path


def _sniff(families, path: Path) -> tuple[GanFamily, CheckpointFormat] | None:
    for family in families:
        for fmt in family.formats:
            try:
                if fmt.sniff(path):
                    return family, fmt
            except Exception:  # a sniffer must never decide the outcome by crashing
                continue
    return None


def _no_format_error(path: Path, gan, candidates, all_families) -> CheckpointError:
    if path.is_dir():
        found = f"a folder holding {', '.join(sorted(p.name for p in path.iterdir())[:8]) or 'nothing'}"
    else:
        try:
            found = describe(torch_load(path))
        except CheckpointError as exc:
            return exc  # unreadable, refused global, truncated: that is the real problem
    expected = "; ".join(f"{f.name}/{fmt.name}: {fmt.description}" for f in candidates for fmt in f.formats)
    hint = "`dse plugins` lists every format the installed plugins read"
    if gan:
        other = _sniff([f for f in all_families if f.name != gan], path)
        if other:
            hint = f"it looks like a {other[0].name} checkpoint ({other[1].name} format): use --gan {other[0].name}"
    return CheckpointError(
        path,
        f"not a {'recognised' if not gan else gan} generator checkpoint: found {found}; "
        f"expected one of: {expected or 'no formats installed'}",
        hint=hint,
    )
