"""``load_generator`` / ``load_encoder``: one entry point each for every supported checkpoint, folder or Hub repo."""

from __future__ import annotations

import traceback
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch

from .config import read_json
from .device import resolve_device
from .encoder import Encoder
from .errors import CheckpointError, ConfigError, DamagedFileError, DseError, DseWarning, UnknownNameError
from .families import KNOWN_PACKAGES, CheckpointFormat, GanFamily
from .models import hub, registry
from .models.files import describe, torch_load
from .models.format import (CONFIG_FILE, LIBRARY_NAME, WEIGHTS_FILE, describe_generator, generator_fingerprint,
                            is_pretrained_dir, read_header)
from .plugins import get_host


def load_generator(
    path_or_repo_id: str | Path,
    gan: str | None = None,
    device: str | torch.device = "cpu",
    revision: str | None = None,
):
    """Load any supported generator, ready to call: ``G(z, c, truncation_psi, ...)``.

    ``path_or_repo_id`` is a checkpoint file in a format some plugin reads, a folder
    written by ``save_pretrained`` (or ``dse convert``), a registry id (``dse models``;
    downloaded, checked against its sha256 and read by its family's reader), a Hub
    repo id (``owner/name[@revision]``), or ``demo:<family>`` for a plugin's embedded
    demo. ``gan`` restricts the search to one family; without it the family is sniffed.
    Returns the generator in eval mode on ``device``; ``generator.origin`` says where it came from.
    """
    host = get_host()
    spec = _resolve(path_or_repo_id, "generator", revision)
    path, entry = spec.path, spec.entry
    device = resolve_device(device)

    if is_pretrained_dir(path):
        header = read_header(path, expect_kind="generator")
        family = host.family(header["family"])
        if gan is not None and gan != family.name:
            raise CheckpointError(path, f"holds a {family.name} generator, not {gan}", hint=f"use --gan {family.name}")
        generator = family.generator_class.from_pretrained(path, device=device)
        generator.origin = spec.origin
        return generator

    if entry is not None and entry.format not in ("auto", registry.DSE_FORMAT):
        family = host.family(entry.family, package=entry.plugin)
        if gan is not None and gan != family.name:
            raise DseError(f"{entry.id} is a {family.name} generator, not {gan}", hint=f"use --gan {family.name}")
        matches = [(family, family.format(entry.format))]
    else:
        candidates = [host.family(gan or entry.family)] if (gan or entry) else list(host.families.values())
        crashed: list = []
        matches = _sniff(candidates, path, crashed=crashed)
        if not matches:
            raise _no_format_error(path, gan, candidates, host.families.values(), crashed)
    family, fmt, generator = _load_first(matches, path)
    # what the reader recorded (how the model's images look, say), then where the weights came from
    generator.source = {**(getattr(generator, "source", None) or {}), "format": f"{family.name}/{fmt.name}",
                        "file": path.name}
    generator.origin = spec.origin
    return generator.to(device).eval()


