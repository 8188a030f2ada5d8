"""The model card save_pretrained writes: YAML metadata the Hub reads, the grid, the metrics table, no Jinja2."""

import json
import sys

import torch
import yaml

from dse_core import Encoder
from dse_core.models.card import card_license, write_model_card
from dse_core.models.format import generator_record
from dse_core.images import save_image
from dse_plugin_stylegan2.encoder import encoder_plan


def front_matter(text):
    return yaml.safe_load(text.split("---")[1])


def test_the_card_carries_metadata_grid_and_metrics_without_jinja2(tiny_generator, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "jinja2", None)  # importing it now fails: the card must not need it
    tiny_generator.origin = {"spec": "models/g", "repo_id": "alice/g", "revision": "a" * 40}
    record = generator_record(tiny_generator, "models/g")
    out = Encoder(encoder_plan(tiny_generator)).save_pretrained(
        tmp_path / "e", source={"format": "dse-trained", "generator": record, "preset": "paper-s2", "steps": 12})
    first = (out / "README.md").read_text()
    meta = front_matter(first)
    assert meta == {"base_model": "alice/g", "library_name": "dse", "license": "unknown",
                    "tags": ["dse", "gan-inversion", "stylegan2", "encoder"]}
    assert f"| fingerprint | `{record['fingerprint']}` |" in first and "Training: preset paper-s2, steps 12." in first
    assert "## Metrics" not in first and "reconstruction.png" not in first

    save_image(torch.zeros(3, 16, 32), out / "reconstruction.png")
    (out / "metrics.json").write_text(json.dumps({"summary": {"psnr": {"mean": 21.5, "std": 1.25, "n": 4}}}))
    card = write_model_card(out, repo_id="bob/enc", license="Apache-2.0").read_text()
    assert front_matter(card)["license"] == "apache-2.0"
    assert "![reconstructions](reconstruction.png)" in card and "| psnr | 21.5000 | 1.2500 | 4 |" in card
    assert 'load_encoder("bob/enc")' in card and "dse invert --generator alice/g --encoder bob/enc" in card


def test_licenses_the_hub_does_not_know_are_other_with_name_and_link():
    assert card_license("Apache-2.0") == {"license": "apache-2.0"}
    assert card_license("Nvidia Source Code License-NC", "https://x") == {
        "license": "other", "license_name": "nvidia-source-code-license-nc", "license_link": "https://x"}
    assert card_license(None) == {"license": "unknown"}
