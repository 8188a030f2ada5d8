"""`dse convert` on the DSE authors' encoder checkpoints: the converted folder keeps parity."""

import json

import torch
from safetensors.torch import load_file

from dse_core import load_encoder
from dse_core.cli import main


def test_authors_encoder_converts_and_keeps_parity(fixtures, tmp_path, capsys):
    src = fixtures / "dse-encoder-stylegan2" / "E_model_ep6_iter29999.pth"
    out = tmp_path / "dse-e"
    assert main(["convert", str(src), "--gan", "stylegan2", "-o", str(out)]) == 0
    assert "stylegan2 encoder, 32px" in capsys.readouterr().out
    header = json.loads((out / "config.json").read_text())
    assert header["kind"] == "encoder" and header["source"]["format"] == "dse-authors/BE"
    cases = load_file(fixtures / "dse-encoder-stylegan2" / "cases.safetensors")
    with torch.no_grad():
        result = load_encoder(out)(cases["x"])
    assert (result.w - cases["w"]).abs().max() <= 1e-4
    assert (result.zc - cases["zc"]).abs().max() <= 1e-4
