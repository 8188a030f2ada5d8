"""The demo models' data: scikit-learn's digits (UCI optdigits) as 32 px RGB images in [-1, 1].

``sklearn.datasets.load_digits`` ships with scikit-learn (no download): 1797 greyscale
8x8 digits, ink 16 on background 0. The demo GAN and encoder train on the first 1500;
the last 297 (indices ``HELDOUT``) are held out to measure them on real digits they
never saw. Images are upscaled bicubically to 32x32, mapped to [-1, 1] (background
-1, ink +1) and replicated to 3 channels so RGB photos go through the same models.

``misalign`` draws each digit at a random scale and offset inside the frame: the data of
the misaligned-images experiment (``misaligned_experiment.py``, paper Sec. III-B).

Shared by ``train_demo_gan.py``, ``check_demo_samples.py`` and the misaligned-images tools.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

RESOLUTION = 32
MAX_VALUE = 16.0  # digits pixels are integers 0..16
HELDOUT = (1500, 1796)  # first and last index (inclusive) of the held-out split: the last 297 digits
MISALIGN_SCALE = (0.5, 1.0)  # range of a misaligned digit's size, as a fraction of the frame


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, heldout_x, heldout_y): x as (N, 8, 8) float32 in 0..16, y as int labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.images.astype(np.float32), digits.target.astype(np.int64)
    first, last = HELDOUT
    if last != len(x) - 1:
        raise RuntimeError(f"expected {last + 1} digits from scikit-learn, found {len(x)}")
    return x[:first], y[:first], x[first : last + 1], y[first : last + 1]


def heldout_indices() -> list[int]:
    return list(range(HELDOUT[0], HELDOUT[1] + 1))


def to_images(x8: np.ndarray) -> torch.Tensor:
    """(N, 8, 8) digits in 0..16 -> (N, 3, 32, 32) float32 in [-1, 1]."""
    x = torch.as_tensor(x8, dtype=torch.float32).unsqueeze(1)
    x = F.interpolate(x, size=(RESOLUTION, RESOLUTION), mode="bicubic", align_corners=False)
    x = x.clamp(0, MAX_VALUE) * (2 / MAX_VALUE) - 1
    return x.expand(-1, 3, -1, -1).contiguous()


def to_digits(images: torch.Tensor) -> np.ndarray:
    """(N, C, 32, 32) images in [-1, 1] -> (N, 64) greyscale 8x8 features in 0..16 (area downsampling)."""
    if images.ndim != 4 or images.shape[-2:] != (RESOLUTION, RESOLUTION):
        raise ValueError(f"images must be (N, C, {RESOLUTION}, {RESOLUTION}), got {tuple(images.shape)}")
    grey = images.detach().float().cpu().clamp(-1, 1).mean(dim=1, keepdim=True)
    x = F.avg_pool2d((grey + 1) * (MAX_VALUE / 2), RESOLUTION // 8)
    return x.reshape(len(x), 64).numpy()


def misalign(images: torch.Tensor, generator: torch.Generator,
             scale: tuple[float, float] = MISALIGN_SCALE) -> torch.Tensor:
    """Each (N, C, H, W) image in [-1, 1] shrunk by a random factor in ``scale`` and moved to a random place
    where it still fits inside the frame (bilinear; the uncovered border is background, -1)."""
    n = len(images)
    s = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=generator)
    shift = (torch.rand(2, n, generator=generator) * 2 - 1) * (1 - s)  # centre offset in [-1, 1] units
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / s  # output -> input coordinates: the inverse of scale-then-shift
    theta[:, 0, 2], theta[:, 1, 2] = -shift[0] / s, -shift[1] / s
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    ink = F.grid_sample((images + 1) / 2, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return ink * 2 - 1  # zeros padding is background after the shift to ink in [0, 1]
