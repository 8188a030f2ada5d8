"""``dse models`` and ``dse pull``: the checkpoint registry, and downloads into the Hugging Face cache."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="the checkpoint registry: id, kind, family, resolution, license, cached?")
    p.add_argument("--check", action="store_true", help="verify the sha256 of every cached file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_models)

    p = sub.add_parser("pull", help="download a registry checkpoint or a Hub repo into the Hugging Face cache")
    p.add_argument("spec", metavar="ID_OR_REPO", help="a registry id (`dse models`) or a Hub repo id, optionally @revision")
    p.add_argument("--revision", help="branch, tag or commit (overrides @revision)")
    p.set_defaults(func=run_pull)


def run_models(args: argparse.Namespace) -> int:
    from ..models import registry
    from ..plugins import get_host

    host = get_host()
    entries = sorted(host.checkpoints.values(), key=lambda e: (e.kind, e.family, e.id))
    families = host.families
    rows = []
    for e in entries:
        status, detail = registry.check_cached(e) if args.check else (registry.cache_status(e), "")
        note = "" if e.family in families else f"needs {e.plugin}"
        rows.append({"id": e.id, "kind": e.kind, "family": e.family, "resolution": e.resolution, "license": e.license,
                     "cached": status, "verified": not e.hub.unverified, "note": note, "detail": detail,
                     "repo": f"{e.hub.repo_id}@{e.hub.revision}", "file": e.hub.file})
    broken = [f"plugin {r.name}: {r.error}" for r in host.plugins() if r.error] + list(host.registry_errors)
    bad = [r for r in rows if r["cached"] == "MISMATCH"]
    if args.json:
        print(json.dumps({"models": rows, "errors": broken}, indent=2))
        return 1 if broken or bad else 0
    header = ("ID", "KIND", "FAMILY", "RES", "LICENSE", "CHECK" if args.check else "CACHED", "")
    table = [header] + [(r["id"] + ("" if r["verified"] else " *"), r["kind"], r["family"], str(r["resolution"]),
                         r["license"], r["cached"], r["note"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if not rows:
        print("(no registry entries)")
    if any(not r["verified"] for r in rows):
        print("* unverified: no sha256 pinned yet (the entry says why); `dse pull` prints the sha256 of what it fetched")
    for r in rows:
        if args.check and r["detail"] and r["cached"] != "ok":
            print(f"{r['id']}: {r['cached']}: {r['detail']}")
    for line in broken:
        print(f"FAILED: {line}", file=sys.stderr)
    return 1 if broken or bad else 0


def run_pull(args: argparse.Namespace) -> int:
    from ..errors import UnknownNameError
    from ..models import hub, registry
    from ..models.format import WEIGHTS_FILE
    from ..plugins import get_host

    name, rev = hub.split_revision(args.spec)
    rev = args.revision or rev
    entry = get_host().checkpoint(name)
    if entry is not None:
        path = registry.fetch(entry, rev)
        print(f"{entry.id}: {entry.hub.repo_id}@{rev or entry.hub.revision} {entry.hub.file} -> {path}")
        print(f"  license: {entry.license}" + (f" ({entry.license_url})" if entry.license_url else "")
              + ("" if entry.redistribution == "allowed" else f"; redistribution: {entry.redistribution}"))
        if not entry.pinned or rev not in (None, entry.hub.revision):
            target = path / WEIGHTS_FILE if path.is_dir() else path
            why = entry.hub.unverified_reason if entry.hub.unverified else "another revision than the pinned one"
            print(f"  not pinned ({why}): sha256 of this download {hub.sha256_of(target)}")
        return 0
    if not hub.is_repo_id(name):
        raise UnknownNameError("registry id or Hub repo id", name, get_host().checkpoints,
                               hint="`dse models` lists the registry; Hub repos are owner/name[@revision]")
    folder = hub.download(name, rev)
    print(f"{name}@{hub.commit_of(folder) or rev or 'main'} -> {folder}")
    print(f"  license: {_card_license(folder)}")
    return 0


def _card_license(folder: Path) -> str:
    from huggingface_hub import ModelCard

    from ..models import registry
    from ..models.format import CARD_FILE, is_pretrained_dir, read_header
    from ..plugins import get_host

    card = folder / CARD_FILE
    if card.is_file():
        data = ModelCard.load(card).data
        if data.license:
            return data.license_name or data.license if data.license == "other" else data.license
    if is_pretrained_dir(folder):
        header = read_header(folder)
        entry = registry.entry_for_source(get_host().checkpoints, header.get("source") or {}, header.get("kind"))
        if entry is not None:
            return f"{entry.license} (from the registry entry {entry.id})"
    return "unknown (the repo states none: check it before use)"
