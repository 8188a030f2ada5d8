"""The DSE authors' PGGAN encoder (``E_PG.py`` ``BE(..., pggan=True)``): read as its scripts save it, parity with the
reference's own outputs, and a geometry the fixture does not have."""

import attrs
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from dse_core import CheckpointError, EncoderConfig, load_authors_encoder, load_authors_pg_encoder
from dse_core import sniff_authors_encoder, sniff_authors_pg_encoder

TOL = 1e-4


@pytest.fixture
def pg(fixtures):
    return fixtures / "dse-encoder-pggan"


def test_reads_the_authors_file_with_parity(pg):
    E = load_authors_pg_encoder(pg / "E_model_ep6_iter29999.pth", family="pggan")
    cfg = E.config
    # 4 blocks from 128 px; new_final's 8192 inputs over the last block's 32 channels make a 16x16 final map
    assert (cfg.resolution, cfg.final_resolution, cfg.block) == (128, 16, "sum")
    assert cfg.channels == {128: 8, 64: 16, 32: 32, 16: 32} and cfg.z_head == (64,) and cfg.num_ws == 0
    assert E.latent_shapes == {"z": (64,)} and not E.training
    cases = load_file(pg / "cases.safetensors")
    with torch.no_grad():
        feat = E.features(cases["x"])[0]
        z = E(cases["x"])["z"]
    assert (feat - cases["feat"]).abs().max() <= TOL
    # the authors' forward discards z' (returns (0, 0)); ours returns it: the fixture took it from new_final
    assert (z - cases["z"]).abs().max() <= TOL
    assert cases["fwd_const"].item() == 0 and cases["fwd_w"].item() == 0


def test_sniffers_tell_the_authors_encoders_apart(pg, fixtures):
    pg_file = pg / "E_model_ep6_iter29999.pth"
    be_file = fixtures / "dse-encoder-stylegan2" / "E_model_ep6_iter29999.pth"
    assert sniff_authors_pg_encoder(pg_file) and not sniff_authors_encoder(pg_file)
    assert sniff_authors_encoder(be_file) and not sniff_authors_pg_encoder(be_file)
    with pytest.raises(CheckpointError, match="(?s)new_final.*--gan pggan"):
        load_authors_encoder(pg_file, family="stylegan2")