def load_encoder(
    path_or_repo_id: str | Path,
    gan: str | None = None,
    device: str | torch.device = "cpu",
    revision: str | None = None,
    generator=None,
    force: bool = False,
):
    """Load a DSE encoder in eval mode (noise off): ``E(x, c)`` gives its latents by name.

    ``path_or_repo_id`` is a folder written by ``Encoder.save_pretrained`` (or a ``dse train`` run
    folder, for its ``encoder/``), a registry id, a Hub repo id (``owner/name[@revision]``),
    ``demo:<family>``, or an encoder checkpoint in a format a family registers (its
    ``encoder_formats``: e.g. the DSE authors' ``E_model_*.pth``). Such files rarely say which
    generator they invert: ``gan`` does (else ``generator``'s family), and must when several families
    read the file; for our folders it is checked against the saved family.

    With ``generator``, the encoder must have been trained for it (see :func:`check_encoder_matches`):
    otherwise a :class:`DseError` names both, unless ``force``.
    """
    spec = _resolve(path_or_repo_id, "encoder", revision)
    path = spec.path
    device = resolve_device(device)
    if is_pretrained_dir(path):
        header = read_header(path, expect_kind="encoder")
        if gan is not None and gan != header.get("family"):
            raise CheckpointError(path, f"holds an encoder for {header.get('family')} generators, not {gan} ones",
                                  hint=f"pass an encoder trained for this {gan} generator, or a {header.get('family')} "
                                       "generator")
        encoder = Encoder.from_pretrained(path, device=device)
    else:
        # a file rarely says which generator it inverts: the family named, the registry's, else the generator's
        family = gan or (spec.entry.family if spec.entry else None) or getattr(generator, "family", None)
        encoder = _load_foreign_encoder(path, family).to(device).eval()
    encoder.origin = spec.origin
    if generator is not None:
        check_encoder_matches(encoder, generator, force=force, entry=spec.entry)
    return encoder


def _load_foreign_encoder(path: Path, gan: str | None):
    """An encoder checkpoint read by a family's ``encoder_formats``; ``gan`` picks the family when several read it."""
    host = get_host()
    candidates = [host.family(gan)] if gan else list(host.families.values())
    matches = [] if path.is_dir() else _sniff(candidates, path, kind="encoder")
    if not matches:
        raise _not_an_encoder_error(path, candidates, gan)
    families = sorted({family.name for family, _ in matches})
    if len(families) > 1:
        raise DseError(f"{path}: an encoder checkpoint of the {', '.join(families)} families alike: the file does not "
                       "say which generator it inverts", hint=f"pass --gan {' or --gan '.join(families)} (gan=...)")
    family, fmt, encoder = _load_first(matches, path)
    encoder.source = {**(getattr(encoder, "source", None) or {}), "format": f"{family.name}/{fmt.name}", "file": path.name}
    return encoder


def convert_checkpoint(path_or_repo_id: str | Path, output: str | Path, gan: str | None = None, force: bool = False):
    """What ``dse convert`` does: read any generator or encoder checkpoint a plugin reads and save it in dse's format.

    ``output`` becomes ``config.json`` + ``model.safetensors`` (+ card); ``source`` records the file's format,
    its sha256, and the registry entry and license it came from (found by id, or by the pinned sha256 of a
    local file). Returns the model.
    """
    from .models.hub import sha256_of

    out = Path(output)
    if out.exists() and not out.is_dir():
        raise DseError(f"-o {out} is a file; a converted model is a folder (config.json + model.safetensors)",
                       hint="choose a folder name for -o")
    if is_pretrained_dir(out) and not force:
        raise DseError(f"{out} already holds a model", hint="pass --force to overwrite it, or choose another -o")
    model = _load_either(path_or_repo_id, gan)
    source = dict(getattr(model, "source", None) or {})
    origin = {k: v for k, v in (getattr(model, "origin", None) or {}).items() if k != "spec"}
    local = Path(path_or_repo_id)
    checkpoint_file = local if local.is_file() else _registry_file(origin)
    if checkpoint_file is not None:
        source["sha256"] = sha256_of(checkpoint_file)
        entry = None if origin.get("registry_id") else registry.entry_for_source(get_host().checkpoints, source, model.kind)
        if entry is not None:  # a local copy of a registry checkpoint: its license goes with it
            origin.update(registry_id=entry.id, **registry.license_record(entry))
    if origin:
        source["origin"] = origin  # the registry entry / Hub repo it came from: the card states its license
    model.save_pretrained(out, source=source)
    model.source = source
    return model


def describe_model(model) -> str:
    """``stylegan2 generator, 256px, latents ws (14, 512), 30.03M parameters`` in the family's own words."""
    shapes = ", ".join(f"{name} {tuple(shape)}" for name, shape in model.latent_shapes.items())
    what = "decodes" if model.kind == "generator" else "predicts"
    params = sum(p.numel() for p in model.parameters())
    return f"{model.family} {model.kind}, {model.resolution}px, {what} {shapes or 'nothing'}, {params / 1e6:.2f}M parameters"


