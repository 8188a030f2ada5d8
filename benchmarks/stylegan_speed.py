"""StyleGAN (v1) generator forward speed: dse vs. genforce's StyleGANGenerator, measured in one run.

    python benchmarks/stylegan_speed.py --baseline-dir ../refs/genforce   # dse only without one

Random weights, 256 px, the official channel plan (16384 / res, at most 512), 8 mapping layers, batch 4, stored
noise, no truncation, float32. Each implementation runs in its own subprocess so that its peak memory (max RSS on
the CPU, max allocated on CUDA) is its own. genforce's ``models/stylegan_generator.py`` is imported from the
checkout you point at; nothing of it is part of this repository.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

from timing import compare_generators  # benchmarks/timing.py, beside this script


def build_dse(resolution: int, baseline_dir: str | None):
    from dse_plugin_stylegan import Generator, StyleGANConfig

    G = Generator(StyleGANConfig.standard(resolution)).eval()
    return G, lambda z: G(z, noise_mode="const")


def build_genforce(resolution: int, genforce: str):
    # import the one module, not genforce's models/__init__ (which pulls in every model and its dependencies)
    package = types.ModuleType("genforce_models")
    package.__path__ = [str(Path(genforce) / "models")]
    sys.modules["genforce_models"] = package
    StyleGANGenerator = importlib.import_module("genforce_models.stylegan_generator").StyleGANGenerator

    G = StyleGANGenerator(resolution).eval()
    return G, lambda z: G(z, randomize_noise=False)["image"]


if __name__ == "__main__":
    compare_generators("StyleGAN G forward", {"dse": build_dse, "genforce": build_genforce}, doc=__doc__,
                       ref="genforce", ref_help="local checkout of genforce/genforce (holding models/stylegan_generator.py)",
                       ref_file="models/stylegan_generator.py")
