"""dse plugin: the StyleGAN2 family: our generator, readers for rosinality, genforce and NVlabs files and
for the DSE authors' encoders, the DSE encoder plan (paper Table I) and an embedded 32 px demo generator +
encoder. It uses only the public API (``dse_core``, ``dse_core.nn``), as any third-party plugin would."""

from functools import partial
from pathlib import Path

from dse_core import CheckpointFormat, GanFamily, hookimpl, load_authors_encoder, sniff_authors_encoder

from . import convert, nvlabs
from .encoder import encoder_plan
from .model import Generator, StyleGAN2Config

__all__ = ["Generator", "StyleGAN2Config", "FAMILY"]
__version__ = "0.1.0"

FAMILY = GanFamily(
    name="stylegan2",
    description="StyleGAN2 (config F, skip generator)",
    generator_class=Generator,
    formats=[
        CheckpointFormat("rosinality", "rosinality/stylegan2-pytorch .pt ({'g_ema', 'latent_avg'} or a training checkpoint)",
                         convert.sniff_rosinality, convert.load_rosinality),
        CheckpointFormat("genforce", "genforce .pth ({'generator_smooth' | 'generator': state_dict})",
                         convert.sniff_genforce, convert.load_genforce),
        CheckpointFormat("nvlabs", "NVlabs stylegan2-ada-pytorch network pickle (.pkl), read without running its code",
                         nvlabs.sniff_nvlabs, nvlabs.load_nvlabs),
    ],
    latent="ws (num_ws x w_dim, the paper's w+)",
    encoder=encoder_plan,
    demo=Path(__file__).parent / "demo",  # generator/ and encoder/: 32 px digits, see tools/README.md
    tiny_config=StyleGAN2Config(resolution=16, channels={4: 16, 8: 12, 16: 8}, z_dim=12, w_dim=10, mapping_layers=2),
    encoder_formats=[
        CheckpointFormat("dse-authors", "the DSE authors' StyleGAN encoder BE (E_model_*.pth: torch.save(state_dict))",
                         sniff_authors_encoder, partial(load_authors_encoder, family="stylegan2")),
    ],
)


@hookimpl
def register_gan_families(register):
    register(FAMILY)
