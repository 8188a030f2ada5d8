"""Resumable training state without pickles: tensors in safetensors, the rest in JSON.

A checkpoint is a folder ``checkpoints/step-NNNNNNN/`` holding the encoder
(``save_pretrained``; with an EMA, the average too, as ``ema/``), ``optimizer.safetensors`` + ``optimizer.json`` and
``trainer.json`` (step, samples, RNG states). It is written under a temporary name
and renamed into place, and ``checkpoints/latest`` (one line, replaced atomically)
names the newest complete one, so a crash never leaves a half-written checkpoint
that ``--resume`` would pick up.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..config import read_json, write_bytes_atomic, write_json_atomic
from ..errors import DseError

LATEST = "latest"
KEEP = 2  # complete checkpoints kept on disk


def optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into named tensors and JSON-able metadata."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_files(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> dict[str, torch.Tensor]:
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            states[f"cuda{i}"] = s
    return states


def set_rng_state(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["cpu"])
    cuda = [states[k] for k in sorted(states) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(run_dir: Path, step: int, encoder, optimizer: torch.optim.Optimizer, trainer: dict,
                    source: dict | None = None, ema=None) -> Path:
    """``ema``: the encoder's weight average (:class:`~dse_core.train.ema.EncoderEMA`'s model), saved as ``ema/``."""
    root = run_dir / "checkpoints"
    final = root / f"step-{step:08d}"
    tmp = root / f".step-{step:08d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    encoder.save_pretrained(tmp / "encoder", source=source)
    if ema is not None:
        ema.save_pretrained(tmp / "ema", source=source)
    tensors, meta = optimizer_to_files(optimizer)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    write_json_atomic(tmp / "optimizer.json", meta)
    save_file(rng_state(), str(tmp / "rng.safetensors"))
    write_json_atomic(tmp / "trainer.json", {**trainer, "step": step})
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    write_bytes_atomic(root / LATEST, f"{final.name}\n".encode())
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    if not (path / "trainer.json").is_file():
        raise DseError(f"{pointer} names {path.name}, which is incomplete or missing",
                       hint="delete the pointer to resume from an older checkpoint, or start a new run")
    return path


def load_checkpoint(path: Path) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(trainer.json, optimizer state dict, RNG states) of a checkpoint folder."""
    optimizer = optimizer_from_files(load_file(str(path / "optimizer.safetensors")), read_json(path / "optimizer.json"))
    return read_json(path / "trainer.json"), optimizer, load_file(str(path / "rng.safetensors"))

