"""Parity with the reference implementations' own outputs (max abs diff <= 1e-4), loading files as users hold them."""

import pytest
import torch
from safetensors.torch import load_file

import dse_core
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


@pytest.mark.parametrize("name, check", [("stylegan2-rosinality/checkpoint.pt", check_rosinality_cases),
                                         ("stylegan2-genforce/checkpoint.pth", check_genforce_cases)])
def test_converted_folder_keeps_parity(fixtures, tmp_path, name, check):
    out = tmp_path / "converted"
    assert main(["convert", str(fixtures / name), "-o", str(out)]) == 0
    G = dse_core.load_generator(out)
    check(G, load_file(fixtures / name.split("/")[0] / "cases.safetensors"))
    assert G.source["sha256"] == dse_core.models.hub.sha256_of(fixtures / name)
