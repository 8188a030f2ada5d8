"""The StyleGAN family: contract, readers' inference and refusals, the encoder plan, training."""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

import dse_core
from dse_core import CheckpointError
from dse_core.testing import check_generator_contract
from dse_plugin_stylegan import FAMILY, Generator, StyleGANConfig
from dse_plugin_stylegan.convert import load_authors, load_genforce, sniff_authors, sniff_genforce
from dse_plugin_stylegan.model import up_kernel


def test_contract(tmp_path):
    check_generator_contract(FAMILY, FAMILY.tiny_config, tmp_path)


@pytest.mark.parametrize("config", [
    # a real size's layer count (num_ws 12), the unfused up-conv at every block, the default cutoff 8 < num_ws
    StyleGANConfig(resolution=64, channels={4: 16, 8: 16, 16: 12, 32: 8, 64: 4}, z_dim=12, w_dim=10, mapping_layers=3),
    # the DSE authors' truncation: one w_avg row per layer, only the first 3 of 8 layers truncated by default
    StyleGANConfig(resolution=32, channels={4: 12, 8: 10, 16: 8, 32: 6}, z_dim=8, w_dim=10, mapping_layers=2,
                   w_avg_per_layer=True, truncation_cutoff=3, fused_up_resolution=32),
], ids=["64px", "w_avg_per_layer-cutoff3"])
def test_contract_beyond_the_tiny_config(tmp_path, config):
    check_generator_contract(FAMILY, config, tmp_path)


def test_tiny_config_runs_both_upsampling_paths():
    G = Generator(FAMILY.tiny_config)
    assert (G.synthesis.b8.conv0.fused, G.synthesis.b16.conv0.fused) == (False, True)


@pytest.mark.parametrize("resolution, num_ws, params", [(256, 14, 26.2e6), (1024, 18, 26.2e6)])
def test_official_sizes_build(resolution, num_ws, params):
    with torch.device("meta"):
        G = Generator(StyleGANConfig.standard(resolution))
    assert G.num_ws == num_ws and G.config.channels[resolution] == 16384 // resolution
    assert abs(sum(p.numel() for p in G.parameters()) - params) / params < 0.02


@pytest.mark.parametrize("fused", [False, True])
def test_upsampling_as_a_transposed_conv_is_nearest_2x_then_conv(fused):
    """Unfused: nearest 2x + 3x3 conv; fused (official): the same with the kernel flipped. No 0.25 factor."""
    x, w = torch.randn(2, 5, 6, 6, dtype=torch.float64), torch.randn(3, 5, 3, 3, dtype=torch.float64)
    nearest = F.conv2d(F.interpolate(x, scale_factor=2.0), w.flip(2, 3) if fused else w, padding=1)
    transposed = F.conv_transpose2d(x, up_kernel(w, fused), stride=2, padding=1)
    assert (nearest - transposed).abs().max() < 1e-12
    assert (nearest - F.conv_transpose2d(x, up_kernel(w, not fused), stride=2, padding=1)).abs().max() > 0.1


def test_unfused_layers_give_the_same_images_on_either_side_of_the_transposed_conv_switch(monkeypatch):
    from dse_plugin_stylegan import model

    G = Generator(StyleGANConfig(resolution=64, channels={4: 8, 8: 8, 16: 8, 32: 8, 64: 4}, z_dim=8, w_dim=8,
                                 mapping_layers=1, fused_up_resolution=None)).eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        first = G(z)
        monkeypatch.setattr(model, "TRANSPOSED_FROM", 8)  # every layer through the transposed conv
        assert (G(z) - first).abs().max() < 1e-4 and first.abs().max() > 0.1


def test_per_layer_w_avg_truncates_each_layer_towards_its_row_up_to_the_default_cutoff():
    cfg = StyleGANConfig(resolution=8, channels={4: 4, 8: 4}, z_dim=4, w_dim=4, mapping_layers=1, w_avg_per_layer=True,
                         truncation_cutoff=2)
    G = Generator(cfg)
    centre = torch.arange(16.0).view(4, 4)
    G.mapping.w_avg.copy_(centre)
    z = torch.randn(3, 4)
    ws = G.mapping(z)
    assert torch.allclose(G.mapping(z, truncation_psi=0.0)[:, :2], centre[:2].expand(3, 2, 4))
    assert torch.equal(G.mapping(z, truncation_psi=0.0)[:, 2:], ws[:, 2:])  # beyond the config's cutoff
    assert torch.allclose(G.mapping(z, truncation_psi=0.0, truncation_cutoff=4), centre.expand(3, 4, 4))


