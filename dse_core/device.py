"""Which torch device a command runs on: ``--device auto`` picks cuda, then mps, then cpu."""

from __future__ import annotations

import torch

from .errors import DseError

DEVICES = "auto, cpu, cuda, cuda:N, mps"  # what resolve_device takes


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; else one of :data:`DEVICES`, checked to be available here."""
    if str(device) != "auto":
        try:
            device = torch.device(device)
        except (RuntimeError, ValueError):
            raise DseError(f"unknown device {str(device)!r}", hint=f"use one of: {DEVICES}") from None
        if device.type not in ("cpu", "cuda", "mps"):
            raise DseError(f"device {str(device)!r} is not supported", hint=f"use one of: {DEVICES}")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DseError(f"--device {device} asked for, but CUDA is not available here", hint="use --device cpu or auto")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise DseError(f"--device {device} asked for, but this machine has {torch.cuda.device_count()} CUDA "
                           f"device(s)", hint=f"use cuda:0 ... cuda:{torch.cuda.device_count() - 1}, or auto")
        mps = getattr(torch.backends, "mps", None)
        if device.type == "mps" and (mps is None or not mps.is_available()):
            raise DseError("--device mps asked for, but MPS is not available here", hint="use --device cpu or auto")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
