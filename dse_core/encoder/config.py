"""``EncoderConfig``: the one frozen config a DSE encoder is built from (paper Tables I and II)."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ..config import channel_plan, converter, power_of_two, resolutions

NormKind = Literal["instance", "cbn", "frozen_cbn"]
BlockKind = Literal["mix", "sum", "big"]
DownsampleMode = Literal["avgpool", "fused"]
WeightInit = Literal["xavier", "normal"]
ConditionKind = Literal["class", "generator"]


@attrs.frozen(hash=False)
class EncoderConfig:
    """Architecture of a DSE encoder: a mirror of the generator it inverts.

    One block per resolution from ``resolution`` down to ``final_resolution`` (4x4); every
    block but the last halves the size. What it predicts, each by the generator's latent name:

    - ``ws`` (N, num_ws, w_dim) from style heads: each block has two convs, so with style
      heads it emits two w vectors and ``num_ws`` must be exactly ``2 * len(channels)`` (the
      encoder does not guess how to drop or repeat ws the generator lacks or adds);
    - ``z`` (N, z_dim) from linear layers on the final map (``z_head``);
    - ``c`` (N, num_classes) class probabilities from a linear class head on the final map.

    A conditional encoder reads a condition vector (``c_dim``) through conditional batch norm:
    the generator's class vector c (``condition="class"``), or the vector the generator's own
    conditional layers read (``"generator"``, ``G.condition_vector(z, c)``: the DSE authors'
    BigGAN encoder reads [z, class embedding]). With both a class head and ``"class"``
    conditioning it predicts, then conditions: a first pass on the uniform class mixture gives
    the class probabilities, a second pass conditioned on them (or on a given class) gives the
    other latents. The plugin's ``encoder_plan(G)`` fills this in from a generator.
    """

    family: str  # GAN family of the generator this encoder inverts, e.g. "stylegan2"
    resolution: int = attrs.field(validator=power_of_two)  # input image size
    channels: dict[int, int] = attrs.field(validator=channel_plan)  # block input resolution -> its input width
    img_channels: int = 3  # channels of the input image
    num_ws: int = 0  # w vectors predicted, in generator layer order; 0 = no style heads (PGGAN, BigGAN)
    # size of each predicted w (the style heads' output); default 512 with style heads, 0 (none) without
    w_dim: int = attrs.field(default=attrs.Factory(lambda self: 512 if self.num_ws else 0, takes_self=True))
    noise: bool = True  # learnable per-channel noise strengths (z'_n); noise is drawn in train mode only
    # "instance" (StyleGAN, PGGAN); "cbn": conditional batch norm on c (BigGAN); "frozen_cbn": the same on fixed
    # stored statistics, as the authors' BigGAN encoder normalizes (their BigGANBatchNorm at truncation 0.4)
    norm: NormKind = "instance"
    c_dim: int = 0  # size of the condition vector a conditional norm ("cbn", "frozen_cbn") reads; 0 with "instance"
    # what that vector is: "class", G's class vector c; "generator", G.condition_vector(z, c)
    condition: ConditionKind = "class"
    downsample: DownsampleMode = "avgpool"  # "avgpool": conv then 2x2 average; "fused": strided conv (strategy 2)
    z_head: tuple[int, ...] = ()  # output sizes of linear layers on the flattened final map giving z; () = none
    num_classes: int = 0  # a class head: logits over the generator's classes, E(x)["c"] their softmax; 0 = none
    # latents decode() takes that this encoder does not predict, at the values it was trained with
    # (e.g. BigGAN's {"truncation": 0.4}); set by the trainer from the training samples
    fixed_latents: dict[str, float] = attrs.field(factory=dict)
    residual_weight: float = 0.889  # "mix" block output = (1 - r) * conv path + r * residual (the authors' 0.889)
    weight_init: WeightInit = "xavier"  # "xavier" (the paper) or "normal": stored N(0, 1), as equalized lr defaults
    # "mix": the paper's block (Fig. 5, the authors' E.py), each path activated, then mixed by residual_weight;
    # "sum": the authors' PGGAN encoder block (E_PG.py), conv path + bypass, one activation after the sum;
    # "big": the authors' BigGAN encoder block (E_BIG.py), "frozen_cbn" norms, no activation after the sum
    block: BlockKind = "mix"
    # size of the last block's map, which the linear heads flatten: 4 as in the paper; the authors' PGGAN
    # encoder fixes its head's input at 8192 features, so with narrow channels its last map is larger
    final_resolution: int = attrs.field(default=4, validator=power_of_two)

    def __attrs_post_init__(self) -> None:
        if self.num_ws not in (0, 2 * len(self.channels)):
            raise ValueError(
                f"num_ws must be 0 (no style heads) or 2 per block = {2 * len(self.channels)} at resolution "
                f"{self.resolution}, got {self.num_ws}"
            )
        if (self.num_ws > 0) != (self.w_dim > 0):
            raise ValueError(f"w_dim (the size of a predicted w) must be > 0 with style heads (num_ws > 0) and 0 "
                             f"without, got num_ws={self.num_ws}, w_dim={self.w_dim}")
        if (self.norm in ("cbn", "frozen_cbn")) != (self.c_dim > 0):
            raise ValueError(f"c_dim must be > 0 exactly when the norm is conditional ('cbn', 'frozen_cbn'), got "
                             f"norm={self.norm!r}, c_dim={self.c_dim}")
        if any(n <= 0 for n in self.z_head):
            raise ValueError(f"z_head sizes must be positive, got {self.z_head}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")
        if self.num_classes and self.c_dim and (self.condition != "class" or self.c_dim != self.num_classes):
            # predict-then-condition reads its own prediction: a class vector of the size it predicts
            raise ValueError(f"an encoder with a class head (num_classes={self.num_classes}) conditions on the class "
                             f"it predicts: condition 'class' with c_dim = num_classes, got condition="
                             f"{self.condition!r}, c_dim={self.c_dim}")
        if self.condition not in ("class", "generator"):
            raise ValueError(f"condition must be 'class' or 'generator', got {self.condition!r}")
        if self.block == "sum" and (self.num_ws or self.norm != "instance" or self.downsample != "avgpool"):
            raise ValueError("the 'sum' block (the authors' PGGAN encoder) has no style heads, uses instance norm and "
                             f"average pooling: got num_ws={self.num_ws}, norm={self.norm!r}, downsample={self.downsample!r}")
        if self.block == "big" and (self.num_ws or self.norm != "frozen_cbn" or self.downsample != "avgpool"):
            raise ValueError("the 'big' block (the authors' BigGAN encoder) has no style heads, uses the 'frozen_cbn' norm "
                             f"and average pooling: got num_ws={self.num_ws}, norm={self.norm!r}, downsample={self.downsample!r}")
        if not 0 <= self.residual_weight <= 1:
            raise ValueError(f"residual_weight must be in [0, 1], got {self.residual_weight}")

    @property
    def z_dim(self) -> int:
        """Size of the z the final linear head predicts (0 without one)."""
        return self.z_head[-1] if self.z_head else 0

    @property
    def latent_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of each latent this encoder predicts, by the generator's names."""
        shapes = {"ws": (self.num_ws, self.w_dim), "z": (self.z_dim,), "c": (self.num_classes,)}
        return {name: shape for name, shape in shapes.items() if shape[0]}

    @property
    def resolutions(self) -> list[int]:
        """The blocks' input sizes, ascending (the encoder runs them from the image size down)."""
        return resolutions(self.resolution, self.final_resolution)

    @property
    def final_features(self) -> int:
        """Size of the flattened final map the linear heads read."""
        return self.channels[self.final_resolution] * self.final_resolution**2


def upgrade_encoder_config(data: Any) -> Any:
    """config.json of encoders saved before the latents were named: cond_dim is c_dim; no style heads, no w_dim."""
    if isinstance(data, dict):
        data = dict(data)
        if "cond_dim" in data:
            data.setdefault("c_dim", data.pop("cond_dim"))
        if data.get("num_ws") == 0:
            data["w_dim"] = 0
    return data


_structure = converter.get_structure_hook(EncoderConfig)
converter.register_structure_hook(EncoderConfig, lambda data, cls: _structure(upgrade_encoder_config(data), cls))
