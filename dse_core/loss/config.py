"""The DSE loss configuration (Eq. 5-8): term weights, area weights and crops, code-compatibility switches.

Weights live here rather than in code so a run records exactly what it optimised.
Named training recipes (``paper-s2``, ``code-s1``, ...) are in :mod:`dse_core.train.presets`.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs


def _non_negative(_, attribute, value) -> None:
    values = value if isinstance(value, tuple) else (value,)
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"'{attribute.name}' must be a finite number >= 0, got {value}")


def _non_negative_values(_, attribute, value) -> None:
    if not all(math.isfinite(v) and v >= 0 for v in value.values()):
        raise ValueError(f"'{attribute.name}' must be finite numbers >= 0, got {value}")


def _crop(_, attribute, value) -> None:
    if len(value) != 2 or not all(0 <= v < 0.5 for v in value):
        raise ValueError(f"'{attribute.name}' must be (height, width) fractions in [0, 0.5), got {value}")


def _three(_, attribute, value) -> None:
    if len(value) != 3:
        raise ValueError(f"'{attribute.name}' must have 3 entries (whole image, AT1, AT2), got {value}")
    _non_negative(_, attribute, value)


@attrs.frozen
class ImageWeights:
    """Weights of Eq. 7 for one image area; a weight of 0 skips (and does not log) that term."""

    kl: float = attrs.field(default=1.0, validator=_non_negative)  # KL(S(x') || S(x)), Eq. 4
    mse: float = attrs.field(default=5.0, validator=_non_negative)  # alpha
    cos: float = attrs.field(default=3.0, validator=_non_negative)  # beta, on 1 - cosine similarity
    lpips: float = attrs.field(default=2.0, validator=_non_negative)  # gamma, LPIPS(VGG)
    ssim: float = attrs.field(default=1.0, validator=_non_negative)  # delta, on 1 - SSIM


@attrs.frozen
class LatentWeights:
    """Weights of Eq. 5 for a latent pair (v, v'): ws for a style-based family, z for PGGAN and BigGAN."""

    kl: float = attrs.field(default=1.0, validator=_non_negative)
    mse: float = attrs.field(default=5.0, validator=_non_negative)  # alpha
    cos: float = attrs.field(default=3.0, validator=_non_negative)  # beta


@attrs.frozen
class LossConfig:
    """Everything the DSE loss computes; the defaults are the paper's strategy 2 (preset ``paper-s2``)."""

    image: ImageWeights = ImageWeights()  # Eq. 7, the same for all three areas
    latent: LatentWeights = LatentWeights()  # Eq. 5, for each predicted latent
    latent_weight: float = attrs.field(default=0.01, validator=_non_negative)  # epsilon of Eq. 8
    # lambda of each predicted latent by name ({"z": 1, "c": 0.5}); a latent not listed weighs 1, 0 leaves it out
    latent_weights: dict[str, float] = attrs.field(factory=dict, validator=_non_negative_values)
    # mu of Eq. 6: weight of the whole image, AT1 and AT2 (strategy 1: 1/1/1, strategy 2: 1/5/9)
    area_weights: tuple[float, float, float] = attrs.field(default=(1.0, 5.0, 9.0), validator=_three)
    # fraction of (height, width) cut from each side for AT1 and AT2 (centre-aligned areas; the code's
    # crops: AT1 = W/8 off left and right, AT2 = 1/8 + 1/32 off every side)
    at1_crop: tuple[float, float] = attrs.field(default=(0.0, 0.125), validator=_crop)
    at2_crop: tuple[float, float] = attrs.field(default=(0.15625, 0.15625), validator=_crop)
    # how AT1 and AT2 are found: "centre" = the two crops above (centre-aligned images such as faces);
    # "gradcam" = Grad-CAM heat maps of an ImageNet VGG16 (AT1) and heat-map-tinted images (AT2) for
    # misaligned images (Fig. 3); the crops are then unused
    attention: Literal["centre", "gradcam"] = "centre"
    # "paper": Grad-CAM++ weights, each target's top class for it and its reconstruction, ImageNet-normalised
    # VGG input; "code": the public code's GradCamPlusPlus (see dse_core.loss.gradcam)
    gradcam_variant: Literal["paper", "code"] = "paper"
    resize_areas: bool = True  # resize AT1/AT2 back to the full image size (paper); False: score at crop size (code)
    detach_images: bool = False  # strategy 1: image terms are monitored only, the latent loss alone trains E
    # "sample": 1 - cosine per sample (split-invariant); "batch": over the whole flattened batch (the code)
    cosine: Literal["sample", "batch"] = "sample"
    # "unit": SSIM of images mapped to [0, 1] (pytorch-msssim, valid window); "code": pytorch_ssim as the code
    # calls it, on raw [-1, 1] images with a zero-padded window
    ssim: Literal["unit", "code"] = "unit"
    # average-pool by 2 while the height exceeds this before SSIM and LPIPS (the code: 256); None = never
    metric_max_size: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0)))

    def weights_of(self, names) -> dict[str, float]:
        """lambda of each of ``names`` (the latents an encoder predicts): ``latent_weights``', else 1; 0s left out.

        Empty when epsilon (``latent_weight``) is 0: then no latent is compared.
        """
        if not self.latent_weight:
            return {}
        weights = {name: self.latent_weights.get(name, 1.0) for name in names}
        return {name: w for name, w in weights.items() if w}
