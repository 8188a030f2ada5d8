"""The BigGAN plugin: parity with huggingface/pytorch-pretrained-BigGAN, the reader's errors, the contract."""

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import dse_core
from dse_core import CheckpointError
from dse_core.cli import main
from dse_core.testing import check_generator_contract
from dse_plugin_biggan import FAMILY, BigGANConfig, Generator
from dse_plugin_biggan.convert import load_hf, sniff_hf

TOL = 1e-4
CASES = {"img_t40": 0.40, "img_t55": 0.55, "img_t100": 1.00}
FIXTURE_CONFIG = BigGANConfig(resolution=32, channels=(64, 64, 64, 32, 16, 8, 4),
                              upsample=(False, True, False, True, False, True), attention=3, z_dim=16, embed_dim=16,
                              c_dim=10, n_stats=51, eps=1e-4)


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.fixture
def hf_folder(fixtures, tmp_path) -> Path:
    """The fixture in the hub's layout: pytorch_model.bin + config.json (the fixture's model_config.json)."""
    src, folder = fixtures / "biggan-hf", tmp_path / "biggan-hf"
    folder.mkdir()
    shutil.copy(src / "pytorch_model.bin", folder / "pytorch_model.bin")
    shutil.copy(src / "model_config.json", folder / "config.json")
    return folder


@pytest.fixture
def cases(fixtures):
    return load_file(fixtures / "biggan-hf" / "cases.safetensors")


def check_parity(G, cases):
    with torch.no_grad():
        for name, psi in CASES.items():
            assert max_diff(G(cases["z"], cases["class_onehot"], truncation_psi=psi), cases[name]) <= TOL, name


# -- parity ----------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["folder", "weights file"])
def test_hf_model_matches_reference(hf_folder, cases, which):
    path = hf_folder if which == "folder" else hf_folder / "pytorch_model.bin"
    G = dse_core.load_generator(path)
    assert G.family == "biggan" and G.source["format"] == "biggan/hf" and not G.training
    assert G.config == FIXTURE_CONFIG
    check_parity(G, cases)


def test_reader_directly(hf_folder, cases):
    assert sniff_hf(hf_folder) and sniff_hf(hf_folder / "pytorch_model.bin")
    check_parity(load_hf(hf_folder), cases)


@pytest.mark.parametrize("which", ["folder", "weights file"])
def test_converted_folder_keeps_parity(hf_folder, cases, tmp_path, which):
    path = hf_folder if which == "folder" else hf_folder / "pytorch_model.bin"
    out = tmp_path / "converted"
    assert main(["convert", str(path), "--gan", "biggan", "-o", str(out)]) == 0
    G = dse_core.load_generator(out)
    assert type(G) is Generator and G.config == FIXTURE_CONFIG and G.source["format"] == "biggan/hf"
    if which == "weights file":  # the core records the sha256 of a file it converts (not of a folder)
        assert G.source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    check_parity(G, cases)


def test_truncation_lives_in_the_latents(hf_folder, cases):
    G = load_hf(hf_folder)
    with torch.no_grad():
        for name, psi in CASES.items():
            latents = G.sample_latents(cases["z"], cases["class_onehot"], truncation_psi=psi)
            assert max_diff(G.decode(latents), cases[name]) <= TOL
            for dtype in (torch.float32, torch.float64):  # a float32 0.4 still reads row 20, as the reference's 0.4
                latents["truncation"] = latents["truncation"].to(dtype)
                assert max_diff(G.decode(latents), cases[name]) <= TOL
        # per-sample truncations: each sample as it would be alone
        z, c = cases["z"], cases["class_onehot"]
        mixed = G.decode({"z": z, "c": c, "truncation": torch.tensor([0.4, 0.55, 1.0])})
        for i, name in enumerate(CASES):
            assert max_diff(mixed[i], cases[name][i]) <= TOL


def test_truncation_outside_the_statistics_is_refused(hf_folder, cases):
    G = load_hf(hf_folder)
    with pytest.raises(ValueError, match="truncation"):
        G(cases["z"], cases["class_onehot"], truncation_psi=1.5)
    with pytest.raises(ValueError, match="truncation_cutoff"):
        G(cases["z"], cases["class_onehot"], truncation_psi=0.5, truncation_cutoff=2)


# -- reader errors -----------------------------------------------------------------------

def test_damaged_tensor_names_itself(hf_folder):
    weights = hf_folder / "pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    state["generator.layers.4.conv_1.weight_orig"] = state["generator.layers.4.conv_1.weight_orig"][:, :-1]
    torch.save(state, weights)
    with pytest.raises(CheckpointError, match=r"generator\.layers\.4\.conv_1\.weight_orig: file \(8, 7, 3, 3\)"):
        load_hf(hf_folder)


