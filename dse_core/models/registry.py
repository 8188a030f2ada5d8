"""The checkpoint registry: one TOML file per known checkpoint, plus what plugins register.

An entry says where a checkpoint lives on the Hugging Face Hub (repo, revision, file),
how to check it (sha256, or ``unverified = true`` with the reason), how to read it
(family and format), and under which license it may be used. ``registry/README.md``
documents the format. Registry ids are accepted wherever a model is named:
``load_generator("stylegan2-ffhq-1024")``, ``--generator``, ``--encoder``, ``dse pull``.

Every entry arrives through the ``register_checkpoints`` hook (collected plugin by plugin by
:class:`dse_core.plugins.PluginHost`): the project's own ``registry/`` folder and the folders
listed in ``DSE_REGISTRY_PATH`` (``os.pathsep``-separated) through :class:`BuiltinCatalogue`, the
same way a plugin registers its files. This module parses and checks entries and fetches their
files; lookups by id are the host's (``get_host().checkpoint(id)``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs

from ..config import from_dict
from ..errors import ConfigError, DseError
from ..hookspecs import hookimpl
from . import hub
from .format import WEIGHTS_FILE

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None

KINDS = ("generator", "encoder")
REDISTRIBUTION = ("allowed", "non-commercial", "forbidden", "unknown")
DSE_FORMAT = "dse"  # a dse model repo: config.json + model.safetensors
def _builtin_dir() -> Path:
    """The project's registry/ folder: shipped in wheels as the dse_core.catalogue package data."""
    from importlib.resources import files

    try:
        return Path(str(files("dse_core.catalogue")))
    except ModuleNotFoundError:  # a source checkout run without installing
        return Path(__file__).resolve().parents[2] / "registry"


BUILTIN_DIR = _builtin_dir()
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@attrs.frozen
class HubLocation:
    """Where the file is on the Hub, and how to check it."""

    repo_id: str  # "owner/name"
    file: str  # the checkpoint file in the repo ("model.safetensors" for format "dse")
    revision: str = "main"  # branch, tag or (best) a 40-hex commit
    extra_files: tuple[str, ...] = ()  # fetched next to `file` (e.g. a config.json the reader needs)
    sha256: str | None = None  # of `file`; required unless `unverified`
    unverified: bool = False  # true: no sha256 pinned yet
    unverified_reason: str | None = None  # why (required when unverified)


@attrs.frozen
class CheckpointEntry:
    """One registry entry (one TOML file)."""

    id: str  # lower-case, no "/": "stylegan2-ffhq-1024"
    kind: str  # "generator" or "encoder"
    family: str  # the GAN family (--gan): "stylegan2"
    plugin: str  # the distribution that provides the family: "dse-plugin-stylegan2"
    resolution: int  # output (generator) or input (encoder) size in pixels
    dataset: str  # what it was trained on: "FFHQ"
    license: str  # license of the weights: "Apache-2.0", "Nvidia Source Code License-NC", "unknown"
    source_url: str  # where the weights were first published
    hub: HubLocation
    format: str = "auto"  # "dse", a format of the family (`dse plugins`), or "auto" (detected)
    classes: int = 0  # number of classes of a conditional generator (0: unconditional)
    license_url: str | None = None
    redistribution: str = "unknown"  # "allowed", "non-commercial", "forbidden" or "unknown"
    paper: str | None = None
    description: str = ""
    inverts: str | None = None  # encoders: the registry id of the generator they invert
    fingerprint: str | None = None  # generators: dse's generator fingerprint of the weights, once known
    origin: str = ""  # filled in: the file or plugin it came from

    @property
    def pinned(self) -> str | None:
        return self.hub.sha256 if not self.hub.unverified else None

    @property
    def is_dse_repo(self) -> bool:
        return self.format == DSE_FORMAT


