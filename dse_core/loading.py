"""``load_generator``: one entry point for every supported checkpoint, folder or Hub repo."""

from __future__ import annotations

from pathlib import Path

import torch

from . import hub
from .checkpoints import describe, torch_load
from .errors import CheckpointError, DseError
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
    written by ``save_pretrained`` (or ``dse convert``), or a Hub repo id
    (``owner/name[@revision]``). ``gan`` restricts the search to one family; without
    it the family is sniffed. Returns the generator in eval mode on ``device``.
    """
    host = get_host()
    path = hub.resolve(path_or_repo_id, revision)
    if path.is_file() and path.name == hub.WEIGHTS_FILE and hub.is_pretrained_dir(path.parent):
        path = path.parent
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
