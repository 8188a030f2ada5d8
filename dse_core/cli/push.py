"""``dse push``: upload an encoder (a run, or its encoder/) or a converted model to the Hugging Face Hub."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import warnings
from pathlib import Path

from ..errors import DseError


def add_parser(sub) -> None:
    p = sub.add_parser("push", help="upload an encoder (a run, or its encoder/) or a converted model to the Hub")
    p.add_argument("path", metavar="RUN_OR_MODEL_DIR", help="a `dse train` run folder, its encoder/, or a saved model folder")
    p.add_argument("--repo-id", required=True, help="owner/name on the Hub (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", help="branch to push to (created from main if missing; default main)")
    p.add_argument("--metrics", help="a metrics.json written by `dse invert`, shown in the model card")
    p.add_argument("--license", help="license id for the card (default: the one recorded at conversion, else unknown)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models import hub
    from ..models.format import CARD_FILE, REPO_FILES, is_pretrained_dir, read_header

    src = Path(args.path)
    if is_pretrained_dir(src):
        folder, run_dir = src, None
    elif is_pretrained_dir(src / "encoder"):
        folder, run_dir = src / "encoder", src
    else:
        raise DseError(f"{src}: neither a saved model (config.json + model.safetensors) nor a training run (encoder/)",
                       hint="push a run folder of `dse train`, its encoder/, or a folder written by `dse convert`")
    header = read_header(folder)
    with tempfile.TemporaryDirectory(prefix="dse-push-") as tmp:
        stage = Path(tmp)
        for name in REPO_FILES:
            if (folder / name).is_file() and name != CARD_FILE:
                shutil.copy2(folder / name, stage / name)
        _stage_run_extras(stage, run_dir, Path(args.metrics) if args.metrics else None)
        _warn_redistribution(header)
        info = hub.push_folder(stage, args.repo_id, private=args.private, revision=args.revision, license=args.license)
    print(f"pushed {header.get('family')} {header.get('kind')} -> {args.repo_id}@{args.revision or 'main'} "
          f"(commit {info.oid[:12]}){' [private]' if args.private else ''}")
    return 0


def _stage_run_extras(stage: Path, run_dir: Path | None, metrics: Path | None) -> None:
    """A run's last reconstruction grid and final loss, and an invert run's metrics summary, for the card."""
    from ..config import read_json, write_json_atomic
    from ..models.format import GRID_FILE, METRICS_FILE

    extra = read_json(stage / METRICS_FILE) if (stage / METRICS_FILE).is_file() else {}
    if run_dir is not None:
        grids = sorted((run_dir / "grids").glob("*.png"))
        if grids and not (stage / GRID_FILE).exists():
            shutil.copy2(grids[-1], stage / GRID_FILE)
        log = run_dir / "log.jsonl"
        if log.is_file():
            lines = [line for line in log.read_text().splitlines() if line.strip()]
            if lines:
                last = json.loads(lines[-1])
                extra["training_loss"] = {k: v for k, v in last.items()
                                          if k not in ("step", "samples", "samples_per_s") and isinstance(v, (int, float))}
    if metrics is not None:
        data = read_json(metrics)
        if not isinstance(data, dict) or not isinstance(data.get("summary"), dict):
            raise DseError(f"{metrics}: no metrics summary", hint="pass the metrics.json written by `dse invert`")
        extra["summary"] = data["summary"]
    if extra:
        write_json_atomic(stage / METRICS_FILE, extra)


def _warn_redistribution(header: dict) -> None:
    from ..errors import DseWarning
    from ..models import registry
    from ..plugins import get_host

    source = header.get("source") or {}
    if header.get("kind") != "generator" or source.get("format") in (None, "dse-trained"):
        return
    entry = registry.entry_for_source(get_host().checkpoints, source, "generator")
    note = registry.redistribution_note(entry) if entry is not None else (
        f"these weights were converted from a third-party checkpoint ({source.get('format')}) that is not in the "
        "registry: check its license allows redistribution before publishing them")
    if note:
        warnings.warn(note, DseWarning, stacklevel=2)
