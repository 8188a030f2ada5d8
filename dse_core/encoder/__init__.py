"""The Diverse Similarity Encoder: the generic block, the encoder built from an ``EncoderConfig``."""

from .block import DSEBlock
from .config import EncoderConfig, block_resolutions
from .model import Encoder, EncoderOutput
from .norm import ConditionalBatchNorm, EncoderNorm, InstanceNorm, make_norm

__all__ = [
    "ConditionalBatchNorm", "DSEBlock", "Encoder", "EncoderConfig", "EncoderNorm", "EncoderOutput", "InstanceNorm",
    "block_resolutions", "make_norm",
]
