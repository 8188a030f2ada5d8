"""dse plugin: the BigGAN-deep family: our class-conditional BigGAN-deep generator (truncation selects the stored
batch-norm statistics; it lives in the latents) and a reader for Hugging Face pytorch-pretrained-BigGAN files. No
encoder plan yet. It uses only the public API (``dse_core``, ``dse_core.nn``), as any third-party plugin would."""

from dse_core import CheckpointFormat, GanFamily, hookimpl

from . import convert
from .model import BigGANConfig, Generator

__all__ = ["Generator", "BigGANConfig", "FAMILY"]
__version__ = "0.1.0"

FAMILY = GanFamily(
    name="biggan",
    description="BigGAN-deep (Brock et al. 2019), class-conditional, truncation-dependent batch-norm statistics",
    generator_class=Generator,
    formats=[
        CheckpointFormat("hf", "huggingface pytorch-pretrained-BigGAN (a folder, or its pytorch_model.bin, with the "
                               "hub's config.json)", convert.sniff_hf, convert.load_hf),
    ],
    latent="z (z_dim) and c (c_dim classes, one-hot); truncation fixed per encoder",
    encoder=None,  # the DSE BigGAN encoder plan is a later release
    tiny_config=BigGANConfig(resolution=16, channels=(32, 32, 16, 8), upsample=(False, True, True), attention=1,
                             z_dim=8, embed_dim=8, c_dim=5, n_stats=11),
)


@hookimpl
def register_gan_families(register):
    register(FAMILY)