def test_missing_and_unexpected_tensors_are_named(hf_folder):
    weights = hf_folder / "pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    del state["generator.bn.running_vars"]
    state["generator.extra"] = torch.zeros(2)
    torch.save(state, weights)
    with pytest.raises(CheckpointError, match=r"missing 1 tensor \(generator\.bn\.running_vars\).*generator\.extra"):
        load_hf(hf_folder)


def test_config_that_contradicts_the_weights_is_refused(hf_folder):
    config = hf_folder / "config.json"
    config.write_text(config.read_text().replace('"channel_width": 4', '"channel_width": 8'))
    with pytest.raises(CheckpointError, match="channel_width x layers"):
        load_hf(hf_folder)


def test_weights_without_config_are_recognised_and_the_missing_file_named(hf_folder, capsys):
    (hf_folder / "config.json").unlink()
    assert sniff_hf(hf_folder) and sniff_hf(hf_folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="no config.json beside it.*download it from the same model repo"):
        load_hf(hf_folder)
    assert main(["convert", str(hf_folder), "-o", str(hf_folder.parent / "out")]) != 0
    err = capsys.readouterr().err
    assert "pytorch_model.bin: no config.json beside it" in err and "not a recognised" not in err


def test_truncation_above_one_is_a_user_error(hf_folder, tmp_path, capsys):
    code = main(["sample", "--gan", "biggan", "--generator", str(hf_folder), "--class", "3", "--truncation", "1.5",
                 "-n", "2", "-o", str(tmp_path / "s.png")])
    err = capsys.readouterr().err
    assert code != 0 and "takes psi from 0 to 1" in err and "plugin" not in err


def test_class_vector_takes_indices_names_one_hot_and_probabilities():
    G = Generator(FAMILY.tiny_config)
    onehot = G.class_vector([1, 3])
    assert torch.equal(G.class_vector(3), onehot[1:]) and torch.equal(G.class_vector("3"), onehot[1:])
    assert torch.equal(G.class_vector(torch.tensor([1, 3])), onehot)
    assert torch.equal(G.class_vector(onehot), onehot)
    mixture = torch.tensor([[0.5, 0.5, 0.0, 0.0, 0.0]])
    assert torch.equal(G.class_vector(mixture), mixture)
    with pytest.raises(dse_core.DseError, match="rows of one-hot or probabilities"):
        G.class_vector(torch.ones(1, 5))


def test_two_training_forwards_before_one_backward():
    """The power iteration updates u, v in place; each graph keeps the vectors it used (as spectral_norm does)."""
    G = Generator(FAMILY.tiny_config).train()
    z, c = torch.randn(2, G.z_dim), G.sample_c(2)
    (G(z, c).mean() + G(z, c).mean()).backward()
    assert G.dense.weight.grad is not None


# -- contract ------------------------------------------------------------------------------

def test_generator_contract(tmp_path):
    check_generator_contract(FAMILY, FAMILY.tiny_config, tmp_path)


def test_no_attention_config():
    G = Generator(BigGANConfig(resolution=8, channels=(16, 8), upsample=(True,), attention=None, z_dim=4,
                               embed_dim=4, c_dim=3, n_stats=3)).eval()
    with torch.no_grad():
        assert G(torch.randn(2, 4), G.class_vector([0, 2]), truncation_psi=0.7).shape == (2, 3, 8, 8)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="resolution"):
        BigGANConfig(resolution=32, channels=(16, 8), upsample=(True,))
    with pytest.raises(ValueError, match="halves"):
        BigGANConfig(resolution=8, channels=(16, 4), upsample=(True,))


def test_statistics_between_rows_weigh_as_the_reference():
    """Between grid points the reference weighs row k by the fraction and row k+1 by 1 - fraction (the fixture's
    0.55 sits at a midpoint, 27.5 rows, where either order gives the same): kept as the released weights expect."""
    from dse_plugin_biggan.model import Truncation

    table = torch.arange(51.0)[:, None]
    assert Truncation(torch.tensor([0.405]), 51).read(table).item() == pytest.approx(20 * 0.25 + 21 * 0.75, abs=1e-5)
    assert Truncation(torch.tensor([0.4]), 51).read(table).item() == 20  # a float32 0.4 reads row 20 exactly
    assert Truncation(torch.tensor([0.0, 1.0], dtype=torch.float64), 51).read(table).flatten().tolist() == [0, 50]
