"""The StyleGAN2 encoder plan: Table I at 256/512/1024 px, the generator mirrored at other sizes."""

import pytest
import torch

from dse_core import Encoder, load_encoder
from dse_plugin_stylegan2 import Generator, StyleGAN2Config
from dse_plugin_stylegan2.encoder import encoder_plan

# Paper Table I: input width of each block, finest first (CONV(C_in, ...) of each block's first conv).
TABLE_I = {
    256: [64, 128, 256, 512, 512, 512, 512],
    512: [32, 64, 128, 256, 512, 512, 512, 512],
    1024: [16, 32, 64, 128, 256, 512, 512, 512, 512],
}


@pytest.mark.parametrize("resolution, num_ws", [(256, 14), (512, 16), (1024, 18)])
def test_table_i_plans_and_shapes_on_meta(resolution, num_ws):
    g_cfg = StyleGAN2Config.standard(resolution)
    assert g_cfg.num_ws == num_ws
    with torch.device("meta"):
        G = Generator(g_cfg)
        cfg = encoder_plan(G)
        E = Encoder(cfg)
        x = torch.empty(2, 3, resolution, resolution)
        out, zc = E(x), E.features(x)[0]
    assert [cfg.channels[r] for r in reversed(cfg.resolutions)] == TABLE_I[resolution]
    assert cfg.num_ws == num_ws and cfg.w_dim == 512 and cfg.family == "stylegan2"
    assert set(out) == {"ws"} and out["ws"].shape == (2, num_ws, 512) and zc.shape == (2, 512, 4, 4)
    # each block: CONV(C, C) then CONV(C, next C); the 4x4 block has one conv (Table I's last row is the FC)
    first = E.get_submodule(f"b{resolution}")
    assert first.conv0.conv.weight.shape[:2] == (TABLE_I[resolution][0],) * 2
    assert first.conv1.conv.weight.shape[:2] == (TABLE_I[resolution][1], TABLE_I[resolution][0])
    assert first.style0.fc.weight.shape == (512, 2 * TABLE_I[resolution][0])
    assert not hasattr(E.b4, "conv1")


def test_small_generator_is_mirrored_and_its_ws_drive_it():
    g_cfg = StyleGAN2Config(resolution=32, channels={4: 64, 8: 64, 16: 64, 32: 32}, z_dim=64, w_dim=64,
                            mapping_layers=2)
    G = Generator(g_cfg).eval()
    cfg = encoder_plan(G)
    assert cfg.channels == {32: 32, 16: 64, 8: 64, 4: 64} and cfg.w_dim == 64 and cfg.num_ws == G.num_ws == 8
    E = Encoder(cfg).eval()
    with torch.no_grad():
        x = G(torch.randn(2, 64))
        ws = E(x)["ws"]
        x_rec = G.synthesis(ws)
    assert ws.shape == (2, 8, 64) and E.features(x)[0].shape == (2, 64, 4, 4) and x_rec.shape == x.shape


def test_authors_checkpoint_loads_for_stylegan2(fixtures):
    E = load_encoder(fixtures / "dse-encoder-stylegan2" / "E_model_ep6_iter29999.pth", gan="stylegan2")
    assert E.family == "stylegan2" and E.latent_shapes["ws"][0] == StyleGAN2Config.standard(32).num_ws
