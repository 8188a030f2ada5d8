"""``EncoderConfig``: the one frozen config a DSE encoder is built from (paper Tables I and II)."""

from __future__ import annotations

import math
from typing import Literal

import attrs

NormKind = Literal["instance", "cbn"]
DownsampleMode = Literal["avgpool", "fused"]
WeightInit = Literal["xavier", "normal"]


def _power_of_two(_, attribute, value: int) -> None:
    if value < 4 or value & (value - 1):
        raise ValueError(f"{attribute.name} must be a power of two >= 4, got {value}")


def _channel_plan(instance: "EncoderConfig", attribute, value: dict[int, int]) -> None:
    wanted = block_resolutions(instance.resolution)
    if sorted(value, reverse=True) != wanted:
        raise ValueError(f"channels must give a width for each block resolution {wanted}, got {sorted(value, reverse=True)}")
    if any(c <= 0 for c in value.values()):
        raise ValueError(f"channels must be positive, got {value}")


def block_resolutions(resolution: int) -> list[int]:
    """Input sizes of the encoder's blocks, image size first, down to 4."""
    return [2**i for i in range(int(math.log2(resolution)), 1, -1)]


@attrs.frozen(hash=False)
class EncoderConfig:
    """Architecture of a DSE encoder: a mirror of the generator it inverts.

    One block per resolution from ``resolution`` down to 4x4; every block but the
    last halves the size. Each block has two convs, so with style heads it emits two
    w vectors and ``num_ws`` must be exactly ``2 * len(channels)``: the encoder does
    not guess how to drop or repeat ws the generator lacks or adds. The plugin's
    ``encoder_plan(G)`` fills this in from a generator.
    """

    family: str  # GAN family of the generator this encoder inverts, e.g. "stylegan2"
    resolution: int = attrs.field(validator=_power_of_two)  # input image size
    channels: dict[int, int] = attrs.field(validator=_channel_plan)  # block input resolution -> its input width
    img_channels: int = 3  # channels of the input image
    w_dim: int = 512  # size of each predicted w vector (style heads' output)
    num_ws: int = 0  # w vectors predicted, in generator layer order; 0 = no style heads (PGGAN, BigGAN)
    noise: bool = True  # learnable per-channel noise strengths (z'_n); noise is drawn in train mode only
    norm: NormKind = "instance"  # "instance" (StyleGAN, PGGAN) or "cbn": conditional batch norm (BigGAN)
    cond_dim: int = 0  # size of the condition vector the "cbn" norm reads; 0 with "instance"
    downsample: DownsampleMode = "avgpool"  # "avgpool": conv then 2x2 average; "fused": strided conv (strategy 2)
    z_head: tuple[int, ...] = ()  # output sizes of linear layers on the flattened 4x4 map giving z; () = none
    residual_weight: float = 0.889  # block output = (1 - r) * conv path + r * residual (the authors' 0.889)
    weight_init: WeightInit = "xavier"  # "xavier" (the paper) or "normal": stored N(0, 1), as equalized lr defaults

    def __attrs_post_init__(self) -> None:
        if self.num_ws not in (0, 2 * len(self.channels)):
            raise ValueError(
                f"num_ws must be 0 (no style heads) or 2 per block = {2 * len(self.channels)} at resolution "
                f"{self.resolution}, got {self.num_ws}"
            )
        if (self.norm == "cbn") != (self.cond_dim > 0):
            raise ValueError(f"cond_dim must be > 0 exactly when norm is 'cbn', got norm={self.norm!r}, cond_dim={self.cond_dim}")
        if any(n <= 0 for n in self.z_head):
            raise ValueError(f"z_head sizes must be positive, got {self.z_head}")
        if not 0 <= self.residual_weight <= 1:
            raise ValueError(f"residual_weight must be in [0, 1], got {self.residual_weight}")

    @property
    def z_dim(self) -> int:
        """Size of the z the final linear head predicts (0 without one)."""
        return self.z_head[-1] if self.z_head else 0

    @property
    def num_blocks(self) -> int:
        return len(self.channels)
