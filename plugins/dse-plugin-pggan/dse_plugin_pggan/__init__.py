"""dse plugin: the PGGAN family: our progressive GAN generator at full resolution, readers for genforce and
facebookresearch/pytorch_GAN_zoo files and for the DSE authors' PGGAN encoder, the DSE encoder plan (paper Table I
footnote: z' from the final map) and an embedded 32 px demo generator + encoder. It uses only the public API
(``dse_core``, ``dse_core.nn``), as any third-party plugin would."""

from functools import partial
from pathlib import Path

from dse_core import CheckpointFormat, GanFamily, hookimpl, load_authors_pg_encoder, sniff_authors_pg_encoder

from . import convert
from .encoder import encoder_plan
from .model import Generator, PGGANConfig

__all__ = ["Generator", "PGGANConfig", "FAMILY"]
__version__ = "0.1.0"

FAMILY = GanFamily(
    name="pggan",
    description="Progressive GAN (Karras et al. 2018) at its full resolution",
    generator_class=Generator,
    formats=[
        CheckpointFormat("genforce", "genforce PGGANGenerator .pth ({'generator_smooth' | 'generator': state_dict})",
                         convert.sniff_genforce, convert.load_genforce),
        CheckpointFormat("ganzoo", "facebookresearch/pytorch_GAN_zoo PGAN .pth (torch.hub's files: config, netG, avgG)",
                         convert.sniff_ganzoo, convert.load_ganzoo),
    ],
    latent="z (z_dim)",
    encoder=encoder_plan,
    demo=Path(__file__).parent / "demo",  # generator/ and encoder/: 32 px digits, see tools/README.md
    tiny_config=PGGANConfig(resolution=16, channels={4: 16, 8: 12, 16: 8}, z_dim=12),
    encoder_formats=[
        CheckpointFormat("dse-authors", "the DSE authors' PGGAN encoder (E_PG.py BE(pggan=True); E_model_*.pth: "
                         "torch.save(state_dict))", sniff_authors_pg_encoder, partial(load_authors_pg_encoder, family="pggan")),
    ],
)


@hookimpl
def register_gan_families(register):
    register(FAMILY)
