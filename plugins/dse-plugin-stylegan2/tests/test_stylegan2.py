"""The StyleGAN2 generator: contract, official sizes, and checkpoint readers on files we make ourselves."""

import argparse
import os

import pytest
import torch

import dse_core
from dse_core.errors import CheckpointError
from dse_core.testing import check_generator_contract
from dse_plugin_stylegan2 import FAMILY, Generator, StyleGAN2Config
from dse_plugin_stylegan2.convert import load_rosinality


def tiny(**overrides):
    return StyleGAN2Config(**{"resolution": 16, "channels": {4: 16, 8: 12, 16: 8}, "z_dim": 12, "w_dim": 10,
                              "mapping_layers": 2, **overrides})


def perturbed(config):
    """A generator whose every tensor is non-trivial (biases, noise strengths, w_avg away from init)."""
    G = Generator(config).eval()
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        G.mapping.w_avg.normal_()
    return G


def test_contract(tmp_path):
    check_generator_contract(FAMILY, tiny(), tmp_path)


def test_contract_conditional_and_clamped(tmp_path):
    check_generator_contract(FAMILY, tiny(c_dim=5, conv_clamp=0.5), tmp_path)


@pytest.mark.parametrize("resolution, num_ws, params", [(256, 14, 30_034_338), (512, 16, 30_276_583), (1024, 18, 30_370_060)])
def test_official_sizes_build(resolution, num_ws, params):
    with torch.device("meta"):
        G = Generator(StyleGAN2Config.standard(resolution))
    assert G.num_ws == num_ws and G.resolution == resolution
    # 30,370,060 is the parameter count NVlabs reports for config F at 1024 px
    assert sum(p.numel() for p in G.parameters()) == params


def test_channel_plan_and_resolution_are_validated():
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Config(resolution=48, channels={})
    with pytest.raises(ValueError, match="each resolution"):
        StyleGAN2Config(resolution=16, channels={4: 8, 8: 8})


# -- foreign files made here: the readers must infer any architecture from names and shapes ---------

def to_rosinality(G):
    """Our tensors under rosinality's names (up-conv kernels flipped, as that code stores them)."""
    s, out = G.state_dict(), {}
    cfg = G.config
    for i in range(cfg.mapping_layers):
        out[f"style.{i + 1}.weight"], out[f"style.{i + 1}.bias"] = s[f"mapping.fc{i}.weight"], s[f"mapping.fc{i}.bias"]
    out["input.input"] = s["synthesis.b4.const"][None]
    f = torch.tensor(cfg.resample_filter)
    kernel = torch.outer(f, f) / torch.outer(f, f).sum()

    def conv(theirs, ours, noise_index, flip=False):
        w = s[f"{ours}.weight"]
        out[f"{theirs}.conv.weight"] = (w.flip(2, 3) if flip else w)[None]
        out[f"{theirs}.conv.modulation.weight"] = s[f"{ours}.affine.weight"]
        out[f"{theirs}.conv.modulation.bias"] = s[f"{ours}.affine.bias"]
        out[f"{theirs}.noise.weight"] = s[f"{ours}.noise_strength"].reshape(1)
        out[f"{theirs}.activate.bias"] = s[f"{ours}.bias"]
        out[f"noises.noise_{noise_index}"] = s[f"{ours}.noise_const"][None, None]
        if flip:
            out[f"{theirs}.conv.blur.kernel"] = kernel * 4

    def rgb(theirs, ours):
        out[f"{theirs}.conv.weight"] = s[f"{ours}.weight"][None]
        out[f"{theirs}.conv.modulation.weight"] = s[f"{ours}.affine.weight"]
        out[f"{theirs}.conv.modulation.bias"] = s[f"{ours}.affine.bias"]
        out[f"{theirs}.bias"] = s[f"{ours}.bias"].reshape(1, -1, 1, 1)

    conv("conv1", "synthesis.b4.conv1", 0)
    rgb("to_rgb1", "synthesis.b4.torgb")
    for j, res in enumerate(sorted(cfg.channels)[1:]):
        conv(f"convs.{2 * j}", f"synthesis.b{res}.conv0", 2 * j + 1, flip=True)
        conv(f"convs.{2 * j + 1}", f"synthesis.b{res}.conv1", 2 * j + 2)
        rgb(f"to_rgbs.{j}", f"synthesis.b{res}.torgb")
        out[f"to_rgbs.{j}.upsample.kernel"] = kernel * 4
    return out


