"""Parity with the reference implementations' own outputs (max abs diff <= 1e-4), loading files as users hold them."""

import pytest
import torch
from safetensors.torch import load_file

import dse_core
from dse_core import CheckpointError
from dse_core.cli import main

TOL = 1e-4


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.fixture
def rosinality(fixtures):
    return fixtures / "stylegan2-rosinality"


@pytest.fixture
def genforce(fixtures):
    return fixtures / "stylegan2-genforce"


def check_rosinality_cases(G, cases):
    with torch.no_grad():
        ws = G.mapping(cases["z"])
        assert max_diff(ws, cases["w"].unsqueeze(1).expand_as(ws)) <= TOL
        assert max_diff(G(cases["z"]), cases["img_z"]) <= TOL
        assert max_diff(G.synthesis(cases["wplus"]), cases["img_wplus"]) <= TOL
        assert max_diff(G(cases["z"], truncation_psi=0.7), cases["img_trunc"]) <= TOL
        assert torch.equal(G.mapping.w_avg, cases["latent_avg"])


def check_genforce_cases(G, cases):
    with torch.no_grad():
        assert max_diff(G.mapping(cases["z"]), cases["wp"]) <= TOL
        assert max_diff(G(cases["z"]), cases["img_z"]) <= TOL
        assert max_diff(G(cases["z"], truncation_psi=0.7, truncation_cutoff=G.num_ws // 2), cases["img_trunc"]) <= TOL
        assert max_diff(G.synthesis(cases["wp_edit"]), cases["img_wp_edit"]) <= TOL


def test_rosinality_checkpoint_matches_reference(rosinality):
    G = dse_core.load_generator(rosinality / "checkpoint.pt")
    assert G.family == "stylegan2" and G.source["format"] == "stylegan2/rosinality"
    assert G.config.channels == {4: 32, 8: 32, 16: 32, 32: 32} and G.config.mapping_layers == 2 and G.w_dim == 64
    check_rosinality_cases(G, load_file(rosinality / "cases.safetensors"))


def test_genforce_checkpoint_matches_reference(genforce):
    G = dse_core.load_generator(genforce / "checkpoint.pth", gan="stylegan2")
    assert G.source["format"] == "stylegan2/genforce"
    assert G.config.channels == {4: 32, 8: 32, 16: 32, 32: 16} and G.num_ws == 8
    check_genforce_cases(G, load_file(genforce / "cases.safetensors"))


def test_genforce_training_checkpoint_matches_reference(genforce, tmp_path):
    """The generator as genforce's runner saves it: under "models", beside G and D, with optimizer states."""
    state = dict(torch.load(genforce / "checkpoint.pth", weights_only=True)["generator_smooth"])
    unsmoothed = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}  # not the one to read

    def save(path, smooth):
        torch.save({"models": {"generator_smooth": smooth, "generator": unsmoothed,
                               "discriminator": {"layer0.weight": torch.zeros(4, 3, 1, 1)}},
                    "optimizers": {}}, path)
        return path

    G = dse_core.load_generator(save(tmp_path / "ckpt.pth", state))
    assert G.source["format"] == "stylegan2/genforce"
    check_genforce_cases(G, load_file(genforce / "cases.safetensors"))

    damaged = {k: v for k, v in state.items() if k != "mapping.dense1.bias"}
    with pytest.raises(CheckpointError) as err:
        dse_core.load_generator(save(tmp_path / "damaged.pth", damaged), gan="stylegan2")
    assert "models.generator_smooth: cannot read it as a StyleGAN2 generator" in str(err.value)
    assert "missing 1 tensor (mapping.dense1.bias)" in str(err.value)


@pytest.mark.parametrize("name, check", [("stylegan2-rosinality/checkpoint.pt", check_rosinality_cases),
                                         ("stylegan2-genforce/checkpoint.pth", check_genforce_cases)])
def test_converted_folder_keeps_parity(fixtures, tmp_path, name, check):
    out = tmp_path / "converted"
    assert main(["convert", str(fixtures / name), "-o", str(out)]) == 0
    G = dse_core.load_generator(out)
    check(G, load_file(fixtures / name.split("/")[0] / "cases.safetensors"))
    assert G.source["sha256"] == dse_core.models.hub.sha256_of(fixtures / name)
