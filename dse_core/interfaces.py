"""The small contracts that plugins implement and the core relies on.

Dimension names are the same everywhere: ``z_dim`` (input latent), ``c_dim``
(class/condition vector, 0 = unconditional), ``w_dim`` (intermediate latent),
``num_ws`` (how many w vectors the synthesis network consumes), ``resolution`` and
``img_channels`` of the output image.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal, Sequence

import torch
from torch import nn

NoiseMode = Literal["const", "random", "none"]
NOISE_MODES: tuple[str, ...] = ("const", "random", "none")


class Generator(nn.Module, ABC):
    """Every family's generator: ``G(z, c) -> NCHW`` images nominally in [-1, 1].

    Images are never clamped here: callers clamp when they write pixels.
    ``noise_mode``: ``const`` uses the stored per-layer noise buffers (deterministic),
    ``random`` draws fresh noise, ``none`` switches noise off. Families without
    noise accept and ignore it; families without truncation accept only psi=1 and
    raise ValueError for any other ``truncation_psi``.

    A generator is built from one config: ``__init__(self, config)`` stores it as
    ``self.config`` (what ``save_pretrained`` writes) and sets ``resolution``,
    ``z_dim``, ``c_dim`` and ``img_channels``. A wrongly shaped z or c raises
    ValueError (:func:`check_latents`). ``decode(sample_latents(z, c))`` gives the
    images ``forward(z, c)`` gives. :func:`dse_core.testing.check_generator_contract`
    checks all of this.
    """

    family: ClassVar[str]  # GAN family name, e.g. "stylegan2"
    latent_names: ClassVar[tuple[str, ...]]  # what an encoder must predict for decode(): ("w",), ("z",), ("z", "c")
    resolution: int
    z_dim: int
    c_dim: int
    img_channels: int

    @abstractmethod
    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: NoiseMode = "const",
    ) -> torch.Tensor: ...

    @abstractmethod
    def sample_latents(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                       truncation_cutoff: int | None = None) -> dict[str, torch.Tensor]:
        """The latents ``decode`` takes, for given z (and c): the targets of the encoder's latent loss."""

    @abstractmethod
    def decode(self, latents: dict[str, torch.Tensor], noise_mode: NoiseMode = "const") -> torch.Tensor:
        """Images from latents named as in ``latent_names`` (an encoder's output, or ``sample_latents``)."""


class StyleGenerator(Generator):
    """Style-based generators (StyleGAN, StyleGAN2): z -> mapping -> ws -> synthesis.

    ``mapping`` and ``synthesis`` are sub-modules (so state-dict keys read
    ``mapping.fc0.weight``, ``synthesis.b4.const``) callable as::

        G.mapping(z, c=None, truncation_psi=1.0, truncation_cutoff=None) -> ws (N, num_ws, w_dim)
        G.synthesis(ws, noise_mode="const") -> images (N, img_channels, resolution, resolution)

    ``truncation_cutoff=k`` truncates ws[:, :k] only (None: all of them).
    """

    latent_names: ClassVar[tuple[str, ...]] = ("w",)
    w_dim: int
    num_ws: int
    mapping: nn.Module
    synthesis: nn.Module

    def sample_latents(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        return {"w": self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)}

    def decode(self, latents, noise_mode="const"):
        return self.synthesis(latents["w"], noise_mode=noise_mode)

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


def check_latents(owner: str, z: torch.Tensor, z_dim: int, c: torch.Tensor | None, c_dim: int) -> None:
    """Check z (N, z_dim) and, for a conditional model (``c_dim > 0``), c (N, c_dim); raise ValueError otherwise.

    Call it first thing in ``forward`` / ``sample_latents`` (``owner`` names the model in the
    message): the contract test feeds wrongly shaped z and requires a ValueError, not whatever
    error a matmul further in happens to raise.
    """
    if z.ndim != 2 or z.shape[1] != z_dim:
        raise ValueError(f"{owner}: z must be (N, {z_dim}), got {tuple(z.shape)}")
    if c_dim and (c is None or tuple(c.shape) != (z.shape[0], c_dim)):
        got = None if c is None else tuple(c.shape)
        raise ValueError(f"{owner}: c must be (N, {c_dim}) for this conditional model, got {got}")


def check_ws(owner: str, ws: torch.Tensor, num_ws: int, w_dim: int) -> None:
    """Check ws (N, num_ws, w_dim) at a synthesis entry point; raise ValueError otherwise."""
    if ws.ndim != 3 or tuple(ws.shape[1:]) != (num_ws, w_dim):
        raise ValueError(f"{owner}: ws must be (N, {num_ws}, {w_dim}), got {tuple(ws.shape)}")


def check_noise_mode(noise_mode: str) -> None:
    """Raise ValueError unless ``noise_mode`` is one of :data:`NOISE_MODES`."""
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None) -> torch.Tensor:
    """Move ws towards ``w_avg`` by ``psi`` on the first ``cutoff`` layers (all when None)."""
    if psi == 1:
        return ws
    if cutoff is None:
        return w_avg.lerp(ws, psi)
    head = w_avg.lerp(ws[:, :cutoff], psi)
    return torch.cat([head, ws[:, cutoff:]], dim=1)


class EncoderBlock(nn.Module, ABC):
    """One resolution step of an encoder: halves the spatial size (all but the last, 4x4 block) and may emit style vectors.

    ``forward(x, cond)`` returns the output features and the list of vectors the
    block predicts, in forward order (one per conv for style-based generators, none
    otherwise; ``num_styles`` says how many); ``cond`` is the condition vector for
    conditional norms and ``None`` otherwise.
    """

    in_channels: int
    out_channels: int
    num_styles: int

    @abstractmethod
    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]: ...


class LossTerm(ABC):
    """A similarity term between a target and its reconstruction, one value per sample.

    Returning (N,) rather than a scalar keeps the loss identical however a batch is
    split across processes.
    """

    name: ClassVar[str]

    @abstractmethod
    def __call__(self, target: torch.Tensor, recon: torch.Tensor) -> torch.Tensor: ...


class Attention(ABC):
    """Picks the extra image areas (AT1, AT2) compared besides the whole image."""

    @abstractmethod
    def areas(
        self, target: torch.Tensor, recon: torch.Tensor
    ) -> Sequence[tuple[torch.Tensor, torch.Tensor]]: ...
