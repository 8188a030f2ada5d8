"""The embedded demo: `dse invert --gan biggan IMAGE` works offline, reconstructs digits and names their class."""

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from dse_core import Inverter, load_encoder, load_generator
from dse_core.testing import check_demo
from dse_plugin_biggan import FAMILY

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_demo_inverts_its_samples_and_the_shipped_examples(tmp_path):
    report = check_demo(FAMILY, EXAMPLES, tmp_path,
                        psnr_samples=25,  # 29.3 dB measured on 256 held-out seeds
                        psnr_images=13)  # 14.7 dB measured: real digits lie partly outside this G's range
    # the examples are real digits 2, 3, 5, 8: with no class given, the class head ranks each one in its top 5
    # (measured: first for 2 and 3, fourth for 5, second for 8)
    for row in report["images"]:
        digit = int(Path(row["image"]).stem.split("-")[1])
        assert not row["class"]["given"] and len(row["class"]["top5"]) == 5, row
        assert digit in [entry["index"] for entry in row["class"]["top5"]], row
    assert sum(row["class"]["index"] == int(Path(row["image"]).stem.split("-")[1]) for row in report["images"]) >= 2


def test_the_class_head_names_the_class_of_held_out_samples():
    G = load_generator("demo:biggan")
    inverter = Inverter(G, load_encoder("demo:biggan", generator=G))
    rng = torch.Generator().manual_seed(2027)
    labels = torch.arange(100) % 10
    with torch.no_grad():
        x = G(G.sample_z(100, generator=rng), G.class_vector(labels))
        predicted = inverter(x).latents["c"].argmax(dim=1)
    assert (predicted == labels).float().mean().item() > 0.9  # 1.000 measured on 256 seeds (chance: 0.1)


def test_the_class_head_beats_chance_on_held_out_real_digits():
    """scikit-learn's last 297 digits, which neither demo model saw (tools/demo_digits.py's split)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x8 = torch.as_tensor(digits.images[1500:], dtype=torch.float32).unsqueeze(1)
    x = F.interpolate(x8, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 16) / 8 - 1
    G = load_generator("demo:biggan")
    inverter = Inverter(G, load_encoder("demo:biggan", generator=G))
    with torch.no_grad():
        predicted = inverter(x.expand(-1, 3, -1, -1)).latents["c"].argmax(dim=1)
    accuracy = (predicted == torch.as_tensor(digits.target[1500:])).float().mean().item()
    assert accuracy > 0.55, accuracy  # 0.697 measured (chance: 0.1)


def test_a_given_class_replaces_the_prediction(tmp_path):
    from dse_core.cli import main

    out = tmp_path / "given"
    assert main(["invert", "--gan", "biggan", str(EXAMPLES / "digit-3.png"), "--class", "5", "-o", str(out),
                 "--device", "cpu", "--quiet", "--no-lpips"]) == 0
    [row] = json.loads((out / "metrics.json").read_text())["images"]
    assert row["class"]["index"] == 5 and row["class"]["given"] and row["class"]["top5"][0]["index"] == 3
    assert row["class"]["probability"] < 0.5  # the encoder's own probability of the given class


def test_generator_tuning_works_for_a_z_space_conditional_family(tmp_path):
    """PTI on BigGAN: its batch norms stay on the stored statistics (eval mode) while the weights tune; the tuned G
    is written beside the latents and dse generate decodes with it."""
    import numpy as np
    from PIL import Image

    from dse_core.cli import main

    base, tuned = tmp_path / "base", tmp_path / "tuned"
    common = [str(EXAMPLES / "digit-3.png"), "--device", "cpu", "--quiet", "--no-lpips"]
    assert main(["invert", "--gan", "biggan", *common, "-o", str(base)]) == 0
    assert main(["invert", "--gan", "biggan", *common, "--refine", "generator", "--refine-steps", "10",
                 "-o", str(tuned)]) == 0
    psnr = [json.loads((d / "metrics.json").read_text())["summary"]["psnr"]["mean"] for d in (base, tuned)]
    assert psnr[1] > psnr[0] + 1, psnr
    assert (tuned / "generators" / "digit-3" / "model.safetensors").is_file()
    assert main(["generate", str(tuned / "latents"), "-o", str(tmp_path / "regen"), "--device", "cpu"]) == 0
    a = np.asarray(Image.open(tuned / "reconstructions" / "digit-3.png"), dtype=np.int16)
    b = np.asarray(Image.open(tmp_path / "regen" / "digit-3.png"), dtype=np.int16)
    assert np.abs(a - b).max() == 0