def to_genforce(G):
    s, out = G.state_dict(), {}
    cfg = G.config
    for i in range(cfg.mapping_layers):
        out[f"mapping.dense{i}.weight"], out[f"mapping.dense{i}.bias"] = s[f"mapping.fc{i}.weight"], s[f"mapping.fc{i}.bias"]
    out["truncation.w_avg"] = s["mapping.w_avg"]
    out["synthesis.early_layer.const"] = s["synthesis.b4.const"][None]

    def layer(theirs, ours, noise=True):
        out[f"{theirs}.weight"], out[f"{theirs}.bias"] = s[f"{ours}.weight"], s[f"{ours}.bias"]
        out[f"{theirs}.style.weight"], out[f"{theirs}.style.bias"] = s[f"{ours}.affine.weight"], s[f"{ours}.affine.bias"] - 1
        if noise:
            out[f"{theirs}.noise"] = s[f"{ours}.noise_const"][None, None]
            out[f"{theirs}.noise_strength"] = s[f"{ours}.noise_strength"]

    layer("synthesis.layer0", "synthesis.b4.conv1")
    layer("synthesis.output0", "synthesis.b4.torgb", noise=False)
    for j, res in enumerate(sorted(cfg.channels)[1:]):
        layer(f"synthesis.layer{2 * j + 1}", f"synthesis.b{res}.conv0")
        layer(f"synthesis.layer{2 * j + 2}", f"synthesis.b{res}.conv1")
        layer(f"synthesis.output{j + 1}", f"synthesis.b{res}.torgb", noise=False)
    return out


ARCHS = [
    dict(resolution=64, channels={4: 24, 8: 24, 16: 16, 32: 12, 64: 8}, z_dim=20, w_dim=20, mapping_layers=3),
    dict(resolution=8, channels={4: 6, 8: 5}, z_dim=7, w_dim=7, mapping_layers=1),
]


@pytest.mark.parametrize("arch", ARCHS)
def test_rosinality_files_of_other_sizes(tmp_path, arch):
    G = perturbed(StyleGAN2Config(**arch))
    path = tmp_path / "ckpt.pt"
    torch.save({"g_ema": to_rosinality(G), "latent_avg": G.mapping.w_avg.clone()}, path)
    loaded = dse_core.load_generator(path)
    assert loaded.config == G.config
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        assert torch.allclose(loaded(z, truncation_psi=0.6), G(z, truncation_psi=0.6), atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS + [dict(resolution=16, channels={4: 8, 8: 8, 16: 4}, z_dim=12, w_dim=6,
                                               mapping_layers=3, mapping_features=9)])
def test_genforce_files_of_other_sizes(tmp_path, arch):
    G = perturbed(StyleGAN2Config(**arch))
    path = tmp_path / "ckpt.pth"
    torch.save({"generator": to_genforce(G), "discriminator": {"x": torch.zeros(1)}}, path)
    loaded = dse_core.load_generator(path, gan="stylegan2")
    assert loaded.config == G.config
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        assert torch.allclose(loaded(z, truncation_psi=0.5, truncation_cutoff=2), G(z, truncation_psi=0.5, truncation_cutoff=2), atol=1e-5)


def test_rosinality_training_checkpoint_with_args_and_no_latent_avg(tmp_path):
    G = perturbed(StyleGAN2Config(**ARCHS[0]))
    state = to_rosinality(G)
    optim = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}}, "param_groups": [{"lr": 0.002, "params": [0]}]}
    path = tmp_path / "020000.pt"
    torch.save({"g": state, "d": {"convs.0.0.weight": torch.zeros(1)}, "g_ema": state, "g_optim": optim,
                "d_optim": optim, "args": argparse.Namespace(size=64, latent=20, n_mlp=3), "ada_aug_p": 0.1}, path)
    loaded = load_rosinality(path)
    assert loaded.config == G.config
    with torch.no_grad():
        z = torch.randn(10_000, G.z_dim, generator=torch.Generator().manual_seed(0))
        expected = G.mapping(z)[:, 0].mean(0)
    assert torch.allclose(loaded.mapping.w_avg, expected, atol=1e-5)


def test_checkpoint_needing_other_globals_is_refused(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    G = perturbed(StyleGAN2Config(**ARCHS[1]))
    path = tmp_path / "bad.pt"
    torch.save({"g_ema": to_rosinality(G), "args": Sneaky()}, path)
    with pytest.raises(CheckpointError, match="posix.system|os.system"):
        dse_core.load_generator(path)
    assert not (tmp_path / "ran").exists()


def test_missing_tensor_is_named(tmp_path):
    G = perturbed(StyleGAN2Config(**ARCHS[1]))
    state = to_rosinality(G)
    del state["convs.1.activate.bias"]
    path = tmp_path / "broken.pt"
    torch.save({"g_ema": state}, path)
    with pytest.raises(CheckpointError, match="convs.1.activate.bias"):
        dse_core.load_generator(path)


def test_genforce_resnet_architecture_is_refused_clearly(tmp_path):
    G = perturbed(StyleGAN2Config(**ARCHS[0]))
    state = {k: v for k, v in to_genforce(G).items() if not k.startswith("synthesis.output") or k.startswith("synthesis.output4")}
    path = tmp_path / "resnet.pth"
    torch.save({"generator_smooth": state}, path)
    with pytest.raises(CheckpointError, match="only the 'skip' StyleGAN2 architecture"):
        dse_core.load_generator(path)
