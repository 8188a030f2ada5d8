"""The DSE loss (Eq. 1-8 of the paper), its image areas, presets and the offline LPIPS backbone."""

from .areas import CentreCrops, crop_box, pool_to, resize_to
from .config import ImageWeights, LatentWeights, LossConfig
from .dse_loss import DSELoss
from .perceptual import FrozenLPIPS, UntrainedLPIPSWarning, load_lpips, torchvision_cache_file
from .presets import DEFAULT_PRESET, PRESETS, Preset, get_preset
from .terms import KL, MSE, SSIM, BatchCosine, Cosine

__all__ = [
    "DEFAULT_PRESET", "KL", "MSE", "PRESETS", "SSIM", "BatchCosine", "CentreCrops", "Cosine", "DSELoss", "FrozenLPIPS",
    "ImageWeights", "LatentWeights", "LossConfig", "Preset", "UntrainedLPIPSWarning", "crop_box", "get_preset",
    "load_lpips", "pool_to", "resize_to",
]
