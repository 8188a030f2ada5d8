from pathlib import Path

import pytest
import torch

from dse_core.testing import isolate

# The tests use tiny tensors: one thread avoids OpenMP start-up and spin costs (severe on a busy 2-core box).
torch.set_num_threads(1)

FIXTURES = Path(__file__).parent / "fixtures" / "parity"

pytest_plugins = ["hub_stand_in"]  # its hub_server fixture


@pytest.fixture(autouse=True)
def _deterministic_and_offline(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path)  # nothing in the tests may reach the network or a user's caches


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def tiny_generator():
    """A 16 px StyleGAN2 with non-trivial weights: small enough for training tests on a CPU."""
    from dse_plugin_stylegan2 import Generator, StyleGAN2Config

    torch.manual_seed(1)
    G = Generator(StyleGAN2Config(resolution=16, channels={4: 8, 8: 8, 16: 8}, z_dim=8, w_dim=8, mapping_layers=2))
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.2)
        G.mapping.w_avg.copy_(G.mapping(torch.randn(256, 8))[:, 0].mean(0))
    return G.eval()
