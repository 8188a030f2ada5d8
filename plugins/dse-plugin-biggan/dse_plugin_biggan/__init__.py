"""dse plugin: the BigGAN-deep family: our class-conditional BigGAN-deep generator (truncation selects the stored
batch-norm statistics; it lives in the latents), a reader for Hugging Face pytorch-pretrained-BigGAN files, the DSE
encoder plan (conditional batch norm on the class, a class head), the DSE authors' BigGAN encoder and an embedded
demo. It uses only the public API (``dse_core``, ``dse_core.nn``), as any third-party plugin would."""

from functools import partial
from pathlib import Path

from dse_core import CheckpointFormat, GanFamily, hookimpl, load_authors_big_encoder, sniff_authors_big_encoder

from . import convert
from .encoder import encoder_plan
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
    latent="z (z_dim) and c (c_dim class probabilities: a one-hot class or a mixture); truncation fixed per encoder",
    encoder=encoder_plan,
    demo=Path(__file__).parent / "demo",  # generator/ and encoder/: 32 px digits, class-conditional (tools/README.md)
    train_truncation_psi=0.4,  # the DSE authors' BigGAN training samples; their encoder reads statistics row 0.4
    tiny_config=BigGANConfig(resolution=16, channels=(32, 32, 16, 8), upsample=(False, True, True), attention=1,
                             z_dim=8, embed_dim=8, c_dim=5, n_stats=11),
    encoder_formats=[
        CheckpointFormat("dse-authors", "the DSE authors' BigGAN encoder (E_BIG.py BE(biggan=True); E_model_*.pth: "
                         "torch.save(state_dict))", sniff_authors_big_encoder,
                         partial(load_authors_big_encoder, family="biggan")),
    ],
)


@hookimpl
def register_gan_families(register):
    register(FAMILY)