def _problems(entry: CheckpointEntry) -> list[str]:
    """Checks beyond types, each naming its field."""
    p = []
    if not _ID.match(entry.id):
        p.append(f"$.id: {entry.id!r} must be lower-case letters, digits, '.', '_' or '-' (no '/': that is a repo id)")
    if entry.kind not in KINDS:
        p.append(f"$.kind: {entry.kind!r} is not one of {', '.join(KINDS)}")
    if not _ID.match(entry.family):
        p.append(f"$.family: {entry.family!r} is not a family name")
    if entry.resolution <= 0:
        p.append(f"$.resolution: must be > 0, got {entry.resolution}")
    if entry.classes < 0:
        p.append(f"$.classes: must be >= 0, got {entry.classes}")
    if not entry.license.strip():
        p.append("$.license: empty (write \"unknown\" and give source_url when unsure)")
    if not entry.source_url.startswith(("https://", "http://")):
        p.append(f"$.source_url: {entry.source_url!r} is not a URL")
    if entry.redistribution not in REDISTRIBUTION:
        p.append(f"$.redistribution: {entry.redistribution!r} is not one of {', '.join(REDISTRIBUTION)}")
    if entry.kind == "encoder" and not entry.inverts:
        p.append("$.inverts: an encoder names the registry id of the generator it inverts")
    if entry.kind == "generator" and entry.inverts:
        p.append("$.inverts: only encoders invert a generator")
    if entry.fingerprint is not None and not _SHA256.match(entry.fingerprint):
        p.append("$.fingerprint: expected 64 lower-case hex digits")
    p += _hub_problems(entry)
    return p


def _hub_problems(entry: CheckpointEntry) -> list[str]:
    hub, p = entry.hub, []
    if not _REPO.match(hub.repo_id):
        p.append(f"$.hub.repo_id: {hub.repo_id!r} is not a Hub repo id (owner/name)")
    if not hub.revision.strip():
        p.append("$.hub.revision: empty")
    if not hub.file or hub.file.startswith("/") or ".." in hub.file.split("/"):
        p.append(f"$.hub.file: {hub.file!r} is not a file path in the repo")
    if entry.format == DSE_FORMAT and hub.file != "model.safetensors":
        p.append("$.hub.file: a \"dse\" format entry points at model.safetensors")
    if hub.sha256 is not None and not _SHA256.match(hub.sha256):
        p.append("$.hub.sha256: expected 64 lower-case hex digits")
    if hub.unverified and hub.sha256 is not None:
        p.append("$.hub.sha256: an unverified entry has no sha256 (drop `unverified` once it is pinned)")
    if not hub.unverified and hub.sha256 is None:
        p.append("$.hub.sha256: missing; pin it, or set `unverified = true` with `unverified_reason`")
    if hub.unverified and not (hub.unverified_reason or "").strip():
        p.append("$.hub.unverified_reason: say why the entry is not verified")
    return p


def is_id(text: str) -> bool:
    """Whether ``text`` has the shape of a registry id (lower case, no "/")."""
    return bool(_ID.match(text))


def parse_entry(data: Any, source: str | Path, origin: str | None = None) -> CheckpointEntry:
    """Build and validate an entry from plain data; errors name ``source`` and each bad field."""
    if isinstance(data, Mapping) and "origin" in data:
        raise ConfigError(source, ["$.origin: set by dse, not by an entry"])
    entry = from_dict(CheckpointEntry, dict(data) if isinstance(data, Mapping) else data, source=source)
    problems = _problems(entry)
    if problems:
        raise ConfigError(source, problems, hint="registry/README.md documents every field")
    return attrs.evolve(entry, origin=origin or str(source))