def _load_either(path_or_repo_id: str | Path, gan: str | None):
    """The generator or the encoder a checkpoint holds: a dse folder or registry entry says which; a file is read as
    an encoder when a family's encoder format recognises it (those look for specific tensors), else (or when that
    read fails) as a generator."""
    path = _model_folder(Path(str(path_or_repo_id)), "encoder")
    if is_pretrained_dir(path):
        kind = read_header(path).get("kind")
    elif not path.is_file():
        entry = get_host().checkpoint(str(path_or_repo_id))
        kind = entry.kind if entry is not None else "generator"
    else:
        host = get_host()
        families = [host.family(gan)] if gan else list(host.families.values())
        kind = "encoder" if _sniff(families, path, "encoder") else "generator"
    if kind != "encoder":
        return load_generator(path_or_repo_id, gan=gan, device="cpu")
    try:
        return load_encoder(path_or_repo_id, gan=gan, device="cpu")
    except CheckpointError as exc:
        if not path.is_file():
            raise
        try:
            return load_generator(path_or_repo_id, gan=gan, device="cpu")
        except CheckpointError:
            raise exc from None  # the encoder reader's reason: its format recognised the file


def _registry_file(origin: dict) -> Path | None:
    """The cached checkpoint file a registry id was read from (its sha256 goes into the converted config)."""
    entry = get_host().checkpoint(origin.get("registry_id") or "")
    return None if entry is None or entry.is_dse_repo else registry.cached_path(entry)


def check_encoder_matches(encoder, generator, force: bool = False, entry=None) -> None:
    """Refuse an encoder trained for another generator than ``generator`` (a :class:`DseError` naming both).

    The encoder's ``source.generator`` record (written by ``dse train``) holds the fingerprint of the
    generator it was trained for (:func:`dse_core.generator_fingerprint`); a registry encoder
    names the generator id it inverts. ``force`` turns the refusal into a warning. An encoder that
    records nothing (e.g. the DSE authors' ``.pth``) loads with a warning.
    """
    wanted = _trained_for(encoder, entry)
    origin = getattr(generator, "origin", None) or {}
    given = {"id": origin.get("spec") or "the generator given",
             **{k: origin[k] for k in ("registry_id", "repo_id", "revision") if origin.get(k)}}
    name = (getattr(encoder, "origin", None) or {}).get("spec") or "the encoder"
    if wanted.get("fingerprint"):
        given["fingerprint"] = generator_fingerprint(generator)
        same = given["fingerprint"] == wanted["fingerprint"]
    elif wanted.get("registry_id") and given.get("registry_id"):
        same = wanted["registry_id"] == given["registry_id"]
    elif wanted.get("id") and wanted["id"] == given["id"]:
        return  # the same spec (e.g. demo:stylegan2), no fingerprint to compare
    else:
        what = f"records only {describe_generator(wanted)}" if wanted else "records no generator"
        warnings.warn(f"encoder {name} {what}: cannot check that it was trained for {describe_generator(given)}",
                      DseWarning, stacklevel=3)
        return
    if same:
        return
    message = (f"encoder {name} was trained for generator {describe_generator(wanted)}, "
               f"not for {describe_generator(given)}")
    if not force:
        raise DseError(message, hint="pass the generator it was trained for, or --force (force=True) to use it anyway")
    warnings.warn(message + "; using it anyway (--force)", DseWarning, stacklevel=3)


