"""What a family can honour: a training config fitted to the generator's capabilities.

Options a family cannot honour are never silently ignored. Given by the user, they are refused (a
:class:`DseError` naming the option and the family); coming from a preset, they are left out and said
so (notes, which ``run.json`` records), and the config records what runs:

- truncation (``truncation_psi`` != 1) needs a family with truncation, and a cutoff needs per-layer
  ws (at most ``num_ws``);
- style mixing needs a style-based generator;
- ``latent_step="separate"`` (the authors' second Adam step on the latent loss) needs a latent loss,
  and so does a preset whose image terms are detached (strategy 1);
- latent weights name latents the encoder predicts.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import DseError, UnknownNameError
from ..interfaces import check_truncation, num_ws_of
from ..loss import LossConfig
from .config import TrainConfig

# the dse train options behind TrainConfig's fields, for messages
FLAGS = {"truncation_psi": "--truncation-psi", "truncation_cutoff": "--truncation-cutoff",
         "style_mixing_prob": "--style-mixing", "latent_step": "--latent-step", "class_sampling": "--class-sampling"}


def fit_to_family(G, config: TrainConfig, loss: LossConfig, encoder, given: set[str],
                  preset: str) -> tuple[TrainConfig, list[str]]:
    """``config`` with what ``G``'s family cannot honour refused (options given) or left out (the preset's), and notes.

    ``encoder``: the EncoderConfig (what it predicts decides whether there is a latent loss).
    """
    notes: list[str] = []

    def drop(option: str, value: Any, why: str, hint: str | None = None, **fixed) -> None:
        nonlocal config
        if option in given:
            raise DseError(f"{option} {value} ({FLAGS[option]}): {why}", hint=hint or f"drop it for the {G.family} generator")
        notes.append(f"{preset}'s {option.replace('_', ' ')} {value} does not apply ({why}); trained with "
                     + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in fixed.items()))
        config = attrs.evolve(config, **fixed)

    if config.truncation_psi != 1 and not G.has_truncation:
        drop("truncation_psi", config.truncation_psi, f"the {G.family} generator has no truncation",
             truncation_psi=1.0, truncation_cutoff=None)
    num_ws = num_ws_of(G)
    if config.truncation_cutoff is not None and not num_ws:
        drop("truncation_cutoff", config.truncation_cutoff, f"the {G.family} generator has no per-layer ws to cut",
             truncation_cutoff=None)
    elif config.truncation_cutoff is not None and config.truncation_cutoff > num_ws:
        drop("truncation_cutoff", config.truncation_cutoff, f"the {G.family} generator has {num_ws} ws",
             truncation_cutoff=num_ws)
    check_truncation(G, config.truncation_psi, config.truncation_cutoff)
    if config.style_mixing_prob > 0 and num_ws < 2:
        drop("style_mixing_prob", config.style_mixing_prob, f"style mixing needs a style-based generator, and the "
             f"{G.family} generator has no per-layer ws", style_mixing_prob=0.0)
    if config.class_sampling == "mixed" and not G.c_dim:  # "batch", the default, is no class sampling at all there
        raise DseError(f"class_sampling {config.class_sampling} (--class-sampling): the {G.family} generator is "
                       "unconditional", hint="drop it")
    unknown = sorted(set(loss.latent_weights) - set(encoder.latent_shapes))
    if unknown:
        raise UnknownNameError(f"latent of the {G.family} encoder (in the latent weights)", unknown[0],
                               encoder.latent_shapes, hint=f"it predicts {', '.join(encoder.latent_shapes) or 'none'}")
    latent_loss = loss.weights_of(encoder.latent_shapes)
    if config.latent_step == "separate" and not latent_loss:
        drop("latent_step", "separate", "there is no latent loss to take the second step on",
             hint="give a predicted latent a weight (--latent-weight), or step jointly", latent_step="joint")
    if loss.attention == "gradcam" and G.img_channels != 3:
        raise DseError(f"Grad-CAM areas come from an ImageNet VGG16, which reads RGB; the {G.family} generator makes "
                       f"{G.img_channels}-channel images", hint="use centre areas (--attention centre, or a preset "
                       "without -misaligned)")
    if loss.detach_images and not latent_loss:
        raise DseError(f"{preset} trains the encoder only through the latent loss (its image terms are detached), "
                       "and there is no latent loss: nothing would train it",
                       hint="give the latents a weight, or use a preset whose image terms train (paper-s2)")
    return config, notes
