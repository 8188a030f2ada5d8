from pathlib import Path

import pytest
import torch

from dse_core.testing import isolate

# The tests use tiny tensors: one thread avoids OpenMP start-up and spin costs (severe on a busy 2-core box).
torch.set_num_threads(1)

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "parity"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path)  # seeded, offline, no user caches


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
