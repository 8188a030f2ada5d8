"""The DSE loss (Eq. 1-8 of the paper), its image areas (centre crops or Grad-CAM), offline VGG16 weights."""

from .areas import CentreCrops, crop_box, pool_to, resize_to
from .config import ImageWeights, LatentWeights, LossConfig
from .dse_loss import DSELoss
from .gradcam import (
    ClassifierSpec, GradCam, GradCamAttention, UntrainedGradCamWarning, load_classifier_gradcam, load_gradcam,
)
from .perceptual import FrozenLPIPS, UntrainedLPIPSWarning, load_lpips
from .vgg_weights import torchvision_cache_file
from .terms import KL, MSE, SSIM, BatchCosine, Cosine, PaddedSSIM

__all__ = [
    "KL", "MSE", "SSIM", "BatchCosine", "CentreCrops", "ClassifierSpec", "Cosine", "DSELoss", "FrozenLPIPS",
    "GradCam", "GradCamAttention", "ImageWeights", "LatentWeights", "LossConfig", "PaddedSSIM", "UntrainedGradCamWarning",
    "UntrainedLPIPSWarning", "crop_box", "load_classifier_gradcam", "load_gradcam", "load_lpips", "pool_to", "resize_to",
    "torchvision_cache_file",
]
