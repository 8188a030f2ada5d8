"""Training a DSE encoder (Algorithm 1): recipes (presets), run setup, the loop, resumable state.

``config`` (TrainConfig), ``presets`` (the paper's and the public code's recipes), ``setup`` (a run's
options from a preset, a resumed run and the family's capabilities: what ``dse train`` runs),
``samples`` (training pairs), ``trainer`` (the loop), ``outputs`` (run files), ``state`` (checkpoints).
Names are imported on first use, so reading a preset does not load the trainer.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "config", "default_batch_size": "config", "config_for_preset": "config",
    "Preset": "presets", "PRESETS": "presets", "DEFAULT_PRESET": "presets", "get_preset": "presets",
    "TrainResult": "trainer", "train": "trainer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dse_core.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
