"""``TrainConfig``: everything about a DSE training run that is not the loss or the architecture."""

from __future__ import annotations

import math
from typing import Literal

import attrs

Precision = Literal["fp32", "bf16", "fp16"]
LatentStep = Literal["joint", "separate"]
ClassSampling = Literal["batch", "mixed"]
_positive = attrs.validators.gt(0)


def _psi(_, attribute, value: float) -> None:
    from ..interfaces import psi_problem

    problem = psi_problem(value)
    if problem:
        raise ValueError(f"'{attribute.name}' {problem}")


def default_batch_size(resolution: int) -> int:
    """The paper's per-GPU batch: 8 up to 256 px, 4 at 512, 2 at 1024."""
    return 8 if resolution <= 256 else 4 if resolution <= 512 else 2


@attrs.frozen
class TrainConfig:
    """Algorithm 1's settings; ``samples`` is the budget (paper: 30,000 a epoch x 7 epochs)."""

    preset: str = "paper-s2"  # named loss/encoder/training recipe (see dse_core.train.presets)
    samples: int = attrs.field(default=210_000, validator=_positive)  # training budget in generated samples, summed over ranks
    batch_size: int | None = attrs.field(default=None, validator=attrs.validators.optional(_positive))  # per rank; None = default_batch_size(resolution)
    lr: float = attrs.field(default=0.0015, validator=[attrs.validators.gt(0), attrs.validators.lt(math.inf)])  # Adam learning rate (paper; paper-s2: 0.003)
    betas: tuple[float, float] = (0.0, 0.99)  # Adam betas (paper)
    truncation_psi: float = attrs.field(default=1.0, validator=_psi)  # truncation of the training samples' latents (1 = none)
    truncation_cutoff: int | None = attrs.field(default=None, validator=attrs.validators.optional(_positive))  # truncate only the first k ws (None = all)
    style_mixing_prob: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0), attrs.validators.le(1)])  # chance a sample mixes two ws at a random layer (the authors' runs: 0.9)
    noise_mode: str = "const"  # generator noise when making (x, x') pairs: const keeps x' comparable to x
    seed: int = 0  # z of step s on rank r comes from seed, r, s: runs are reproducible and resumable
    log_every: int = attrs.field(default=10, validator=_positive)  # steps between loss-log lines
    grid_every: int = attrs.field(default=500, validator=_positive)  # steps between reconstruction grids
    checkpoint_every: int = attrs.field(default=500, validator=_positive)  # steps between resumable checkpoints
    precision: Precision = "fp32"  # bf16/fp16 autocast on GPUs
    latent_step: LatentStep = "joint"  # "separate": a second optimizer step on the latent loss alone (the code's)
    grid_size: int = attrs.field(default=8, validator=_positive)  # samples shown in each grid
    # conditional generators: "batch", one class per batch (the authors' BigGAN training), or "mixed", one per sample
    class_sampling: ClassSampling = attrs.field(default="batch", validator=attrs.validators.in_(("batch", "mixed")))
    # the encoder saved is an EMA of its weights whose older weights' share halves every ema_halflife samples
    # (0 = the last step's weights, as the paper and the authors' code save them)
    ema_halflife: int = attrs.field(default=0, validator=attrs.validators.ge(0))


def config_for_preset(preset: str, **options) -> TrainConfig:
    """A preset's sampling and stepping choices, under the options given (None: the preset's).

    A truncation psi given without a cutoff truncates every w; the preset's cutoff goes with its own psi.
    """
    from .presets import get_preset

    chosen = get_preset(preset)
    options = {k: v for k, v in options.items() if v is not None}
    if "truncation_psi" not in options:
        options.setdefault("truncation_cutoff", chosen.truncation_cutoff)
    defaults = dict(truncation_psi=chosen.truncation_psi, style_mixing_prob=chosen.style_mixing_prob,
                    latent_step=chosen.latent_step, ema_halflife=chosen.ema_halflife, lr=chosen.lr)
    return TrainConfig(preset=preset, **{**defaults, **options})