# -- readers ---------------------------------------------------------------------------------

def genforce_state(fixtures):
    return torch.load(fixtures / "stylegan-genforce" / "checkpoint.pth", weights_only=True)["generator_smooth"]


def test_sniffers_claim_only_their_own_files(fixtures):
    assert sniff_genforce(fixtures / "stylegan-genforce" / "checkpoint.pth")
    for other in ("stylegan2-genforce/checkpoint.pth", "pggan-genforce/checkpoint.pth",
                  "stylegan2-rosinality/checkpoint.pt", "stylegan1-dse/Gs_dict.pth"):
        assert not sniff_genforce(fixtures / other), other
    assert sniff_authors(fixtures / "stylegan1-dse") and sniff_authors(fixtures / "stylegan1-dse" / "Gm_dict.pth")
    assert not sniff_authors(fixtures / "stylegan-genforce") and not sniff_authors(fixtures / "stylegan-genforce" / "checkpoint.pth")
    stylegan2 = dse_core.get_host().family("stylegan2")
    assert not any(fmt.sniff(fixtures / "stylegan-genforce" / "checkpoint.pth") for fmt in stylegan2.formats)


def test_a_stylegan2_file_given_as_stylegan_names_its_family(fixtures):
    with pytest.raises(CheckpointError) as err:
        dse_core.load_generator(fixtures / "stylegan2-genforce" / "checkpoint.pth", gan="stylegan")
    assert "looks like a stylegan2 generator checkpoint" in str(err.value) and "--gan stylegan2" in str(err.value)


@pytest.mark.parametrize("missing", ["Gs_dict.pth", "Gm_dict.pth", "center_tensor.pt"])
def test_a_missing_sibling_is_named(fixtures, tmp_path, missing):
    folder = tmp_path / "ffhq"
    shutil.copytree(fixtures / "stylegan1-dse", folder)
    (folder / missing).unlink()
    given = folder / next(n for n in ("Gs_dict.pth", "Gm_dict.pth", "center_tensor.pt") if n != missing)
    for path in (folder, given):
        with pytest.raises(CheckpointError) as err:
            dse_core.load_generator(path, gan="stylegan")
        message = err.value.message  # one line; the hint says what to copy where
        assert f"{folder} lacks {missing}" in message and "\n" not in message
        assert f"copy {missing}" in err.value.hint


def test_a_centre_tensor_of_another_model_is_refused(fixtures, tmp_path):
    folder = tmp_path / "ffhq"
    shutil.copytree(fixtures / "stylegan1-dse", folder)
    torch.save(torch.zeros(18, 64), folder / "center_tensor.pt")
    with pytest.raises(CheckpointError, match=r"center_tensor.pt: holds \(18, 64\); expected .* \(12, 64\)"):
        load_authors(folder)


def test_genforce_missing_and_misshaped_tensors_are_named_as_the_file_names_them(fixtures, tmp_path):
    state = dict(genforce_state(fixtures))
    del state["synthesis.layer3.style.bias"]
    state["synthesis.layer4.weight"] = torch.zeros(32, 31, 3, 3)
    torch.save({"generator": state}, tmp_path / "g.pth")
    with pytest.raises(CheckpointError) as err:
        load_genforce(tmp_path / "g.pth")
    message = str(err.value)
    assert "generator: cannot read it as a StyleGAN generator" in message
    assert "missing 1 tensor (synthesis.layer3.style.bias)" in message
    assert "synthesis.layer4.weight: file (32, 31, 3, 3) vs expected (32, 32, 3, 3)" in message


def test_genforce_mid_growth_snapshot_is_refused(fixtures, tmp_path):
    state = dict(genforce_state(fixtures), **{"synthesis.lod": torch.tensor(1.5)})
    torch.save({"generator_smooth": state}, tmp_path / "g.pth")
    with pytest.raises(CheckpointError, match="synthesis.lod is 1.5"):
        load_genforce(tmp_path / "g.pth")


