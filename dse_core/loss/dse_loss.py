"""The DSE loss (Eq. 1-8): diverse similarity of three image areas plus every predicted latent.

::

    L_IMG(a, a')  = kl + 5 mse + 3 cos + 2 lpips + 1 ssim        (Eq. 7, per area)
    L_image       = mu0 L_IMG(x, x') + mu1 L_IMG(AT1) + mu2 L_IMG(AT2)   (Eq. 6)
    L_LV(v, v')   = kl + 5 mse + 3 cos                           (Eq. 5, for each latent v: ws, z, ...)
    L_latent      = sum over the predicted latents of lambda_v L_LV(v, v')
    L_DSE         = L_image + 0.01 L_latent                      (Eq. 8)

The paper's latent is ws for StyleGAN and z for PGGAN and BigGAN: whatever the family's encoder
predicts, by name, with a weight lambda per name (``LossConfig.latent_weights``, 1 by default).
A predicted class ``c`` (class probabilities against the sampled one-hot class) is scored by
cross-entropy instead of Eq. 5's terms.

Every value is computed per sample and averaged over the batch at the very end,
so two processes holding half a batch each see the same loss as one process.
"""

from __future__ import annotations

from typing import Mapping

import attrs
import torch
from torch import nn

from ..config import to_dict
from ..errors import DseError
from ..interfaces import Attention, LossTerm
from .areas import CentreCrops, pool_to, resize_to
from .config import LossConfig
from .gradcam import GradCam, GradCamAttention, load_gradcam
from .perceptual import load_lpips
from .terms import KL, MSE, SSIM, BatchCosine, Cosine, PaddedSSIM

_POOLED = ("lpips", "ssim")  # the terms the code scores on images pooled to metric_max_size


