"""Named training presets: the paper's two strategies and the public code's two scripts.

One place lists them (``PRESETS``) so the trainer and the CLI agree on names. Each
preset carries the loss plus the encoder/training choices that go with the
strategy; the trainer reads those fields into its own config.

=========  ============  ==========  =====  ======  ==========  ======  =====  ======  =====  ======
preset     area weights  image grad  KL     cosine  crops       pool    fused  mixing  EMA    lr
=========  ============  ==========  =====  ======  ==========  ======  =====  ======  =====  ======
paper-s2   1 / 5 / 9     yes         yes    sample  resized     no      yes    0       1000   0.003
paper-s1   1 / 1 / 1     detached    yes    sample  resized     no      no     0       0      0.0015
code-s2    1 / 5 / 9     yes         no     batch   crop size   256     no     0.9     0      0.0015
code-s1    1 / 1 / 1     detached    no     batch   crop size   256     no     0.9     0      0.0015
=========  ============  ==========  =====  ======  ==========  ======  =====  ======  =====  ======

EMA: the half-life in samples of the weight average a run saves (0: the last step's weights, as the
paper and the code save them). EMA and lr are not part of the loss: paper-s2's were chosen by measurement
on the demo, where together they add 0.9 to 1.5 dB PSNR to two-seed means (docs/preset-report); the
paper's own are ``--lr 0.0015 --ema-halflife 0``.

``paper-s1-misaligned`` and ``code-s1-misaligned`` are ``paper-s1`` and ``code-s1`` with
Grad-CAM areas (``E_mis_align_cropping_s1.py``: whole image, heat maps and tinted images
summed 1/1/1, all detached); the ``code`` one also uses the code's Grad-CAM variant.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import attrs

from ..errors import UnknownNameError
from ..loss.config import ImageWeights, LatentWeights, LossConfig

DEFAULT_PRESET = "paper-s2"


@attrs.frozen
class Preset:
    """A loss plus the encoder and sampling choices of one training strategy."""

    loss: LossConfig
    fused_downsample: bool  # encoder: strided "fused" conv instead of conv + 2x2 average pooling (paper's strategy 2)
    style_mixing_prob: float  # training: share of style-mixed w+ samples (0.9 = genforce's default the code left on)
    summary: str  # one line for `--help` and logs
    truncation_psi: float = 1.0  # training samples' truncation (the code: genforce's trunc_psi=0.7 ...)
    truncation_cutoff: int | None = None  # ... on the first trunc_layers=8 ws)
    latent_step: str = "joint"  # "separate": the code's second Adam step on 0.01 x the latent loss alone
    ema_halflife: int = 0  # samples; > 0: the encoder saved is an EMA of its weights (0: the last step's)
    lr: float = 0.0015  # Adam learning rate (the paper's and the code's 0.0015)


_CODE_LOSS = LossConfig(
    image=ImageWeights(kl=0.0),  # the code computes KL but never adds it
    latent=LatentWeights(kl=0.0),
    resize_areas=False,
    cosine="batch",
    ssim="code",
    metric_max_size=256,
)

# E_*.py sample x with genforce's truncation (psi 0.7 on 8 ws) and step Adam twice an iteration:
# on the image loss, then on 0.01 x the latent loss (Adam's normalisation all but undoes the 0.01)
_CODE_SAMPLING = dict(truncation_psi=0.7, truncation_cutoff=8, latent_step="separate")

PRESETS: Mapping[str, Preset] = MappingProxyType({
    "paper-s2": Preset(
        loss=LossConfig(),
        fused_downsample=True,
        style_mixing_prob=0.0,
        summary="paper strategy 2: Eq. 1-8, areas weighted 1/5/9, every term trains E; lr 0.003, saves an EMA of "
        "the weights",
        # not the loss; on the demo (docs/preset-report) the EMA adds 0.3-0.6 dB over the last weights at lr 0.003,
        # and lr 0.003 0.2-0.7 dB over the paper's 0.0015
        ema_halflife=1000,
        lr=0.003,
    ),
    "paper-s1": Preset(
        loss=LossConfig(area_weights=(1.0, 1.0, 1.0), detach_images=True),
        fused_downsample=False,
        style_mixing_prob=0.0,
        summary="paper strategy 1: areas weighted 1/1/1, image terms detached (only the latent loss trains E)",
    ),
    # E_align_s2.py builds the encoder of model/E/E.py, which never fuses (only E_Blur.py does)
    "code-s2": Preset(
        loss=_CODE_LOSS,
        fused_downsample=False,
        style_mixing_prob=0.9,
        **_CODE_SAMPLING,
        summary="public code E_align_s2.py: no KL, batch cosine, crops at crop size, pooled to 256 for SSIM/LPIPS",
    ),
    "code-s1": Preset(
        loss=attrs.evolve(_CODE_LOSS, area_weights=(1.0, 1.0, 1.0), detach_images=True),
        fused_downsample=False,
        style_mixing_prob=0.9,
        **_CODE_SAMPLING,
        summary="public code E_align_cropping_s1.py: as code-s2 with areas 1/1/1 and image terms detached",
    ),
    "paper-s1-misaligned": Preset(
        loss=LossConfig(area_weights=(1.0, 1.0, 1.0), detach_images=True, attention="gradcam"),
        fused_downsample=False,
        style_mixing_prob=0.0,
        summary="paper strategy 1 for misaligned images: AT1/AT2 from Grad-CAM++ on an ImageNet VGG16, areas 1/1/1, "
        "image terms detached",
    ),
    "code-s1-misaligned": Preset(
        loss=attrs.evolve(_CODE_LOSS, area_weights=(1.0, 1.0, 1.0), detach_images=True, attention="gradcam",
                          gradcam_variant="code"),
        fused_downsample=False,
        style_mixing_prob=0.9,
        **_CODE_SAMPLING,
        summary="public code E_mis_align_cropping_s1.py: as code-s1 with the code's Grad-CAM heat maps and tinted images",
    ),
})


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownNameError("loss preset", name, PRESETS) from None
