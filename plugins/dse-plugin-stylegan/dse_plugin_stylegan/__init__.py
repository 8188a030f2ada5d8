"""dse plugin: the StyleGAN (v1) family: our generator, readers for genforce files and the DSE authors' StyleGAN1
models (and their StyleGAN encoders), and the DSE encoder plan (paper Table I). It uses only the public API
(``dse_core``, ``dse_core.nn``), as any third-party plugin would."""

from functools import partial
from pathlib import Path

from dse_core import CheckpointFormat, GanFamily, hookimpl, load_authors_encoder, sniff_authors_encoder

from . import convert
from .encoder import encoder_plan
from .model import Generator, StyleGANConfig

__all__ = ["Generator", "StyleGANConfig", "FAMILY"]
__version__ = "0.1.0"

FAMILY = GanFamily(
    name="stylegan",
    description="StyleGAN (Karras et al. 2019: AdaIN, per-layer noise, truncation)",
    generator_class=Generator,
    formats=[
        CheckpointFormat("genforce", "genforce StyleGANGenerator .pth ({'generator_smooth' | 'generator': state_dict}, "
                         "at the top or under 'models')",
                         convert.sniff_genforce, convert.load_genforce),
        CheckpointFormat("dse-authors", "the DSE authors' StyleGAN1 (a folder or any of Gs_dict.pth, Gm_dict.pth, "
                         "center_tensor.pt)", convert.sniff_authors, convert.load_authors),
    ],
    latent="ws (num_ws x w_dim, the paper's w+)",
    encoder=encoder_plan,
    demo=Path(__file__).parent / "demo",
    # 16 px with the fused up-conv from 16 px on, so the contract tests run both upsampling paths
    tiny_config=StyleGANConfig(resolution=16, channels={4: 16, 8: 12, 16: 8}, z_dim=12, w_dim=10, mapping_layers=2,
                               fused_up_resolution=16),
    encoder_formats=[
        CheckpointFormat("dse-authors", "the DSE authors' StyleGAN encoder BE (E_model_*.pth: torch.save(state_dict))",
                         sniff_authors_encoder, partial(load_authors_encoder, family="stylegan")),
    ],
)


@hookimpl
def register_gan_families(register):
    register(FAMILY)
