"""`dse convert` on the DSE authors' encoder checkpoints: the converted folder keeps parity."""

import json

import torch
from safetensors.torch import load_file

from dse_core import load_encoder
from dse_core.cli import main


def test_authors_encoder_converts_and_keeps_parity(fixtures, tmp_path, capsys):
    src = fixtures / "dse-encoder-stylegan2" / "E_model_ep6_iter29999.pth"
    out = tmp_path / "dse-e"
    # StyleGAN1 and StyleGAN2 both read the authors' BE, so the family is named
    assert main(["convert", str(src), "--gan", "stylegan2", "-o", str(out)]) == 0
    assert "stylegan2 encoder, 32px, predicts ws (8, 512)" in capsys.readouterr().out
    header = json.loads((out / "config.json").read_text())
    assert header["kind"] == "encoder" and header["source"]["format"] == "stylegan2/dse-authors"
    assert "w_dim" in header["config"] and "c_dim" in header["config"] and "cond_dim" not in header["config"]
    cases = load_file(fixtures / "dse-encoder-stylegan2" / "cases.safetensors")
    E = load_encoder(out)
    with torch.no_grad():
        ws, zc = E(cases["x"])["ws"], E.features(cases["x"])[0]
    assert (ws - cases["w"]).abs().max() <= 1e-4
    assert (zc - cases["zc"]).abs().max() <= 1e-4
