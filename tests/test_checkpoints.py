"""Reading foreign checkpoints: never run code from the file, and say what is wrong with a bad one."""

import argparse
import os

import pytest
import torch

from dse_core.models.files import describe, torch_load
from dse_core.errors import CheckpointError


class Payload:
    """Unpickling this would create a marker file: the attack weights_only must stop."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {"w": torch.zeros(1)}, "extra": Payload(marker)}, path)
    with pytest.raises(CheckpointError) as err:
        torch_load(path)
    assert "os.makedirs" in str(err.value) and "allow-list" in str(err.value)
    assert not marker.exists()


def test_allowed_globals_are_honoured_and_others_still_refused(tmp_path):
    path = tmp_path / "train.pt"
    torch.save({"g_ema": {"w": torch.ones(2)}, "args": argparse.Namespace(size=256)}, path)
    with pytest.raises(CheckpointError, match="argparse.Namespace"):
        torch_load(path)
    ckpt = torch_load(path, allowed_globals=[argparse.Namespace])
    assert ckpt["args"].size == 256 and torch.equal(ckpt["g_ema"]["w"], torch.ones(2))


@pytest.mark.parametrize("content, message", [
    (b"", "empty (0 bytes)"),
    (b"this is not a checkpoint", "not a PyTorch checkpoint"),
])
def test_unreadable_files_are_named(tmp_path, content, message):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        torch_load(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_truncated_checkpoint_is_reported_as_damaged(tmp_path, fixtures):
    data = (fixtures / "stylegan2-rosinality" / "checkpoint.pt").read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        torch_load(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        torch_load(tmp_path / "nope.pt")


def test_describe_summarises_nested_dicts():
    text = describe({"generator_smooth": {"layer0.weight": torch.zeros(1), "layer0.bias": torch.zeros(1)}})
    assert text == "a dict with keys generator_smooth (generator_smooth: a state dict with keys layer0.weight, layer0.bias)"
    assert describe([1, 2]) == "a list"


def test_damaged_tensor_bytes_in_a_zip_checkpoint_are_refused(tmp_path, fixtures):
    # torch.load does not check the zip CRC-32s: without our check this loads as silently wrong weights
    data = bytearray((fixtures / "stylegan2-rosinality" / "checkpoint.pt").read_bytes())
    data[300_000:300_008] = b"XXXXXXXX"
    path = tmp_path / "damaged.pt"
    path.write_bytes(bytes(data))
    for _ in range(2):  # the failure is cached like a result, and raised again each time
        with pytest.raises(CheckpointError) as err:
            torch_load(path)
        text = str(err.value)
        assert str(path) in text and "damaged" in text and "'checkpoint/data/36'" in text


def test_zip_checkpoint_written_without_crcs_still_loads(tmp_path):
    path = tmp_path / "nocrc.pt"
    torch.serialization.set_crc32_options(False)
    try:
        torch.save({"w": torch.arange(4.0)}, path)
    finally:
        torch.serialization.set_crc32_options(True)
    assert torch.equal(torch_load(path)["w"], torch.arange(4.0))


def test_a_damaged_converted_folder_names_its_broken_file(tmp_path):
    import shutil

    from dse_core import load_generator
    from dse_core.errors import DseError
    from dse_core.loading import demo_path

    good = tmp_path / "good"
    shutil.copytree(demo_path("stylegan2", "generator"), good)
    cases = {
        "bad-json": (lambda d: (d / "config.json").write_text("{broken"), r"config.json: invalid config\n  - not valid JSON"),
        "no-weights": (lambda d: (d / "model.safetensors").unlink(), r"model.safetensors: is missing"),
        "no-config": (lambda d: (d / "config.json").unlink(), r"config.json: is missing"),
    }
    for name, (damage, message) in cases.items():
        folder = tmp_path / name
        shutil.copytree(good, folder)
        damage(folder)
        with pytest.raises(DseError, match=message):
            load_generator(folder)
    other = tmp_path / "other-library"  # a folder of another library's model is not reported as a broken dse folder
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "biggan"}')
    with pytest.raises(CheckpointError, match="found a folder holding config.json"):
        load_generator(other)
