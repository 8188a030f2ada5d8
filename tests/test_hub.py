"""save_pretrained / from_pretrained: layout, metadata, strict loading and clear errors."""

import json
from typing import ClassVar

import attrs
import pytest
import torch
from safetensors import safe_open
from torch import nn

from dse_core.errors import CheckpointError, ConfigError, DseError
from dse_core.models.format import CONFIG_FILE, WEIGHTS_FILE, is_pretrained_dir
from dse_core.models.hub import resolve
from dse_core.models.pretrained import PretrainedMixin


@attrs.frozen
class ToyConfig:
    width: int = 4


class Toy(nn.Module, PretrainedMixin):
    kind: ClassVar[str] = "generator"
    family: ClassVar[str] = "toygan"
    config_class: ClassVar[type] = ToyConfig

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.resolution = 8
        self.fc = nn.Linear(config.width, config.width)
        self.register_buffer("avg", torch.randn(config.width))


def test_round_trip_layout_and_metadata(tmp_path):
    model = Toy(ToyConfig(width=3))
    out = model.save_pretrained(tmp_path / "m", source={"format": "toy/raw", "sha256": "ab"})
    assert sorted(p.name for p in out.iterdir()) == ["README.md", CONFIG_FILE, WEIGHTS_FILE]  # + the model card
    header = json.loads((out / CONFIG_FILE).read_text())
    assert header["library_name"] == "dse" and header["family"] == "toygan" and header["config"] == {"width": 3}
    with safe_open(str(out / WEIGHTS_FILE), "pt") as f:
        meta = f.metadata()
    assert meta["family"] == "toygan" and meta["kind"] == "generator" and json.loads(meta["source"])["sha256"] == "ab"
    loaded = Toy.from_pretrained(out)
    assert loaded.config == ToyConfig(width=3) and not loaded.training
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert is_pretrained_dir(out) and not is_pretrained_dir(tmp_path)


def test_shape_mismatch_and_missing_tensors_are_listed(tmp_path):
    out = Toy(ToyConfig(width=3)).save_pretrained(tmp_path / "m")
    header = json.loads((out / CONFIG_FILE).read_text())
    header["config"]["width"] = 5
    (out / CONFIG_FILE).write_text(json.dumps(header))
    with pytest.raises(CheckpointError) as err:
        Toy.from_pretrained(out)
    assert "fc.weight: file (3, 3) vs expected (5, 5)" in str(err.value)


def test_truncated_weights_and_bad_config_are_named(tmp_path):
    out = Toy(ToyConfig()).save_pretrained(tmp_path / "m")
    data = (out / WEIGHTS_FILE).read_bytes()
    (out / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Toy.from_pretrained(out)
    out = Toy(ToyConfig()).save_pretrained(tmp_path / "m2")
    header = json.loads((out / CONFIG_FILE).read_text())
    header["config"]["width"] = "wide"
    (out / CONFIG_FILE).write_text(json.dumps(header))
    with pytest.raises(ConfigError) as err:
        Toy.from_pretrained(out)
    assert "$.width" in str(err.value) and str(out / CONFIG_FILE) in str(err.value)


def test_wrong_family_and_newer_format_are_refused(tmp_path):
    out = Toy(ToyConfig()).save_pretrained(tmp_path / "m")
    header = json.loads((out / CONFIG_FILE).read_text())
    (out / CONFIG_FILE).write_text(json.dumps({**header, "family": "othergan"}))
    with pytest.raises(CheckpointError, match="'othergan' family, expected 'toygan'"):
        Toy.from_pretrained(out)
    (out / CONFIG_FILE).write_text(json.dumps({**header, "format_version": 99}))
    with pytest.raises(CheckpointError, match="newer than this dse understands"):
        Toy.from_pretrained(out)


def test_offline_hub_miss_names_repo_revision_and_the_fix(tmp_path):
    with pytest.raises(DseError) as err:
        resolve("someone/not-cached@v1")
    text = str(err.value)
    assert "someone/not-cached@v1" in text and "dse pull someone/not-cached --revision v1" in text
    with pytest.raises(DseError, match="no such file or folder"):
        resolve(str(tmp_path / "missing" / "file.pt"))


def test_a_missing_local_path_is_not_mistaken_for_a_hub_repo(tmp_path, monkeypatch):
    from dse_core import load_generator
    from dse_core.models import hub

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert hub.is_repo_id("ZeqiangLai/StyleGAN2") and hub.is_repo_id("someone/dse-encoder@v1")
    assert not hub.is_repo_id("models/ffhq.pkl")  # a weights file name, not a repo
    assert hub.is_repo_id("runs/e9")  # could be either: a local runs/ folder does not take a Hub owner's name away
    with pytest.raises(DseError, match="^models/ffhq.pkl: no such file or folder"):
        load_generator("models/ffhq.pkl")
    with pytest.raises(DseError, match=r"^runs/e9: no such file or folder here, nor a Hub repo I can fetch \(runs/e9"):
        load_generator("runs/e9")  # offline: the cache does not have it either


def test_invalid_repo_ids_are_one_line_errors(tiny_generator):
    from dse_core import load_generator

    for bad in ("bad..name/x", "a--b/x"):
        with pytest.raises(DseError, match=f"'{bad}' is not a valid Hub repo id"):
            load_generator(bad)
    with pytest.raises(DseError, match="'alice/g@v1' is not a valid Hub repo id"):
        tiny_generator.push_to_hub("alice/g@v1")  # checked before any network or offline question


def test_saving_a_model_loads_no_plugin(tmp_path):
    """The card is written from the folder alone: save_pretrained never asks the plugin host (or the registry)."""
    import subprocess
    import sys

    code = ("import sys\nfrom dse_core.encoder import Encoder, EncoderConfig\n"
            "E = Encoder(EncoderConfig(family='x', resolution=8, channels={8: 4, 4: 4}, z_head=(3,)))\n"
            f"E.save_pretrained({str(tmp_path / 'e')!r})\n"
            "print(sorted(m for m in sys.modules if m in ('dse_core.plugins', 'pluggy') or m.startswith('dse_plugin')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "e" / "README.md").is_file()
