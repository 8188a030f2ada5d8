"""dse plugin: the StyleGAN2 family: our generator, readers for rosinality, genforce and NVlabs files,
the DSE encoder plan (paper Table I) and an embedded 32 px demo generator + encoder."""

from pathlib import Path

from dse_core import CheckpointFormat, GanFamily, hookimpl

from . import convert, nvlabs
from .encoder import encoder_plan
from .model import Generator, StyleGAN2Config

__all__ = ["Generator", "StyleGAN2Config", "FAMILY"]
__version__ = "0.1.0"

FAMILY = GanFamily(
    name="stylegan2",
    description="StyleGAN2 (config F, skip generator); inversion predicts w+",
    generator_class=Generator,
    formats=[
        CheckpointFormat("rosinality", "rosinality/stylegan2-pytorch .pt ({'g_ema', 'latent_avg'} or a training checkpoint)",
                         convert.sniff_rosinality, convert.load_rosinality),
        CheckpointFormat("genforce", "genforce .pth ({'generator_smooth' | 'generator': state_dict})",
                         convert.sniff_genforce, convert.load_genforce),
        CheckpointFormat("nvlabs", "NVlabs stylegan2-ada-pytorch network pickle (.pkl), read without running its code",
                         nvlabs.sniff_nvlabs, nvlabs.load_nvlabs),
    ],
    latent="w+ (num_ws x w_dim)",
    encoder=encoder_plan,
    demo=Path(__file__).parent / "demo",  # generator/ and encoder/: 32 px digits, see tools/README.md
)


@hookimpl
def register_gan_families(register):
    register(FAMILY)
