"""What the style-based families share in the core: the paper's Table I encoder plan, per-layer truncation targets."""

import pytest
import torch

import dse_core
from dse_core import style_encoder_plan, truncate

TABLE_I = {256: [64, 128, 256, 512, 512, 512, 512], 512: [32, 64, 128, 256, 512, 512, 512, 512],
           1024: [16, 32, 64, 128, 256, 512, 512, 512, 512]}


@pytest.mark.parametrize("resolution", sorted(TABLE_I))
def test_style_encoder_plan_uses_table_i_at_the_papers_sizes(resolution):
    generator_channels = {4 * 2**i: 512 for i in range(int(resolution).bit_length() - 3)}
    num_ws = 2 * len(TABLE_I[resolution])
    plan = style_encoder_plan("stylegan", resolution, generator_channels, 3, 512, num_ws)
    assert [plan.channels[r] for r in sorted(plan.channels, reverse=True)] == TABLE_I[resolution]
    assert (plan.family, plan.num_ws, plan.w_dim, plan.img_channels) == ("stylegan", num_ws, 512, 3)


def test_style_encoder_plan_mirrors_the_generator_elsewhere():
    plan = style_encoder_plan("stylegan2", 32, {4: 64, 8: 64, 16: 48, 32: 32}, 1, 24, 8)
    assert list(plan.channels.items()) == [(32, 32), (16, 48), (8, 64), (4, 64)]  # image size first
    assert (plan.num_ws, plan.w_dim, plan.img_channels) == (8, 24, 1)


def test_an_encoder_built_from_the_plan_gives_one_w_per_generator_layer():
    plan = style_encoder_plan("stylegan", 16, {4: 16, 8: 12, 16: 8}, 3, 10, 6)
    with torch.no_grad():
        latents = dse_core.Encoder(plan)(torch.randn(2, 3, 16, 16))
    assert set(latents) == {"ws"} and latents["ws"].shape == (2, 6, 10)


def test_truncate_towards_one_row_per_layer_with_a_cutoff():
    ws = torch.ones(2, 4, 3)
    w_avg = torch.arange(12.0).view(4, 3)
    out = truncate(ws, w_avg, 0.5, 2)
    assert torch.equal(out[:, :2], (w_avg[:2] + 1) / 2 * torch.ones(2, 1, 1)) and torch.equal(out[:, 2:], ws[:, 2:])
    assert torch.equal(truncate(ws, w_avg, 0.0, None), w_avg.expand(2, 4, 3))
    assert torch.equal(truncate(ws, w_avg[0], 0.0, 1)[:, 0], w_avg[0].expand(2, 3))  # one vector, as before
