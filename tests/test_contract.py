"""dse_core.testing.check_generator_contract on a small z-latent family, and what it catches."""

import attrs
import pytest
import torch
from torch import nn

import dse_core
from dse_core import CheckpointFormat, EncoderConfig, GanFamily
from dse_core.testing import check_generator_contract


@attrs.frozen
class TinyConfig:
    resolution: int = 8  # output size
    z_dim: int = 6  # input latent size


class TinyGenerator(dse_core.Generator, dse_core.PretrainedMixin):
    """Written as CONTRIBUTING's skeleton says: z -> MLP -> image, no truncation, no noise."""

    family = "tinygan"; kind = "generator"; config_class = TinyConfig
    latent_names = ("z",)

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.resolution, self.z_dim, self.c_dim, self.img_channels = config.resolution, config.z_dim, 0, 3
        self.net = nn.Linear(config.z_dim, 3 * config.resolution**2)

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
        return self.decode(self.sample_latents(z, c, truncation_psi, truncation_cutoff), noise_mode)

    def sample_latents(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        dse_core.check_latents("tinygan", z, self.z_dim, c, self.c_dim)
        if truncation_psi != 1:
            raise ValueError("tinygan has no truncation: truncation_psi must be 1")
        return {"z": z}

    def decode(self, latents, noise_mode="const"):
        dse_core.check_noise_mode(noise_mode)
        return torch.tanh(self.net(latents["z"])).view(-1, 3, self.resolution, self.resolution)


def tiny_plan(G) -> EncoderConfig:
    return EncoderConfig(family="tinygan", resolution=G.resolution, channels={8: 8, 4: 8},
                         img_channels=G.img_channels, num_ws=0, noise=False, z_head=(G.z_dim,))


def family(generator_class=TinyGenerator, encoder=tiny_plan):
    return GanFamily(name="tinygan", description="tiny", generator_class=generator_class, latent="z (z_dim)",
                     formats=[CheckpointFormat("none", "none", lambda p: False, lambda p: None)], encoder=encoder)


def test_the_documented_z_family_passes(tmp_path):
    check_generator_contract(family(), TinyConfig(), tmp_path)


def test_a_family_without_an_encoder_plan_passes_too(tmp_path):
    check_generator_contract(family(encoder=None), TinyConfig(), tmp_path)


class WrongException(TinyGenerator):
    def sample_latents(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        if truncation_psi != 1:
            raise ValueError("tinygan has no truncation: truncation_psi must be 1")
        return {"z": z.view(-1, self.z_dim)}  # no check_latents: a (3, 7) z fails inside view() with a RuntimeError


class IgnoresTruncation(TinyGenerator):
    def sample_latents(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        dse_core.check_latents("tinygan", z, self.z_dim, c, self.c_dim)
        return {"z": z}


class DecodeDisagrees(TinyGenerator):
    def decode(self, latents, noise_mode="const"):
        return super().decode(latents, noise_mode).flip(-1)  # mirrored, while G(z) below is not

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
        return TinyGenerator.decode(self, self.sample_latents(z, c, truncation_psi, truncation_cutoff), noise_mode)


class NoConfig(TinyGenerator):
    def __init__(self, config):
        super().__init__(config)
        del self.config


def wrong_z_head(G):
    return attrs.evolve(tiny_plan(G), z_head=(G.z_dim + 1,))


def w_plan_for_a_z_family(G):
    return EncoderConfig(family="tinygan", resolution=G.resolution, channels={8: 8, 4: 8}, w_dim=4, num_ws=4)


@pytest.mark.parametrize("generator_class, encoder, message", [
    (WrongException, tiny_plan, "a z of shape (3, 7) must raise ValueError, not RuntimeError: shape '[-1, 6]' is "
                                "invalid for input of size 21; check shapes with dse_core.check_latents"),
    (IgnoresTruncation, tiny_plan, "has_truncation is False, so truncation_psi=0.5 must raise ValueError"),
    (DecodeDisagrees, tiny_plan, "decode(sample_latents(z, c)) must give the images G(z, c) gives"),
    (NoConfig, tiny_plan, "TinyConfig -> NoConfig: missing self.config"),
    (TinyGenerator, wrong_z_head, "encoder plan: E(x)['z'] is (3, 7) but decode() takes z as (3, 6)"),
    (TinyGenerator, w_plan_for_a_z_family, "encoder plan: E(x)['z'] is None but decode() takes z as (3, 6)"),
])
def test_contract_failures_say_what_is_wrong(tmp_path, generator_class, encoder, message):
    with pytest.raises(AssertionError) as err:
        check_generator_contract(family(generator_class, encoder), TinyConfig(), tmp_path)
    assert message in str(err.value)


def test_a_generator_whose_random_noise_is_const_fails_the_contract(tmp_path):
    """The contract perturbs the weights (noise strengths start at 0), so a mode that ignores its noise shows."""
    from dse_plugin_stylegan2 import FAMILY, Generator

    class ConstNoise(Generator):
        def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
            return super().forward(z, c, truncation_psi, truncation_cutoff, "const" if noise_mode == "random" else noise_mode)

    check_generator_contract(FAMILY, FAMILY.tiny_config, tmp_path / "ok")
    with pytest.raises(AssertionError, match="noise_mode='random' must draw fresh noise"):
        check_generator_contract(attrs.evolve(FAMILY, generator_class=ConstNoise), FAMILY.tiny_config, tmp_path / "bad")
