"""Training a DSE encoder (Algorithm 1): config, the loop, resumable state, torchrun support."""

from .config import TrainConfig, config_for_preset, default_batch_size
from .trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "config_for_preset", "default_batch_size", "train"]
