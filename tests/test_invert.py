"""Inversion: the Python API and the files `dse invert` writes, including bad inputs."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from dse_core import Encoder, Inverter
from dse_core.cli import main
from dse_core.errors import DseError
from dse_core.images import save_image
from dse_core.loss import UntrainedLPIPSWarning
from dse_plugin_stylegan2.encoder import encoder_plan


@pytest.fixture
def pair(tiny_generator, tmp_path):
    torch.manual_seed(3)
    encoder = Encoder(encoder_plan(tiny_generator)).eval()
    tiny_generator.save_pretrained(tmp_path / "g")
    encoder.save_pretrained(tmp_path / "e")
    return tiny_generator, encoder


def test_inverter_is_e_then_g_and_deterministic(pair):
    G, E = pair
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    result = Inverter(G, E)(x)
    assert result.latents["w"].shape == (3, G.num_ws, G.w_dim)
    with torch.no_grad():
        assert torch.equal(result.latents["w"], E(x).w)
        assert torch.equal(result.reconstructions, G.synthesis(E(x).w))
    assert torch.equal(Inverter(G, E)(x).reconstructions, result.reconstructions)  # noise off in eval


def test_inverter_refuses_a_mismatched_pair(pair):
    from dse_plugin_stylegan2 import Generator, StyleGAN2Config

    G32 = Generator(StyleGAN2Config(resolution=32, channels={4: 4, 8: 4, 16: 4, 32: 4}, z_dim=4, w_dim=8, mapping_layers=1))
    with pytest.raises(DseError, match="16px .* 32px"):
        Inverter(G32, pair[1])


def write_inputs(G, folder, n=3):
    folder.mkdir()
    with torch.no_grad():
        images = G(torch.randn(n, G.z_dim)).clamp(-1, 1)
    for i, image in enumerate(images):
        save_image(image, folder / f"img{i}.png")
    (folder / "nested").mkdir()
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(folder / "nested" / "wide.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    return images


def test_invert_command_writes_everything_and_counts_failures(pair, tmp_path, capsys):
    G, E = pair
    write_inputs(G, tmp_path / "in")
    out = tmp_path / "out"
    with pytest.warns(UntrainedLPIPSWarning, match="UNTRAINED VGG16"):
        code = main(["invert", str(tmp_path / "in"), str(tmp_path / "missing.png"), "-o", str(out),
                     "--generator", str(tmp_path / "g"), "--encoder", str(tmp_path / "e"), "--batch-size", "2",
                     "--format", "npy", "npz", "--allow-untrained-lpips", "--device", "cpu", "--quiet"])
    assert code == 1  # two inputs failed, the rest are written
    stems = ["img0", "img1", "img2", "nested__wide"]
    assert sorted(p.stem for p in (out / "reconstructions").iterdir()) == stems
    assert sorted(p.name for p in (out / "latents").iterdir()) == sorted(f"{s}.{e}" for s in stems for e in ("npy", "npz", "safetensors"))
    with safe_open(str(out / "latents" / "img1.safetensors"), "pt") as f:
        meta, w = f.metadata(), f.get_tensor("w")
    assert meta["family"] == "stylegan2" and meta["generator"] == str(tmp_path / "g") and meta["resolution"] == "16"
    assert w.shape == (1, G.num_ws, G.w_dim)
    assert np.load(out / "latents" / "img1.npy").shape == (1, G.num_ws, G.w_dim)
    assert np.allclose(np.load(out / "latents" / "img1.npz")["w"], w.numpy())

    report = json.loads((out / "metrics.json").read_text())
    assert {f["image"].rsplit("/", 1)[-1] for f in report["failed"]} == {"missing.png", "broken.png"}
    assert report["lpips"].startswith("VGG, UNTRAINED")
    rows = {r["output"]: r for r in report["images"]}
    assert rows["nested__wide"]["notes"] == "cropped 30x20 to its centre square; resized 20px to 16px"
    for r in rows.values():
        assert r["psnr"] == pytest.approx(10 * np.log10(1 / r["mse"]), rel=1e-5)
    mean = np.mean([r["ssim"] for r in rows.values()])
    assert report["summary"]["ssim"]["mean"] == pytest.approx(mean) and report["summary"]["ssim"]["n"] == 4
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0] == "image,output,psnr,ssim,mse,lpips,cosine,notes" and len(csv_lines) == 5
    grid = Image.open(out / "grid.png")
    assert grid.size == (8 * 18 + 2, 18 + 2)  # 4 (input, reconstruction) pairs in one row of 8
    err = capsys.readouterr().err
    assert "broken.png" in err and "missing.png" in err


def test_generate_rebuilds_the_reconstructions_from_latents(pair, tmp_path):
    G, E = pair
    write_inputs(G, tmp_path / "in", n=2)
    out = tmp_path / "out"
    main(["invert", str(tmp_path / "in" / "img0.png"), str(tmp_path / "in" / "img1.png"), "-o", str(out),
          "--generator", str(tmp_path / "g"), "--encoder", str(tmp_path / "e"), "--no-lpips", "--device", "cpu", "--quiet"])
    assert main(["generate", str(out / "latents"), "-o", str(tmp_path / "regen"), "--device", "cpu"]) == 0
    for stem in ("img0", "img1"):
        assert (tmp_path / "regen" / f"{stem}.png").read_bytes() == (out / "reconstructions" / f"{stem}.png").read_bytes()


def test_invert_without_lpips_weights_skips_the_metric_and_says_so(pair, tmp_path, capsys):
    G, _ = pair
    write_inputs(G, tmp_path / "in", n=1)
    code = main(["invert", str(tmp_path / "in" / "img0.png"), "-o", str(tmp_path / "out"), "--generator",
                 str(tmp_path / "g"), "--encoder", str(tmp_path / "e"), "--device", "cpu", "--quiet"])
    assert code == 0
    assert "LPIPS metric skipped" in capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["lpips"] == "not computed" and "lpips" not in report["summary"]


def test_invert_needs_an_encoder(pair, tmp_path, capsys):
    assert main(["invert", str(tmp_path), "--generator", str(tmp_path / "g")]) == 2
    assert "--encoder" in capsys.readouterr().err


def test_invert_under_torchrun_shards_inputs_and_gathers_one_report(pair, tmp_path):
    import os
    import subprocess
    import sys

    G, _ = pair
    write_inputs(G, tmp_path / "in", n=5)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "dse_core.cli",
           "invert", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--generator", str(tmp_path / "g"),
           "--encoder", str(tmp_path / "e"), "--no-lpips", "--device", "cpu", "--quiet", "--batch-size", "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]  # broken.png fails on one rank: the run says so
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert sorted(r["output"] for r in report["images"]) == ["img0", "img1", "img2", "img3", "img4", "nested__wide"]
    assert [f["image"].rsplit("/", 1)[-1] for f in report["failed"]] == ["broken.png"]
    assert len(list((tmp_path / "out" / "reconstructions").iterdir())) == 6