class DSELoss(nn.Module):
    """``loss(x, x_rec, latents, latents_rec) -> (total, terms)``; images NCHW in [-1, 1], latents by name.

    ``total`` is the batch mean of the per-sample L_DSE. ``terms`` holds detached
    batch means for logging, all losses (0 = identical):

    - ``img{k}/{term}``: term (``kl``, ``mse``, ``cos``, ``lpips``, ``ssim`` = 1 - SSIM)
      on area k (0 = whole image, 1 = AT1, 2 = AT2), unweighted;
    - ``img{k}``: that area's Eq. 7 sum; ``image``: the mu-weighted sum (Eq. 6);
    - ``latent/{name}/{kl,mse,cos}`` and ``latent/{name}`` (Eq. 5) for each latent compared
      (``latent/c/ce`` for a class), and ``latent``, their lambda-weighted sum, when latents are given;
    - ``total`` (Eq. 8).

    Terms and areas whose weight is 0 are neither computed nor logged.
    ``lpips``: a loss term such as :func:`load_lpips`'s module (default: built by
    ``load_lpips()``, which fails without local weights). ``attention``: picks AT1
    and AT2 (default: the config's ``attention``: its centre crops, or Grad-CAM areas
    on ``gradcam``, a :class:`GradCam` built by ``load_gradcam()`` when not given,
    which also fails without local weights).
    """

    def __init__(self, config: LossConfig = LossConfig(), lpips: LossTerm | None = None,
                 attention: Attention | None = None, gradcam: GradCam | None = None):
        super().__init__()
        self.config = config
        if lpips is None and config.image.lpips:
            lpips = load_lpips()
        self.lpips = lpips  # registered as a sub-module when it is one, so .to(device) moves it
        if attention is None and config.attention == "gradcam":
            attention = GradCamAttention(gradcam if gradcam is not None else load_gradcam(), config.gradcam_variant)
        self.attention = attention if attention is not None else CentreCrops([config.at1_crop, config.at2_crop])
        cosine = BatchCosine() if config.cosine == "batch" else Cosine()
        ssim = PaddedSSIM() if config.ssim == "code" else SSIM()
        self._terms: dict[str, LossTerm] = {"kl": KL(), "mse": MSE(), "cos": cosine, "ssim": ssim}

    def forward(self, x: torch.Tensor, x_rec: torch.Tensor, latents: Mapping[str, torch.Tensor] | None = None,
                latents_rec: Mapping[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        values = self.per_sample(x, x_rec, latents, latents_rec)
        return values["total"].mean(), {name: v.detach().mean() for name, v in values.items()}

    def per_sample(self, x: torch.Tensor, x_rec: torch.Tensor, latents: Mapping[str, torch.Tensor] | None = None,
                   latents_rec: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Every logged value as an (N,) tensor, ``total`` included (with its graph).

        ``latents`` are the targets (``G.sample_latents``), ``latents_rec`` what the encoder predicted;
        every predicted latent is compared, each weighted as :meth:`LossConfig.weights_of` says.
        """
        pairs = self._latent_pairs(x, x_rec, latents or {}, latents_rec or {})
        cfg = self.config
        if cfg.detach_images:
            x, x_rec = x.detach(), x_rec.detach()
        out: dict[str, torch.Tensor] = {}
        areas = [(x, x_rec), *self.attention.areas(x, x_rec)]
        if len(areas) != len(cfg.area_weights):
            raise ValueError(f"the attention gave {len(areas) - 1} areas; area_weights expects {len(cfg.area_weights) - 1}")
        total = x.new_zeros(x.shape[0], dtype=torch.float32)
        for k, ((a, a_rec), mu) in enumerate(zip(areas, cfg.area_weights)):
            if not mu:
                continue
            if cfg.resize_areas:
                a, a_rec = resize_to(a, x.shape[-2:]), resize_to(a_rec, x.shape[-2:])
            out[f"img{k}"] = self._weighted(f"img{k}", a, a_rec, attrs.asdict(cfg.image), out)
            total = total + mu * out[f"img{k}"]
        out["image"] = total
        if pairs:
            latent = total.new_zeros(total.shape)
            for name, (v, v_rec) in pairs.items():
                if name == "c":
                    out["latent/c/ce"] = out["latent/c"] = _cross_entropy(v, v_rec)
                else:
                    out[f"latent/{name}"] = self._weighted(f"latent/{name}", v, v_rec, attrs.asdict(cfg.latent), out)
                latent = latent + cfg.latent_weights.get(name, 1.0) * out[f"latent/{name}"]
            out["latent"] = latent
            total = total + cfg.latent_weight * latent
        out["total"] = total
        return out

    def _latent_pairs(self, x, x_rec, latents, latents_rec) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """(target, prediction) of each latent the loss compares, in the prediction's order; shapes checked."""
        if x.ndim != 4 or x.shape != x_rec.shape:
            raise ValueError(f"DSELoss: images must be two NCHW tensors of one shape, got {tuple(x.shape)} and {tuple(x_rec.shape)}")
        if bool(latents) != bool(latents_rec):
            raise ValueError("DSELoss: give the target latents and the predicted ones, or neither")
        if unknown := [n for n in latents_rec if n not in latents]:
            raise ValueError(f"DSELoss: predicted latents {unknown} have no target (targets: {sorted(latents)})")
        pairs = {}
        for name in self.config.weights_of(latents_rec):
            v, v_rec = latents[name], latents_rec[name]
            if v.shape != v_rec.shape or v.ndim < 2 or v.shape[0] != x.shape[0]:
                raise ValueError(f"DSELoss: latent {name!r} and its prediction must be (N, ...) of one shape with "
                                 f"N = {x.shape[0]}, got {tuple(v.shape)} and {tuple(v_rec.shape)}")
            pairs[name] = (v.float(), v_rec.float())
        return pairs

    def metadata(self) -> dict:
        """What a run should record about this loss besides its config."""
        meta = {"lpips_trained": getattr(self.lpips, "trained", None), "lpips_source": getattr(self.lpips, "source", None)}
        if not isinstance(self.attention, CentreCrops):  # centre crops: the config says it all
            meta["attention"] = getattr(self.attention, "name", type(self.attention).__name__)
        if isinstance(self.attention, GradCamAttention):
            meta.update(gradcam_trained=self.attention.cam.trained, gradcam_source=self.attention.cam.source,
                        gradcam_variant=self.attention.variant)
            if self.attention.cam.spec is not None:  # a classifier of the user's: how to rebuild it on --resume
                meta["gradcam_classifier"] = to_dict(self.attention.cam.spec)
        return meta

    def _weighted(self, prefix: str, v: torch.Tensor, v_rec: torch.Tensor, weights: Mapping[str, float],
                  out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum of weight x term over the non-zero weights, logging each term under ``prefix/name``."""
        pooled = None
        total = v.new_zeros(v.shape[0], dtype=torch.float32)
        for name, weight in weights.items():
            if not weight:
                continue
            a, b = v, v_rec
            if name in _POOLED:
                if pooled is None:
                    pooled = pool_to(v, self.config.metric_max_size), pool_to(v_rec, self.config.metric_max_size)
                a, b = pooled
            value = self._term(name)(a, b).float()
            out[f"{prefix}/{name}"] = value
            total = total + weight * value
        return total

    def _term(self, name: str) -> LossTerm:
        if name == "lpips":
            if self.lpips is None:
                raise DseError("this loss has no LPIPS module but its config weights LPIPS")
            return self.lpips
        return self._terms[name]

    def extra_repr(self) -> str:
        return "" if isinstance(self.attention, nn.Module) else f"attention={self.attention!r}"


def _cross_entropy(c: torch.Tensor, c_rec: torch.Tensor) -> torch.Tensor:
    """-sum c log c_rec per sample: the sampled class (one-hot) against predicted class probabilities."""
    # the floor is the smallest normal float: a head that is confidently wrong (softmax far below 1e-12) still learns
    return -(c * c_rec.clamp_min(torch.finfo(c_rec.dtype).tiny).log()).sum(dim=1)
