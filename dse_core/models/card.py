"""The model card (``README.md``) of a saved model: Hub metadata plus a short human-readable page.

YAML metadata (library, tags, license, base model) comes from huggingface_hub's
``ModelCardData`` (no Jinja2 needed); the body is built from ``config.json`` and what
else is in the folder: the reconstruction grid and a metrics table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

from ..config import write_bytes_atomic
from .format import CARD_FILE, GRID_FILE, LIBRARY_NAME, METRICS_FILE, read_header

_HF_LICENSES = {"apache-2.0", "mit", "cc-by-4.0", "cc-by-nc-4.0", "cc-by-sa-4.0", "cc-by-nc-sa-4.0", "bsd-3-clause",
                "bsd-2-clause", "gpl-3.0", "openrail", "unknown", "other"}


def card_license(license: str | None, url: str | None = None) -> dict:
    """Card metadata for a license: an id the Hub knows, else ``other`` with its name and link."""
    name = (license or "unknown").strip()
    if name.lower() in _HF_LICENSES:
        return {"license": name.lower()}
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return {"license": "other", "license_name": slug, **({"license_link": url} if url else {})}


def write_model_card(directory: str | Path, repo_id: str | None = None, license: str | None = None) -> Path:
    """``README.md``: YAML metadata (library, tags, license, base model) then a short human-readable card.

    Built from ``config.json`` and what else is in the folder (``reconstruction.png``, ``metrics.json``);
    written with huggingface_hub's ``ModelCardData`` (no Jinja2 needed).
    """
    from huggingface_hub import ModelCardData

    directory = Path(directory)
    header = read_header(directory)
    source = header.get("source") or {}
    generator = source.get("generator") if header.get("kind") == "encoder" else None
    license_info = _license_for(header, license)
    tags = ["dse", "gan-inversion", str(header.get("family")), str(header.get("kind"))]
    data = ModelCardData(library_name=LIBRARY_NAME, tags=tags,
                         **card_license(license_info.get("license"), license_info.get("license_url")))
    base = (generator or {}).get("repo_id") or (source.get("origin") or {}).get("repo_id")
    if base:
        data.base_model = base
    body = _card_body(directory, header, generator, license_info, repo_id)
    text = f"---\n{data.to_yaml()}\n---\n\n{body}"
    write_bytes_atomic(directory / CARD_FILE, text.encode("utf-8"))
    return directory / CARD_FILE


def _license_for(header: Mapping[str, Any], explicit: str | None) -> dict:
    """The license to state: explicit, else (converted weights) the one recorded at conversion, else unknown.

    ``dse convert`` records the registry entry's license in ``source.origin`` when the weights came from
    one; the card reads only the folder, so writing it never needs the registry or the plugins. An encoder
    is the trainer's own work: its license is what they pass (``--license``); the card names the license of
    the generator it inverts separately.
    """
    if explicit:
        return {"license": explicit}
    origin = (header.get("source") or {}).get("origin") or {}
    if header.get("kind") == "encoder" or not origin.get("license"):
        return {"license": "unknown"}
    return {"license": origin["license"], "license_url": origin.get("license_url"), "entry": origin.get("registry_id")}


def _card_body(directory: Path, header: Mapping[str, Any], generator: Mapping[str, Any] | None,
               license_info: Mapping[str, Any], repo_id: str | None) -> str:
    kind, family, res = header.get("kind"), header.get("family"), header.get("resolution")
    source = header.get("source") or {}
    lines = [f"# dse {family} {kind} ({res} px)", ""]
    if kind == "encoder":
        lines += ["A Diverse Similarity Encoder (DSE) that inverts images into the latent space of the generator below.", ""]
        lines += ["| generator | |", "|---|---|"]
        for key in ("registry_id", "id", "repo_id", "revision", "fingerprint"):
            if (generator or {}).get(key):
                lines.append(f"| {key} | `{generator[key]}` |")
        if not generator:
            lines.append("| (not recorded) | |")
        lines.append("")
        lines += _generator_license_lines(source)
    elif source.get("tuning"):
        lines += _tuned_lines(source)
    else:
        fmt = source.get("format", "dse")
        lines += [f"Generator weights in dse's format (converted from `{fmt}`"
                  + (f", sha256 `{source['sha256']}`" if source.get("sha256") else "") + ").", ""]
    if license_info.get("entry"):
        lines += [f"License: {license_info['license']}"
                  + (f" ({license_info['license_url']})" if license_info.get("license_url") else "")
                  + f", from the dse registry entry `{license_info['entry']}`.", ""]
    training = {k: source[k] for k in ("preset", "steps", "samples") if k in source}
    if training:
        lines += ["Training: " + ", ".join(f"{k} {v}" for k, v in training.items()) + ".", ""]
    if source.get("loss"):
        lines += [_loss_line(source), ""]
    if (directory / GRID_FILE).is_file():
        lines += ["## Reconstructions", "", "Top: generated images x; bottom: G(E(x)).", "", f"![reconstructions]({GRID_FILE})", ""]
    lines += _metrics_lines(directory)
    ref = repo_id or "<repo id>"
    loader = "load_encoder" if kind == "encoder" else "load_generator"
    lines += ["## Use", "", "```python", f"from dse_core import {loader}", "",
              f"model = {loader}(\"{ref}\")", "```", ""]
    if kind == "encoder":
        gen = (generator or {}).get("registry_id") or (generator or {}).get("repo_id") or "GENERATOR"
        lines += ["```sh", f"dse invert --generator {gen} --encoder {ref} photos/ -o out/", "```", ""]
    return "\n".join(lines)


def _tuned_lines(source: Mapping[str, Any]) -> list[str]:
    """A tuned copy (``dse invert --refine generator``): what it was tuned on, how, and from which generator; the
    base's own training stays in config.json under ``tuned_from``, as it is not this copy's."""
    tuning, base = source["tuning"], source.get("tuned_from") or {}
    lines = [f"A per-image tuned copy of the generator below, made by `dse invert --refine generator` "
             f"with {tuning.get('method', 'PTI')}, tuned on `{source.get('tuned_on', 'unrecorded images')}`: it "
             "decodes that inversion's latents (its pivots); for other images use the base generator.", "",
             "| base generator | |", "|---|---|"]
    lines += [f"| {key} | `{base[key]}` |" for key in ("generator", "family", "fingerprint") if base.get(key)]
    settings = {k: tuning[k] for k in ("steps", "lr", "optimizer", "loss", "lpips", "locality_weight",
                                       "locality_alpha", "seed", "scope") if tuning.get(k) is not None}
    return lines + ["", "Tuning: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + ".", ""]


def _loss_line(source: Mapping[str, Any]) -> str:
    """The loss weights that are not zero, and whether LPIPS ran on a trained backbone."""
    loss = source["loss"]
    image = ", ".join(f"{k} {v:g}" for k, v in (loss.get("image") or {}).items() if v)
    latent = ", ".join(f"{k} {v:g}" for k, v in (loss.get("latent") or {}).items() if v)
    line = f"Loss: image ({image or 'none'}) on {loss.get('attention', 'centre')} areas"
    if latent and loss.get("latent_weight"):
        line += f", latent {loss['latent_weight']:g} x ({latent})"
    if (loss.get("image") or {}).get("lpips"):
        line += "; LPIPS on a trained VGG16" if source.get("lpips_trained") else "; LPIPS on an UNTRAINED VGG16"
    return line + "."


def _generator_license_lines(source: Mapping[str, Any]) -> list[str]:
    generator = source.get("generator") or {}
    if not generator.get("license"):
        return []
    name = generator.get("registry_id") or generator.get("id")
    return [f"The generator's weights ({name}) are under {generator['license']}"
            + (f" ({generator['license_url']})" if generator.get("license_url") else "") + ".", ""]


def _metrics_lines(directory: Path) -> list[str]:
    path = directory / METRICS_FILE
    if not path.is_file():
        return []
    try:
        metrics = json.loads(path.read_text())
    except ValueError:
        return []
    lines = []
    summary = metrics.get("summary") if isinstance(metrics, dict) else None
    if isinstance(summary, dict) and summary:
        lines += ["## Metrics", "", "| metric | mean | std | n |", "|---|---|---|---|"]
        for name, s in summary.items():
            lines.append(f"| {name} | {s.get('mean', float('nan')):.4f} | {s.get('std', float('nan')):.4f} | {s.get('n', '')} |")
        lines.append("")
    loss = metrics.get("training_loss") if isinstance(metrics, dict) else None
    if isinstance(loss, dict) and loss:
        lines += ["## Final training loss", "", "| term | value |", "|---|---|"]
        lines += [f"| {k} | {float(v):.4f} |" for k, v in loss.items() if isinstance(v, (int, float))]
        lines.append("")
    return lines
