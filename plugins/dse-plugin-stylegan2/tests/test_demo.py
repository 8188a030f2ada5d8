"""The embedded demo: `dse invert --gan stylegan2 IMAGE` works offline and reconstructs digits well."""

import json
from pathlib import Path

import torch

from dse_core import Inverter, load_encoder, load_generator
from dse_core.cli import main
from dse_plugin_stylegan2 import FAMILY

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_demo_models_ship_small_and_belong_together():
    sizes = sum(p.stat().st_size for p in FAMILY.demo.rglob("*.safetensors"))
    assert sizes <= 20 * 2**20
    G = load_generator("demo:stylegan2")
    E = load_encoder("demo:stylegan2", generator=G)  # refuses an encoder trained for another generator
    assert (G.resolution, G.num_ws, E.latent_shapes["ws"][0]) == (32, 8, 8)
    with torch.no_grad():
        x = G(torch.randn(16, G.z_dim, generator=torch.Generator().manual_seed(123)))
        recon = Inverter(G, E)(x).x_rec
    mse = (x.clamp(-1, 1) - recon.clamp(-1, 1)).square().mean().item() / 4  # on [0, 1] pixels
    assert 10 * torch.log10(torch.tensor(1 / mse)) > 20  # 22.9 dB measured on 256 held-out seeds


def test_invert_the_shipped_examples_with_no_other_argument(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["invert", "--gan", "stylegan2", str(EXAMPLES), "-o", str(out), "--device", "cpu", "--quiet"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert len(report["images"]) == 4 and not report["failed"]
    assert report["summary"]["psnr"]["mean"] > 16 and report["summary"]["ssim"]["mean"] > 0.7  # 20.6 dB, 0.84 measured
    assert report["metadata"]["generator"] == "demo:stylegan2"
    assert sorted(p.name for p in (out / "reconstructions").iterdir()) == [
        "digit-2.png", "digit-3.png", "digit-5.png", "digit-8.png"]
    assert "LPIPS metric skipped" in capsys.readouterr().err  # no VGG16 weights in the test environment
