"""Parity with the reference implementations' own outputs (max abs diff <= 1e-4), loading files as users hold them."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

import dse_core
from dse_core import CheckpointError
from dse_core.cli import main

TOL = 1e-4
AUTHORS_FILES = ("Gs_dict.pth", "Gm_dict.pth", "center_tensor.pt")


def max_diff(a, b):
    return (a - b).abs().max().item()


def check_genforce_cases(G, cases):
    with torch.no_grad():
        assert max_diff(G.mapping(cases["z"]), cases["wp"]) <= TOL
        assert max_diff(G(cases["z"]), cases["img_z"]) <= TOL
        assert max_diff(G(cases["z"], truncation_psi=0.7, truncation_cutoff=G.num_ws // 2), cases["img_trunc"]) <= TOL
        assert max_diff(G.synthesis(cases["wp_edit"]), cases["img_wp_edit"]) <= TOL


def check_authors_cases(G, cases):
    with torch.no_grad():
        assert max_diff(G.mapping(cases["z"]), cases["w"]) <= TOL
        # the authors' sampling: psi 0.7 towards each layer's centre row on the first num_ws // 2 layers, by default
        assert max_diff(G.mapping(cases["z"], truncation_psi=0.7), cases["w_trunc"]) <= TOL
        assert max_diff(G(cases["z"]), cases["img_z"]) <= TOL
        assert max_diff(G(cases["z"], truncation_psi=0.7), cases["img_trunc"]) <= TOL
        assert max_diff(G.synthesis(cases["wp_edit"]), cases["img_wp_edit"]) <= TOL


def test_genforce_checkpoint_matches_reference(fixtures):
    G = dse_core.load_generator(fixtures / "stylegan-genforce" / "checkpoint.pth", gan="stylegan")
    assert G.source["format"] == "stylegan/genforce"
    assert G.config.channels == {4: 32, 8: 32, 16: 32, 32: 16} and G.num_ws == 8 and G.config.mapping_layers == 2
    assert G.config.truncation_cutoff == 8 and not G.config.w_avg_per_layer
    check_genforce_cases(G, load_file(fixtures / "stylegan-genforce" / "cases.safetensors"))


def genforce_training_checkpoint(fixture, path, edit=None):
    """``fixture``'s generator saved as genforce's runner saves it: under "models", beside G and D, with optimizers."""
    state = dict(torch.load(fixture, weights_only=True)["generator_smooth"])
    if edit is not None:
        edit(state)
    unsmoothed = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}  # not the one to read
    torch.save({"models": {"generator_smooth": state, "generator": unsmoothed,
                           "discriminator": {"layer0.weight": torch.zeros(4, 3, 1, 1)}},
                "optimizers": {}}, path)
    return path


def test_genforce_training_checkpoint_matches_reference(fixtures, tmp_path):
    fixture = fixtures / "stylegan-genforce" / "checkpoint.pth"
    G = dse_core.load_generator(genforce_training_checkpoint(fixture, tmp_path / "ckpt.pth"))
    assert G.source["format"] == "stylegan/genforce"
    check_genforce_cases(G, load_file(fixtures / "stylegan-genforce" / "cases.safetensors"))

    damaged = genforce_training_checkpoint(fixture, tmp_path / "damaged.pth", lambda s: s.pop("mapping.dense1.bias"))
    with pytest.raises(CheckpointError) as err:
        dse_core.load_generator(damaged, gan="stylegan")
    assert "models.generator_smooth: cannot read it as a StyleGAN generator" in str(err.value)
    assert "missing 1 tensor (mapping.dense1.bias)" in str(err.value)


@pytest.mark.parametrize("given", ["", *AUTHORS_FILES])
def test_authors_folder_or_any_one_file_matches_reference(fixtures, given):
    G = dse_core.load_generator(fixtures / "stylegan1-dse" / given)
    assert G.source["format"] == "stylegan/dse-authors"
    assert G.config.resolution == 128 and G.config.channels == {4: 32, 8: 32, 16: 32, 32: 16, 64: 8, 128: 4}
    assert G.config.truncation_cutoff == 6 and G.mapping.w_avg.shape == (12, 64)
    assert all(b.abs().sum() == 0 for n, b in G.named_buffers() if n.endswith("noise_const"))  # noise off
    check_authors_cases(G, load_file(fixtures / "stylegan1-dse" / "cases.safetensors"))


def test_authors_noise_maps_drawn_per_forward_match_with_those_maps(fixtures):
    """img_noise: each sample with the maps the authors' forward drew (block 0's first map is shared by the batch)."""
    G = dse_core.load_generator(fixtures / "stylegan1-dse")
    cases = load_file(fixtures / "stylegan1-dse" / "cases.safetensors")
    layers = [m for name, m in G.synthesis.named_modules() if name.endswith(("conv0", "conv1"))]
    images = []
    with torch.no_grad():
        for n in range(len(cases["z"])):
            for i, layer in enumerate(layers):
                maps = cases[f"noise_{i:02d}"]
                layer.noise_const.copy_(maps[min(n, len(maps) - 1), 0])
            images.append(G.synthesis(cases["w_trunc"][n : n + 1]))
    assert max_diff(torch.cat(images), cases["img_noise"]) <= TOL
    assert max_diff(cases["img_noise"], cases["img_trunc"]) > 0.5  # the noise strengths matter in this case


@pytest.mark.parametrize("name, check", [("stylegan-genforce/checkpoint.pth", check_genforce_cases),
                                         ("stylegan1-dse", check_authors_cases),
                                         ("stylegan1-dse/Gs_dict.pth", check_authors_cases)])
def test_converted_folder_keeps_parity(fixtures, tmp_path, name, check):
    out = tmp_path / "converted"
    assert main(["convert", str(fixtures / name), "--gan", "stylegan", "-o", str(out)]) == 0
    G = dse_core.load_generator(out)
    assert G.family == "stylegan"
    check(G, load_file(fixtures / name.split("/")[0] / "cases.safetensors"))
    G2 = type(G).from_pretrained(out)
    assert G2.config == G.config and G2.config.w_avg_per_layer == (name.startswith("stylegan1"))


def test_genforce_128px_with_a_wider_mapping_matches_genforce(own_fixtures):
    """Another architecture (fused up-conv at 128 px, mapping width 24 != w_dim 16), outputs genforce computed."""
    G = dse_core.load_generator(own_fixtures / "genforce-128" / "checkpoint.pth")
    assert G.config.resolution == 128 and G.config.mapping_layers == 3 and G.config.mapping_features == 24
    assert G.config.channels == {4: 8, 8: 8, 16: 8, 32: 8, 64: 8, 128: 4}
    cases = load_file(own_fixtures / "genforce-128" / "cases.safetensors")
    with torch.no_grad():
        assert max_diff(G(cases["z"], truncation_psi=1), cases["img_z"]) <= TOL
        assert max_diff(G(cases["z"], truncation_psi=0.7), cases["img_trunc"]) <= TOL  # cutoff 8 by default


def test_authors_grayscale_128px_with_a_wider_mapping_matches_their_code(own_fixtures, tmp_path):
    """Another architecture (one image channel, mapping width 24 != w_dim 16, the fused up-conv at 128 px),
    every case the authors' code computed."""
    folder = tmp_path / "gray128"
    shutil.copytree(own_fixtures / "authors-128", folder)
    G = dse_core.load_generator(folder / "center_tensor.pt")
    cfg = G.config
    assert (cfg.resolution, cfg.img_channels, cfg.z_dim, cfg.w_dim, cfg.mapping_layers, cfg.mapping_features) == \
        (128, 1, 16, 16, 8, 24)
    assert cfg.channels == {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 8}
    assert G.num_ws == 12 and cfg.truncation_cutoff == 6 and G.synthesis.b128.conv0.fused
    check_authors_cases(G, load_file(folder / "cases.safetensors"))