def load_file(path: str | Path) -> CheckpointEntry:
    """Read one ``<id>.toml`` file."""
    path = Path(path)
    if tomllib is None:  # pragma: no cover
        raise DseError("reading the registry needs Python 3.11+ (tomllib)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"cannot read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    entry = parse_entry(data, path)
    if path.stem != entry.id:
        raise ConfigError(path, [f"$.id: {entry.id!r} differs from the file name; name the file {entry.id}.toml"])
    return entry


def load_dir(folder: str | Path) -> tuple[list[CheckpointEntry], list[DseError]]:
    """Every ``*.toml`` in a folder: the valid entries, and one error per bad file."""
    entries, errors = [], []
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            entries.append(load_file(path))
        except DseError as exc:
            errors.append(exc)
    return entries, errors


def search_path() -> list[Path]:
    """The project's ``registry/`` folder, then ``DSE_REGISTRY_PATH``."""
    extra = [Path(p) for p in os.environ.get("DSE_REGISTRY_PATH", "").split(os.pathsep) if p.strip()]
    return [d for d in [BUILTIN_DIR, *extra] if d.is_dir()]


def coerce(item: Any, origin: str) -> list[CheckpointEntry]:
    """An entry, a dict or a ``.toml`` file a plugin hands to ``register`` (the host reads folders with :func:`load_dir`)."""
    if isinstance(item, CheckpointEntry):
        problems = _problems(item)
        if problems:
            raise ConfigError(origin, problems)
        return [attrs.evolve(item, origin=origin)]
    if isinstance(item, Mapping):
        return [parse_entry(item, origin, origin)]
    if isinstance(item, (str, Path)) and Path(item).suffix == ".toml":
        return [attrs.evolve(load_file(item), origin=f"{origin}: {Path(item).name}")]
    raise TypeError(f"register() takes a CheckpointEntry, a dict, a .toml file or a folder of them, got {item!r}")


# -- lookups ---------------------------------------------------------------------------------------

def entry_for_source(known: Mapping[str, CheckpointEntry], source: Mapping[str, Any],
                     kind: str | None = None) -> CheckpointEntry | None:
    """Among ``known`` entries, the one a saved model came from (converted weights) or, for an encoder, its generator's."""
    if kind == "encoder":
        generator = source.get("generator") or {}
        return known.get(generator.get("registry_id") or "")
    origin = source.get("origin") or {}
    if origin.get("registry_id") in known:
        return known[origin["registry_id"]]
    for entry in known.values():
        if entry.pinned and entry.pinned == source.get("sha256"):
            return entry
    return None


def license_record(entry: CheckpointEntry) -> dict[str, str]:
    """What a model read from ``entry`` records of its license (its card states it without the registry)."""
    return {"license": entry.license, **({"license_url": entry.license_url} if entry.license_url else {})}


def redistribution_note(entry: CheckpointEntry) -> str | None:
    """A warning for publishing weights derived from ``entry``, or None when its license allows it."""
    if entry.redistribution == "allowed":
        return None
    what = {
        "non-commercial": "allows redistribution only for non-commercial use, under the same license",
        "forbidden": "forbids redistribution",
        "unknown": "may not allow redistribution (dse does not know)",
    }[entry.redistribution]
    return (f"these weights are converted from {entry.id} ({entry.hub.repo_id}); its license, {entry.license}"
            + (f" ({entry.license_url})" if entry.license_url else "") + f", {what}")


# -- files -----------------------------------------------------------------------------------------

def fetch(entry: CheckpointEntry, revision: str | None = None) -> Path:
    """Download (or find in the cache) what ``entry`` points at; checked against its sha256.

    Returns the snapshot folder for a "dse" entry, else the checkpoint file (its ``extra_files``
    are fetched next to it). Another ``revision`` than the entry's is not pinned: it is checked
    against the Hub's own hash only.
    """
    rev = revision or entry.hub.revision
    sha256 = entry.pinned if rev == entry.hub.revision else None
    hint = hub.pull_command(entry.id, revision)
    if entry.is_dse_repo:
        folder = hub.download(entry.hub.repo_id, rev, pull_hint=hint)
        if sha256:
            hub._refuse_if_corrupt(folder / WEIGHTS_FILE, sha256, f"{entry.id} ({entry.hub.repo_id}@{rev})")
        return folder
    path = hub.fetch_file(entry.hub.repo_id, entry.hub.file, rev, sha256=sha256, pull_hint=hint)
    for extra in entry.hub.extra_files:
        hub.fetch_file(entry.hub.repo_id, extra, rev, pull_hint=hint)
    return path


def _files(entry: CheckpointEntry) -> list[str]:
    if entry.is_dse_repo:
        return ["config.json", entry.hub.file]
    return [entry.hub.file, *entry.hub.extra_files]


def cached_path(entry: CheckpointEntry, filename: str | None = None) -> Path | None:
    """The cached copy of one of the entry's files (default: the checkpoint), without any network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(entry.hub.repo_id, filename or entry.hub.file, revision=entry.hub.revision)
    return Path(found) if isinstance(found, str) else None


def cache_status(entry: CheckpointEntry) -> str:
    """``yes``, ``no`` or ``partial`` (some of its files)."""
    present = [cached_path(entry, f) is not None for f in _files(entry)]
    return "yes" if all(present) else "partial" if any(present) else "no"


def check_cached(entry: CheckpointEntry) -> tuple[str, str]:
    """(status, detail) for the cached files: ``ok``, ``MISMATCH``, ``unverified``, ``not cached``.

    The checkpoint is checked against its pinned sha256, else the Hub's own hash; its extra files
    (configs) against the Hub's hash (sha256 for LFS files, git sha1 for the rest).
    """
    path = cached_path(entry)
    if path is None:
        return "not cached", ""
    bad = []
    for name in _files(entry):
        cached = path if name == entry.hub.file else cached_path(entry, name)
        pin = entry.pinned if name == entry.hub.file else None
        mismatch = hub.hash_mismatch(cached, pin) if cached is not None else None
        if mismatch is not None:
            bad.append(f"{cached}: hashes to {mismatch[1]}, {'the registry pins' if pin else 'the Hub says'} {mismatch[0]}")
    if bad:
        return "MISMATCH", "; ".join(bad)
    if entry.pinned:
        return "ok", entry.pinned
    return "unverified", f"sha256 {hub.sha256_of(path)} (no pinned sha256: {entry.hub.unverified_reason})"


def check_against_plugins(entry: CheckpointEntry, families: Mapping[str, Any]) -> list[str]:
    """Problems with an entry given the installed families (unknown format, wrong plugin name)."""
    family = families.get(entry.family)
    if family is None:
        return []  # the plugin is not installed here: nothing to check against
    problems = []
    if entry.format not in ("auto", DSE_FORMAT) and entry.format not in [f.name for f in family.formats]:
        problems.append(f"$.format: {entry.format!r} is not a {entry.family} format "
                        f"({', '.join(f.name for f in family.formats)})")
    if family.package and entry.plugin != family.package:
        problems.append(f"$.plugin: {entry.plugin!r}, but {entry.family} is provided by {family.package!r}")
    return problems


def cross_check(all_entries: Iterable[CheckpointEntry]) -> list[str]:
    """Problems between entries: an encoder inverting an unknown or non-generator id."""
    by_id = {e.id: e for e in all_entries}
    problems = []
    for e in by_id.values():
        if e.kind == "encoder":
            target = by_id.get(e.inverts or "")
            if target is None or target.kind != "generator":
                problems.append(f"{e.origin}: $.inverts: {e.inverts!r} is not a generator in the registry")
            elif target.family != e.family:
                problems.append(f"{e.origin}: $.family: {e.family!r}, but {target.id} is a {target.family} generator")
    return problems


class BuiltinCatalogue:
    """The project's ``registry/`` and the ``DSE_REGISTRY_PATH`` folders, through the hook any plugin uses."""

    @hookimpl
    def register_checkpoints(self, register):
        for folder in search_path():
            register(folder)