def recorded_generator(encoder, entry=None) -> str:
    """The spec of the generator ``encoder`` was trained for, to load it by (``dse invert --encoder`` alone)."""
    record = _trained_for(encoder, entry)
    spec = record.get("registry_id") or (f"{record['repo_id']}@{record['revision']}" if record.get("repo_id")
                                         and record.get("revision") else record.get("repo_id")) or record.get("id")
    if not spec:
        name = (getattr(encoder, "origin", None) or {}).get("spec") or "the encoder"
        raise DseError(f"{name} does not record the generator it was trained for",
                       hint="pass --generator (and --gan) for the generator it inverts")
    return spec


def latents_generator(path: Path, metadata: dict, generator: str | None = None, gan: str | None = None) -> str:
    """The spec of the generator that decodes a latents file: ``generator`` (an override), else the one its
    ``metadata`` record, else ``gan``'s demo.

    A recorded path relative to the file (``../generators/NAME``: a tuned G written beside the latents by
    ``dse invert --refine generator``) is resolved against the file's folder; older runs record it absolute.
    A recorded folder that is gone is a :class:`DseError` saying so.
    """
    import os

    if generator:
        return generator
    recorded = metadata.get("generator")
    if recorded and recorded.startswith(("./", "../")):
        recorded = os.path.normpath(Path(path).absolute().parent / recorded)
    if recorded and Path(recorded).is_absolute() and not Path(recorded).exists():
        raise DseError(f"{path}: the generator it records, {recorded}, is gone",
                       hint="a tuned G (dse invert --refine generator) lives in the run folder beside latents/: "
                       "move or copy the run folder whole; or pass --generator (--force for another generator)")
    if not recorded and not gan:
        raise DseError(f"{path}: no generator recorded (a {path.suffix} file without its .safetensors beside it)",
                       hint="pass --generator with the generator the latents were inverted with "
                            "(--gan FAMILY alone: its demo generator)")
    return recorded or f"{DEMO_PREFIX}{gan}"


def check_latents_generator(path: Path, metadata: dict, G, spec: str, force: bool = False) -> None:
    """Latents decode as they were inverted only with the generator ``dse invert`` recorded (its fingerprint):
    another is a :class:`DseError` (``force``: a warning). Latents of older dse versions record none."""
    recorded = metadata.get("generator_fingerprint")
    found = generator_fingerprint(G) if recorded else None
    if found == recorded:
        return
    wanted = describe_generator({"id": metadata.get("generator"), "fingerprint": recorded})
    message = (f"{path}: these latents were inverted with generator {wanted}, not with "
               f"{describe_generator({'id': spec, 'fingerprint': found})}")
    if not force:
        raise DseError(message, hint="pass --generator with the generator they were inverted with, "
                       "or --force to decode them with this one anyway")
    warnings.warn(message + "; decoding anyway (--force)", DseWarning, stacklevel=2)


def inversion_metadata(G, spec: str | Path, encoder_spec: str | Path) -> dict[str, Any]:
    """What ``dse invert`` records beside each latents file: the family, the generator (spec and fingerprint, so
    that ``dse generate`` finds and checks it), the encoder and the resolution; specs that load from anywhere."""
    return {"family": G.family, "generator": portable_spec(spec), "generator_fingerprint": generator_fingerprint(G),
            "encoder": portable_spec(encoder_spec), "resolution": G.resolution}


def portable_spec(spec: str | Path) -> str:
    """A model spec that loads from any working directory: local paths made absolute, ids kept as they are."""
    text = str(spec)
    if text.startswith(DEMO_PREFIX) or not Path(text).exists():
        return text  # demo:FAMILY, a registry id or a Hub repo id
    return str(Path(text).absolute())


def _trained_for(encoder, entry) -> dict[str, Any]:
    """The encoder's record of its generator, else what its registry entry says it inverts."""
    record = dict(((getattr(encoder, "source", None) or {}).get("generator")) or {})
    if record or entry is None or not entry.inverts:
        return record
    target = get_host().checkpoints.get(entry.inverts)
    return {"id": entry.inverts, "registry_id": entry.inverts,
            **({"fingerprint": target.fingerprint} if target is not None and target.fingerprint else {})}


