from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures" / "parity"


@pytest.fixture(autouse=True)
def _deterministic_and_offline(monkeypatch, tmp_path):
    torch.manual_seed(0)
    # nothing in the tests may reach the network or a user's caches
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
