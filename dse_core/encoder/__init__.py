"""The Diverse Similarity Encoder: the generic block, the encoder built from an ``EncoderConfig``."""

from .block import DSEBlock, SumBlock
from .config import EncoderConfig
from .model import Encoder
from .norm import ConditionalBatchNorm, EncoderNorm, InstanceNorm, make_norm

__all__ = ["ConditionalBatchNorm", "DSEBlock", "SumBlock", "Encoder", "EncoderConfig", "EncoderNorm", "InstanceNorm", "make_norm"]