def _what_is_in(path: Path) -> str | DseError:
    """What a path holds, for "found X, expected Y" errors; the read error when it cannot be read."""
    if path.is_dir():
        broken = _broken_model_dir(path)
        if broken is not None:
            return broken
        return f"a folder holding {', '.join(sorted(p.name for p in path.iterdir())[:8]) or 'nothing'}"
    try:
        return describe(torch_load(path))
    except CheckpointError as exc:
        return exc


def _broken_model_dir(path: Path) -> DseError | None:
    """Why a folder that looks written by save_pretrained is not one: its config or weights file."""
    config, weights = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not config.is_file():
        if weights.is_file():
            return CheckpointError(config, "is missing (a dse model folder holds config.json + model.safetensors)",
                                   hint="convert the original checkpoint again with `dse convert`")
        return None
    try:
        header = read_json(config)
    except ConfigError as exc:  # beside model.safetensors, or naming a library: a broken model folder
        text = config.read_text(encoding="utf-8", errors="replace")
        return exc if weights.is_file() or '"library_name"' in text else None
    if not isinstance(header, dict) or header.get("library_name") != LIBRARY_NAME:
        return None  # another library's folder: the plugins' sniffers had their say
    try:
        read_header(path)
    except CheckpointError as exc:
        return exc  # an unknown format version, ...
    if not weights.is_file():
        return CheckpointError(weights, "is missing: the folder holds a dse config.json but no weights",
                               hint="copy model.safetensors back, or convert the original checkpoint again")
    return None


def _not_an_encoder_error(path: Path, families, gan: str | None = None) -> CheckpointError:
    found = _what_is_in(path)
    if isinstance(found, DseError):
        return found  # unreadable, refused global, truncated: that is the real problem
    formats = "; ".join(f"{f.name}/{fmt.name}: {fmt.description}" for f in families for fmt in f.encoder_formats)
    return CheckpointError(
        path,
        f"not an encoder checkpoint: found {found}; expected a folder written by save_pretrained (kind \"encoder\")"
        + (f" or one of: {formats}" if formats else ""),
        hint=_looks_like(path, gan, get_host().families.values()) if gan and path.is_file() else None,
    )


def _looks_like(path: Path, gan: str, all_families) -> str | None:
    """What another family would read ``path`` as, and the flag that reads it: a hint when ``--gan`` was wrong."""
    others = [f for f in all_families if f.name != gan]
    for kind in ("generator", "encoder"):
        found = _sniff(others, path, kind)
        if found:
            names = list(dict.fromkeys(family.name for family, _ in found))  # every family that reads it, in order
            return (f"it looks like a {' or '.join(names)} {kind} checkpoint ({found[0][1].name} format): use "
                    f"{' or '.join('--gan ' + name for name in names)} (`dse convert {path.name} --gan {names[0]} "
                    "-o OUT/` converts it)")
    return None


DEMO_PREFIX = "demo:"


def demo_path(family_name: str, kind: str) -> Path:
    """The folder of a family's embedded demo generator or encoder (``demo:stylegan2``)."""
    family = get_host().family(family_name)
    if family.demo is None or not (family.demo / kind).is_dir():
        raise DseError(f"the {family_name} plugin ships no demo {kind}",
                       hint=f"pass --{kind} with a checkpoint, a converted folder or a Hub repo id")
    return family.demo / kind


class Resolved(NamedTuple):
    path: Path  # a local file or folder
    origin: dict  # spec, and registry_id / repo_id / revision / file when it came from the Hub
    entry: Any = None  # the registry entry, if the spec was a registry id


