"""Encoder <-> generator matching: the fingerprint, the record dse train writes, refusal and --force."""

import copy
import json

import pytest
import torch

from dse_core import DseError, DseWarning, Encoder, generator_fingerprint, load_encoder, load_generator
from dse_core.cli import main
from dse_core.models.format import generator_record
from dse_core.images import save_image
from dse_plugin_stylegan2.encoder import encoder_plan


def other_than(G):
    other = copy.deepcopy(G)
    with torch.no_grad():
        other.mapping.w_avg.add_(1.0)  # one buffer changed is another generator
    return other


def test_the_fingerprint_is_the_weights_not_the_file_format(fixtures, tmp_path):
    G = load_generator(fixtures / "stylegan2-rosinality" / "checkpoint.pt")
    assert main(["convert", str(fixtures / "stylegan2-rosinality" / "checkpoint.pt"), "-o", str(tmp_path / "c")]) == 0
    converted = load_generator(tmp_path / "c")
    assert generator_fingerprint(G) == generator_fingerprint(converted) == generator_fingerprint(copy.deepcopy(G).double())
    assert generator_fingerprint(other_than(G)) != generator_fingerprint(G)
    assert len(generator_fingerprint(G)) == 64


@pytest.fixture
def trained_for(tiny_generator, tmp_path):
    """An encoder folder whose config records the generator in tmp_path/g, as dse train writes it."""
    tiny_generator.save_pretrained(tmp_path / "g")
    G = load_generator(tmp_path / "g")
    torch.manual_seed(0)
    E = Encoder(encoder_plan(G))
    E.save_pretrained(tmp_path / "e", source={"format": "dse-trained", "generator": generator_record(G, tmp_path / "g")})
    other_than(tiny_generator).save_pretrained(tmp_path / "other")
    return tmp_path


def test_an_encoder_refuses_another_generator_unless_forced(trained_for):
    G, other = load_generator(trained_for / "g"), load_generator(trained_for / "other")
    load_encoder(trained_for / "e", generator=G)  # the one it was trained for
    with pytest.raises(DseError) as err:
        load_encoder(trained_for / "e", generator=other)
    text = str(err.value)
    assert f"was trained for generator '{trained_for / 'g'}' (fingerprint {generator_fingerprint(G)[:12]})" in text
    assert f"not for '{trained_for / 'other'}' (fingerprint {generator_fingerprint(other)[:12]})" in text
    with pytest.warns(DseWarning, match="using it anyway"):
        load_encoder(trained_for / "e", generator=other, force=True)


def test_an_encoder_without_a_record_loads_with_a_warning(fixtures, tiny_generator, tmp_path):
    from dse_plugin_stylegan2 import Generator, StyleGAN2Config

    G32 = Generator(StyleGAN2Config(resolution=32, channels={4: 8, 8: 8, 16: 8, 32: 8}, z_dim=8, w_dim=512, mapping_layers=1))
    with pytest.warns(DseWarning, match="records no generator: cannot check"):
        load_encoder(fixtures / "dse-encoder-stylegan2" / "E_model_ep6_iter29999.pth", generator=G32)


def test_dse_train_records_the_fingerprint_and_dse_invert_checks_it(tiny_generator, tmp_path, capsys):
    tiny_generator.save_pretrained(tmp_path / "g")
    other_than(tiny_generator).save_pretrained(tmp_path / "other")
    assert main(["train", "--generator", str(tmp_path / "g"), "-o", str(tmp_path / "run"), "--samples", "2",
                 "--batch-size", "2", "--lpips-weight", "0", "--grid-every", "100", "--checkpoint-every", "100",
                 "--device", "cpu", "--quiet"]) == 0
    record = json.loads((tmp_path / "run" / "encoder" / "config.json").read_text())["source"]["generator"]
    assert record["fingerprint"] == generator_fingerprint(tiny_generator) and record["id"] == str(tmp_path / "g")
    (tmp_path / "in").mkdir()
    save_image(torch.zeros(3, 16, 16), tmp_path / "in" / "a.png")
    common = ["--encoder", str(tmp_path / "run" / "encoder"), str(tmp_path / "in"), "--no-lpips", "--device", "cpu", "--quiet"]
    capsys.readouterr()
    assert main(["invert", "--generator", str(tmp_path / "other"), "-o", str(tmp_path / "o1"), *common]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dse: error: encoder ") and str(tmp_path / "g") in err and str(tmp_path / "other") in err
    assert main(["invert", "--generator", str(tmp_path / "other"), "-o", str(tmp_path / "o2"), "--force", *common]) == 0
    assert "dse: warning: encoder" in capsys.readouterr().err
    assert main(["invert", "--generator", str(tmp_path / "g"), "-o", str(tmp_path / "o3"), *common]) == 0
    assert "warning" not in capsys.readouterr().err


def test_invert_with_only_an_encoder_loads_the_generator_it_was_trained_for(tiny_generator, tmp_path, monkeypatch, capsys,
                                                                            fixtures):
    monkeypatch.chdir(tmp_path)
    tiny_generator.save_pretrained(tmp_path / "g")
    save_image(torch.zeros(3, 16, 16), tmp_path / "in" / "a.png")
    assert main(["train", "--generator", "g", "-o", "run", "--samples", "2", "--batch-size", "2",  # a relative path
                 "--lpips-weight", "0", "--quiet"]) == 0
    monkeypatch.chdir(tmp_path / "in")  # elsewhere: the recorded path still leads to g
    assert main(["invert", "a.png", "--encoder", str(tmp_path / "run"), "-o", str(tmp_path / "out"), "--no-lpips",
                 "--quiet"]) == 0
    meta = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert json.dumps(meta).count(str(tmp_path / "g")) >= 1
    capsys.readouterr()
    # an encoder that records nothing (the authors' .pth, which StyleGAN1 and StyleGAN2 both read) needs --gan ...
    authors = str(fixtures / "dse-encoder-stylegan2" / "E_model_ep6_iter29999.pth")
    assert main(["invert", "a.png", "--encoder", authors, "-o", str(tmp_path / "o2")]) == 2
    assert "hint: pass --gan stylegan or --gan stylegan2" in capsys.readouterr().err
    # ... and its generator: the family's demo is not the one it was trained for
    assert main(["invert", "a.png", "--gan", "stylegan2", "--encoder", authors, "-o", str(tmp_path / "o2")]) == 2
    assert "does not fit generator demo:stylegan2" in capsys.readouterr().err
