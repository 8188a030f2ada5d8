"""The similarity terms of Eq. 3, 4 and 7, each one value per sample.

Per-sample values make the loss independent of how a batch is split across
processes; the one exception, :class:`BatchCosine`, reproduces the public code.
Images are NCHW in [-1, 1]; latents any (N, ...) shape. Every value is a loss:
0 for identical inputs, larger when they differ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim

from ..interfaces import LossTerm


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


class MSE(LossTerm):
    """Mean squared error over each sample's elements (the batch mean equals ``nn.MSELoss``)."""

    name = "mse"

    def __call__(self, x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
        return (_flat(x_rec) - _flat(x)).square().mean(dim=1)


class Cosine(LossTerm):
    """1 - cosine similarity of each sample's flattened vector (Eq. 3)."""

    name = "cos"

    def __call__(self, x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
        return 1 - F.cosine_similarity(_flat(x_rec), _flat(x), dim=1, eps=1e-8)


class BatchCosine(LossTerm):
    """1 - cosine similarity of the whole flattened batch, as the public code computes it.

    Returned once per sample (the same value N times) so it combines like the
    other terms; unlike them it changes when the batch is split.
    """

    name = "cos"

    def __call__(self, x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
        value = 1 - F.cosine_similarity(x_rec.reshape(-1), x.reshape(-1), dim=0, eps=1e-8)
        return value.expand(x.shape[0])


class KL(LossTerm):
    """Eq. 4: KL(S(v') || S(v)) with S the softmax over each sample's flattened vector.

    v is the target and v' its reconstruction; summed over elements, computed in
    float32 from log-softmax so tiny probabilities do not underflow.
    """

    name = "kl"

    def __call__(self, x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(_flat(x_rec).float(), dim=1)
        log_q = F.log_softmax(_flat(x).float(), dim=1)
        return (log_p.exp() * (log_p - log_q)).sum(dim=1)


class SSIM(LossTerm):
    """1 - SSIM (pytorch-msssim: 11 px Gaussian window, sigma 1.5) on images mapped to [0, 1], data range 1."""

    name = "ssim"

    def __call__(self, x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
        return 1 - ssim(_to_unit(x), _to_unit(x_rec), data_range=1.0, size_average=False)


class PaddedSSIM(LossTerm):
    """1 - SSIM as the public code computes it (pytorch_ssim): raw [-1, 1] images, 11 px Gaussian window
    (sigma 1.5) with zero padding, so borders count; constants for data range 1."""

    name = "ssim"

    def __init__(self, window: int = 11, sigma: float = 1.5):
        offsets = torch.arange(window, dtype=torch.float64) - window // 2
        gauss = torch.exp(-(offsets**2) / (2 * sigma**2))
        self.kernel = (gauss / gauss.sum()).float()

    def __call__(self, x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
        x, y = x.float(), x_rec.float()
        channels, pad = x.shape[1], len(self.kernel) // 2
        k1 = self.kernel.to(x.device)
        window = (k1[:, None] * k1[None, :]).expand(channels, 1, -1, -1)

        def blur(t: torch.Tensor) -> torch.Tensor:
            return F.conv2d(t, window, padding=pad, groups=channels)

        mu_x, mu_y = blur(x), blur(y)
        var_x, var_y, cov = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
        c1, c2 = 0.01**2, 0.03**2
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        return 1 - ssim_map.mean(dim=(1, 2, 3))


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return (x.float() + 1) / 2