def _resolve(path_or_repo_id: str | Path, kind: str, revision: str | None) -> Resolved:
    """A local file or folder for a path, ``demo:<family>``, a registry id or a Hub repo id."""
    text = str(path_or_repo_id)
    origin = {"spec": text}
    if text.startswith(DEMO_PREFIX):
        return Resolved(demo_path(text[len(DEMO_PREFIX):], kind), origin)
    if Path(text).exists():
        return Resolved(_model_folder(Path(text), kind), origin)
    entry = get_host().checkpoint(text)
    if entry is not None:
        if entry.kind != kind:
            raise DseError(f"{entry.id} is a registry {entry.kind}, not a {kind}",
                           hint=f"pass it as --{entry.kind}" if entry.kind in ("generator", "encoder") else None)
        get_host().family(entry.family, package=entry.plugin)  # no download for a family no installed plugin can read
        rev = revision or hub.split_revision(text)[1]
        path = registry.fetch(entry, rev)
        origin.update(registry_id=entry.id, repo_id=entry.hub.repo_id, file=entry.hub.file,
                      revision=_commit(path) or rev or entry.hub.revision, **registry.license_record(entry))
        return Resolved(_model_folder(path, kind), origin, entry)
    if hub.is_repo_id(text):
        repo_id, rev = hub.split_revision(text)
        try:
            folder = hub.download(repo_id, revision or rev)
        except DseError as exc:
            if Path(repo_id).parent.is_dir():  # `runs/e9` beside a local runs/: most likely a mistyped path
                raise DseError(f"{text}: no such file or folder here, nor a Hub repo I can fetch ({exc.message})",
                               hint=exc.hint) from None
            raise
        origin.update(repo_id=repo_id, revision=hub.commit_of(folder) or revision or rev)
        return Resolved(folder, origin)
    if "/" not in text and "\\" not in text and get_host().checkpoints:
        known = [e.id for e in get_host().checkpoints.values() if e.kind == kind]
        raise UnknownNameError(f"{kind} (no such file, registry id or Hub repo)", text, known,
                               hint="`dse models` lists the registry ids")
    raise DseError(f"{text}: no such file or folder")


def _model_folder(path: Path, kind: str) -> Path:
    """The saved model a local path means: its folder for its weights file, a training run's encoder/ for the run."""
    if path.is_file() and path.name == WEIGHTS_FILE and is_pretrained_dir(path.parent):
        return path.parent
    if kind == "encoder" and path.is_dir() and not is_pretrained_dir(path) and is_pretrained_dir(path / "encoder"):
        return path / "encoder"  # a `dse train` run folder
    return path


def _commit(path: Path) -> str | None:
    for folder in (path, *path.parents):
        commit = hub.commit_of(folder)
        if commit:
            return commit
    return None


def _sniff(families, path: Path, kind: str = "generator",
           crashed: list | None = None) -> list[tuple[GanFamily, CheckpointFormat]]:
    """Every (family, format) whose sniff says yes to ``path``, in the order they are tried.

    ``kind`` "generator" tries the families' ``formats``, "encoder" their ``encoder_formats``. A sniffer
    that raises counts as a no (it must not decide the outcome) and goes into ``crashed`` (name, exception),
    which the error says when nothing reads the file.

    The project's own families (:data:`KNOWN_PACKAGES`) come first, then the others by
    name; each family's formats in the order it lists them. The order does not depend on
    which plugin happened to load first.
    """
    ordered = sorted(families, key=lambda f: (f.name not in KNOWN_PACKAGES, f.name))
    matches = []
    for family in ordered:
        for fmt in family.formats if kind == "generator" else family.encoder_formats:
            try:
                if fmt.sniff(path):
                    matches.append((family, fmt))
            except DamagedFileError:
                raise  # truncated or failing its checksums: no reader can load it, whatever else would try
            except CheckpointError:
                continue  # the file is not one this reader can open (e.g. a class its allow-list refuses): a no
            except Exception as exc:  # a sniffer must never decide the outcome by crashing
                if crashed is not None:
                    crashed.append((f"{family.name}/{fmt.name}", exc))
    return matches