def _random_pg_state(startf: int, maxf: int, layer_count: int, latent: int, seed: int = 0) -> dict:
    """A state dict in E_PG's layout (its names and shapes), random values."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.2  # noqa: E731
    state = {"FromRGB.from_rgb.weight": r(startf, 3, 1, 1), "FromRGB.from_rgb.bias": r(startf)}
    inputs, outputs = startf, min(maxf, 2 * startf)
    for i in range(layer_count):
        b = f"decode_block.{i}."
        state.update({b + "noise_weight_1": r(1, inputs, 1, 1), b + "bias_1": r(1, inputs, 1, 1),
                      b + "noise_weight_2": r(1, outputs, 1, 1), b + "bias_2": r(1, outputs, 1, 1),
                      b + "conv_1.weight": r(inputs, inputs, 3, 3)})
        if i + 1 != layer_count:
            state[b + "conv_2.weight"] = r(outputs, inputs, 3, 3)
        if inputs != outputs:
            state.update({b + "conv_3.weight": r(outputs, inputs, 1, 1), b + "conv_3.bias": r(outputs),
                          b + "instance_norm_3.weight": 1 + r(outputs), b + "instance_norm_3.bias": r(outputs)})
        inputs, outputs = min(maxf, 2 * inputs), min(maxf, 2 * outputs)
    state["new_final.weight"] = r(latent, 512 * 16) / 8  # outputs of order 1-10, as a trained head gives
    state["new_final.bias"] = r(latent)
    return state


def _reference_forward(state: dict, x: torch.Tensor, layer_count: int) -> torch.Tensor:
    """E_PG's forward as its README entry describes it, on the stored (effective) weights, noise off: z'."""
    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    x = lrelu(F.conv2d(x, state["FromRGB.from_rgb.weight"], state["FromRGB.from_rgb.bias"]))
    for i in range(layer_count):
        b = lambda name: state[f"decode_block.{i}.{name}"]  # noqa: E731
        residual = x
        x = lrelu(F.conv2d(F.instance_norm(x, eps=1e-8), b("conv_1.weight"), padding=1) + b("bias_1"))
        if i + 1 == layer_count:
            break
        x = F.conv2d(F.instance_norm(x, eps=1e-8), b("conv_2.weight"), padding=1) + b("bias_2")
        if f"decode_block.{i}.conv_3.weight" in state:
            residual = F.instance_norm(F.conv2d(residual, b("conv_3.weight"), b("conv_3.bias")), eps=1e-8,
                                       weight=b("instance_norm_3.weight"), bias=b("instance_norm_3.bias"))
        x = F.avg_pool2d(lrelu(x + residual), 2)
    return F.linear(x.flatten(1), state["new_final.weight"], state["new_final.bias"])


def test_other_geometry_and_the_tensors_it_never_uses(tmp_path):
    # startf 16 up to 128 channels over 4 blocks: the last block would widen 128 -> 256, so it stores a conv_3 and
    # instance_norm_3 it never runs; 8192 / 128 channels = an 8x8 final map, 64 px images
    state = _random_pg_state(16, 512, 4, 32)
    path = tmp_path / "E_model_ep1_iter9.pth"
    torch.save(state, path)
    E = load_authors_pg_encoder(path, family="pggan")
    assert (E.config.resolution, E.config.final_resolution) == (64, 8)
    assert E.config.channels == {64: 16, 32: 32, 16: 64, 8: 128}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        z = E(x)["z"]
    assert z.shape == (2, 32) and (z - _reference_forward(state, x, 4)).abs().max() <= TOL

    unused = dict(state, **{"decode_block.3.conv_3.weight": torch.zeros(256, 128, 1, 1),
                            "decode_block.3.bias_2": torch.full((1, 256, 1, 1), 5.0)})
    used = dict(state, **{"decode_block.0.bias_2": state["decode_block.0.bias_2"] + 1})
    for changed, same in ((unused, True), (used, False)):
        torch.save(changed, path)
        with torch.no_grad():
            z2 = load_authors_pg_encoder(path, family="pggan")(x)["z"]
        assert torch.equal(z, z2) is same


def test_wrong_head_size_is_named(tmp_path):
    state = _random_pg_state(4, 32, 3, 8)  # last block 16 channels: 8192 / 16 = 512 features per channel, no square
    torch.save(state, tmp_path / "e.pth")
    with pytest.raises(CheckpointError, match="new_final reads 8192 features.*16 channels"):
        load_authors_pg_encoder(tmp_path / "e.pth", family="pggan")
    state = _random_pg_state(16, 512, 4, 32)
    state["decode_block.1.conv_2.weight"] = torch.zeros(64, 31, 3, 3)
    torch.save(state, tmp_path / "e.pth")
    with pytest.raises(CheckpointError, match="decode_block.1.*conv_2.weight"):
        load_authors_pg_encoder(tmp_path / "e.pth", family="pggan")


def test_config_refuses_what_the_sum_block_cannot_be():
    base = EncoderConfig(family="pggan", resolution=32, channels={32: 8, 16: 16}, block="sum", final_resolution=16,
                         z_head=(4,), noise=False)
    assert base.final_features == 16 * 16 * 16
    with pytest.raises(ValueError, match="no style heads"):
        attrs.evolve(base, num_ws=4, w_dim=8)
    with pytest.raises(ValueError, match="above the image size"):
        EncoderConfig(family="pggan", resolution=8, channels={8: 4}, final_resolution=16)
    with pytest.raises(ValueError, match="width for each resolution"):
        attrs.evolve(base, final_resolution=8)
