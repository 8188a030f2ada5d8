from pathlib import Path

import pytest
import torch

# The tests use tiny tensors: one thread avoids OpenMP start-up and spin costs (severe on a busy 2-core box).
torch.set_num_threads(1)

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "parity"
OWN_FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _seed(monkeypatch, tmp_path):
    torch.manual_seed(0)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def own_fixtures() -> Path:
    return OWN_FIXTURES