def _load_first(matches, path: Path) -> tuple[GanFamily, CheckpointFormat, Any]:
    """The first of ``matches`` whose ``load`` succeeds; one CheckpointError with each reader's failure if none does.

    A loose sniff (say, "any .pt file") must not stop the right reader from getting its turn,
    so any exception moves on to the next candidate, not only a :class:`DseError`.
    """
    failures = []
    for family, fmt in matches:
        try:
            return family, fmt, fmt.load(path)
        except Exception as exc:
            failures.append((f"{family.name}/{fmt.name}", exc))
    if len(failures) == 1 and isinstance(failures[0][1], DseError):
        raise failures[0][1]  # the only reader's own message says it best
    if len(failures) == 1:
        name, exc = failures[0]
        raise CheckpointError(path, f"the {name} reader failed: {_failure(exc, path)}",
                              hint=f"a bug in the plugin that provides {name.split('/')[0]}: report it there") from exc
    reasons = "; ".join(f"{name}: {_failure(exc, path)}" for name, exc in failures)
    raise CheckpointError(path, f"{len(failures)} readers recognised it but none could load it: {reasons}")


def _failure(exc: BaseException, path: Path) -> str:
    """One reader's failure in one line: a DseError's own message (less the path), else the exception and its line."""
    if isinstance(exc, DseError):
        return exc.message.removeprefix(f"{path}: ")
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _no_format_error(path: Path, gan, candidates, all_families, crashed=()) -> CheckpointError:
    if crashed:  # a plugin's bug hid whether its reader would have taken the file
        return CheckpointError(path, f"no reader recognised it, and {len(crashed)} reader(s) crashed looking: "
                               + "; ".join(f"{name}'s sniff: {_failure(exc, path)}" for name, exc in crashed),
                               hint=f"a bug in the plugin that provides {crashed[0][0].split('/')[0]}: report it there")
    other = _looks_like(path, gan, all_families) if gan else None
    found = _what_is_in(path)
    if isinstance(found, DseError):
        if other:  # what this family's loader refuses (an unknown pickled class, say) another family reads
            return CheckpointError(path, f"not a {gan} generator checkpoint", hint=other)
        return found  # unreadable, refused global, truncated: that is the real problem
    expected = "; ".join(f"{f.name}/{fmt.name}: {fmt.description}" for f in candidates for fmt in f.formats)
    hint = other or "`dse plugins` lists every format the installed plugins read"
    return CheckpointError(
        path,
        f"not a {'recognised' if not gan else gan} generator checkpoint: found {found}; "
        f"expected one of: {expected or 'no formats installed'}",
        hint=hint,
    )


def load_pair(generator: str | None, encoder: str | None, gan: str | None = None,
              device: str | torch.device = "cpu", force: bool = False) -> tuple[Any, Any, str]:
    """``(G, E, G's spec)`` as ``dse invert`` picks them from ``--generator``, ``--encoder`` and ``--gan``.

    ``gan`` alone: the family's embedded demo pair. ``encoder`` alone: the generator it records it was
    trained for. Otherwise G from ``generator`` (default ``demo:<gan>``) and E checked against it
    (``force``: a warning instead of the refusal).
    """
    encoder = encoder or (f"{DEMO_PREFIX}{gan}" if not generator and gan else None)
    if encoder is None:
        raise DseError("say which encoder to use",
                       hint="pass --encoder PATH (a trained run's encoder/ folder, or a Hub repo id)")
    if not generator and not gan:  # the generator the encoder was trained for
        E = load_encoder(encoder, device=device)
        spec = recorded_generator(E)
        G = load_generator(spec, device=device)
        check_encoder_matches(E, G, force=force)
        return G, E, spec
    spec = generator or f"{DEMO_PREFIX}{gan}"
    G = load_generator(spec, gan=gan, device=device)
    return G, load_encoder(encoder, gan=G.family, device=device, generator=G, force=force), spec