def random_genforce_state(resolution, channels, w_dim=8, z_dim=6, hidden=10, mapping_layers=2, img=1):
    """A genforce StyleGANGenerator state dict built by hand (no genforce code): names and shapes only."""
    g = torch.Generator().manual_seed(resolution)
    r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    feats = [z_dim] + [hidden] * (mapping_layers - 1) + [w_dim]
    state = {}
    for i in range(mapping_layers):
        state[f"mapping.dense{i}.weight"], state[f"mapping.dense{i}.bias"] = r(feats[i + 1], feats[i]), r(feats[i + 1])
    state["truncation.w_avg"], state["synthesis.lod"] = r(w_dim), torch.zeros(())
    res_list = [4 * 2**j for j in range(len(channels))]
    for j, res in enumerate(res_list):
        c = channels[res]
        for k in (2 * j, 2 * j + 1):
            p = f"synthesis.layer{k}"
            if k == 0:
                state[f"{p}.const"] = r(1, c, 4, 4)
            else:
                state[f"{p}.weight"] = r(c, channels[res // 2] if k == 2 * j else c, 3, 3)
            if k == 2 * j and j:
                state[f"{p}.blur.kernel"] = (torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16).expand(c, 1, 3, 3).clone()
            state[f"{p}.bias"], state[f"{p}.apply_noise.weight"] = r(c), r(c)
            state[f"{p}.apply_noise.noise"] = r(1, 1, res, res)
            state[f"{p}.style.weight"], state[f"{p}.style.bias"] = r(2 * c, w_dim), r(2 * c)
        state[f"synthesis.output{j}.weight"], state[f"synthesis.output{j}.bias"] = r(img, c, 1, 1), r(img)
    return state


def test_genforce_layout_of_another_size_is_inferred_from_names_and_shapes(tmp_path):
    channels = {4: 6, 8: 6, 16: 5, 32: 5, 64: 4, 128: 3, 256: 2}
    torch.save({"generator": random_genforce_state(256, channels)}, tmp_path / "g.pth")
    G = dse_core.load_generator(tmp_path / "g.pth")
    cfg = G.config
    assert (cfg.resolution, cfg.channels, cfg.z_dim, cfg.w_dim, cfg.mapping_features, cfg.img_channels) == \
        (256, channels, 6, 8, 10, 1)
    assert G.synthesis.b128.conv0.fused and not G.synthesis.b64.conv0.fused
    with torch.no_grad():
        x = G(torch.randn(2, 6), truncation_psi=0.7)
    assert x.shape == (2, 1, 256, 256) and torch.isfinite(x).all()


def test_genforce_conditional_files_are_refused_clearly(fixtures, tmp_path):
    state = dict(genforce_state(fixtures), **{"mapping.label_weight": torch.zeros(10, 64)})
    torch.save({"generator": state}, tmp_path / "g.pth")
    with pytest.raises(CheckpointError, match="conditional genforce StyleGAN generators"):
        load_genforce(tmp_path / "g.pth")


# -- encoder plan, training -----------------------------------------------------------------

def test_encoder_plan_is_table_i_with_stylegan_layer_count():
    with torch.device("meta"):
        G = Generator(StyleGANConfig.standard(256))
    plan = FAMILY.encoder(G)
    assert (plan.family, plan.num_ws, plan.w_dim) == ("stylegan", 14, 512)
    assert [plan.channels[r] for r in sorted(plan.channels, reverse=True)] == [64, 128, 256, 512, 512, 512, 512]
    small = FAMILY.encoder(FAMILY.tiny_config)
    assert small.channels == {16: 8, 8: 12, 4: 16} and small.num_ws == 6 and small.w_dim == 10


def test_a_few_training_steps_lower_the_loss_latent_term_included(tmp_path):
    torch.manual_seed(1)
    G = Generator(StyleGANConfig(resolution=16, channels={4: 8, 8: 8, 16: 8}, z_dim=8, w_dim=8, mapping_layers=2))
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.2)
        G.mapping.w_avg.copy_(G.mapping(torch.randn(256, 8))[:, 0].mean(0))
    G.save_pretrained(tmp_path / "g")
    dse_core.train_encoder(tmp_path / "run", str(tmp_path / "g"), device="cpu", progress=False, log=lambda m: None,
                           samples=120, batch_size=4, lpips_weight=0.0, log_every=1, grid_every=100, checkpoint_every=100)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    first, last = log[:6], log[-6:]  # single steps are noisy (latent 13 to 33 in the first ten): compare means
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    assert len(log) == 30 and "latent/ws/mse" in log[0]
    assert mean(last, "latent") < 0.8 * mean(first, "latent") and mean(last, "total") < 0.8 * mean(first, "total")
