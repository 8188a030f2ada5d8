"""The DSE loss (Eq. 1-8): diverse similarity of three image areas plus the latent w.

::

    L_IMG(a, a')  = kl + 5 mse + 3 cos + 2 lpips + 1 ssim        (Eq. 7, per area)
    L_image       = mu0 L_IMG(x, x') + mu1 L_IMG(AT1) + mu2 L_IMG(AT2)   (Eq. 6)
    L_LV(w, w')   = kl + 5 mse + 3 cos                           (Eq. 5)
    L_DSE         = L_image + 0.01 L_LV                          (Eq. 8)

Every value is computed per sample and averaged over the batch at the very end,
so two processes holding half a batch each see the same loss as one process.
"""

from __future__ import annotations

from typing import Mapping

import attrs
import torch
from torch import nn

from ..errors import DseError
from ..interfaces import Attention, LossTerm
from .areas import CentreCrops, pool_to, resize_to
from .config import LossConfig
from .gradcam import GradCam, GradCamAttention, load_gradcam
from .perceptual import load_lpips
from .terms import KL, MSE, SSIM, BatchCosine, Cosine, PaddedSSIM

_POOLED = ("lpips", "ssim")  # the terms the code scores on images pooled to metric_max_size


class DSELoss(nn.Module):
    """``loss(x, x_rec, w, w_rec) -> (total, terms)``; images NCHW in [-1, 1], w (N, num_ws, w_dim).

    ``total`` is the batch mean of the per-sample L_DSE. ``terms`` holds detached
    batch means for logging, all losses (0 = identical):

    - ``img{k}/{term}``: term (``kl``, ``mse``, ``cos``, ``lpips``, ``ssim`` = 1 - SSIM)
      on area k (0 = whole image, 1 = AT1, 2 = AT2), unweighted;
    - ``img{k}``: that area's Eq. 7 sum; ``image``: the mu-weighted sum (Eq. 6);
    - ``latent/{kl,mse,cos}``, ``latent`` (Eq. 5), when w is given;
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

    def forward(self, x: torch.Tensor, x_rec: torch.Tensor, w: torch.Tensor | None = None,
                w_rec: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        values = self.per_sample(x, x_rec, w, w_rec)
        return values["total"].mean(), {name: v.detach().mean() for name, v in values.items()}

    def per_sample(self, x: torch.Tensor, x_rec: torch.Tensor, w: torch.Tensor | None = None,
                   w_rec: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every logged value as an (N,) tensor, ``total`` included (with its graph)."""
        self._check(x, x_rec, w, w_rec)
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
        if w is not None:
            out["latent"] = self._weighted("latent", w, w_rec, attrs.asdict(cfg.latent), out)
            total = total + cfg.latent_weight * out["latent"]
        out["total"] = total
        return out

    def metadata(self) -> dict:
        """What a run should record about this loss besides its config."""
        meta = {"lpips_trained": getattr(self.lpips, "trained", None), "lpips_source": getattr(self.lpips, "source", None)}
        if not isinstance(self.attention, CentreCrops):  # centre crops: the config says it all
            meta["attention"] = getattr(self.attention, "name", type(self.attention).__name__)
        if isinstance(self.attention, GradCamAttention):
            meta.update(gradcam_trained=self.attention.cam.trained, gradcam_source=self.attention.cam.source,
                        gradcam_variant=self.attention.variant)
        return meta

    def _weighted(self, prefix: str, target: torch.Tensor, recon: torch.Tensor, weights: Mapping[str, float],
                  out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum of weight x term over the non-zero weights, logging each term under ``prefix/name``."""
        pooled = None
        total = target.new_zeros(target.shape[0], dtype=torch.float32)
        for name, weight in weights.items():
            if not weight:
                continue
            a, b = target, recon
            if name in _POOLED:
                if pooled is None:
                    pooled = pool_to(target, self.config.metric_max_size), pool_to(recon, self.config.metric_max_size)
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

    @staticmethod
    def _check(x, x_rec, w, w_rec) -> None:
        if x.ndim != 4 or x.shape != x_rec.shape:
            raise ValueError(f"DSELoss: images must be two NCHW tensors of one shape, got {tuple(x.shape)} and {tuple(x_rec.shape)}")
        if (w is None) != (w_rec is None):
            raise ValueError("DSELoss: give both w and w_rec, or neither")
        if w is not None and (w.shape != w_rec.shape or w.ndim < 2 or w.shape[0] != x.shape[0]):
            raise ValueError(f"DSELoss: w and w_rec must be (N, ...) of one shape with N = {x.shape[0]}, "
                             f"got {tuple(w.shape)} and {tuple(w_rec.shape)}")

    def extra_repr(self) -> str:
        return "" if isinstance(self.attention, nn.Module) else f"attention={self.attention!r}"
