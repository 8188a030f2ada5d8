"""The DSE loss (Eq. 1-8 of the paper), its image areas (centre crops or Grad-CAM), presets and offline VGG16 weights."""

from .areas import CentreCrops, crop_box, pool_to, resize_to
from .config import ImageWeights, LatentWeights, LossConfig
from .dse_loss import DSELoss
from .gradcam import GradCam, GradCamAttention, UntrainedGradCamWarning, load_gradcam
from .perceptual import FrozenLPIPS, UntrainedLPIPSWarning, load_lpips
from .vgg_weights import torchvision_cache_file
from .presets import DEFAULT_PRESET, PRESETS, Preset, get_preset
from .terms import KL, MSE, SSIM, BatchCosine, Cosine, PaddedSSIM

__all__ = [
    "DEFAULT_PRESET", "KL", "MSE", "PRESETS", "SSIM", "BatchCosine", "CentreCrops", "Cosine", "DSELoss", "FrozenLPIPS",
    "GradCam", "GradCamAttention", "ImageWeights", "LatentWeights", "LossConfig", "PaddedSSIM", "Preset", "UntrainedGradCamWarning",
    "UntrainedLPIPSWarning", "crop_box", "get_preset", "load_gradcam", "load_lpips", "pool_to", "resize_to",
    "torchvision_cache_file",
]
