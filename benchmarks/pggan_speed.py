"""PGGAN generator forward speed: dse vs. genforce's PGGANGenerator, measured in one run.

    python benchmarks/pggan_speed.py --baseline-dir ../refs/genforce      # dse only without one

Random weights, 256 px, the official channel plan (fmaps_base 16384, at most 512), z 512, batch 4,
float32, 2 threads. Each implementation runs in its own subprocess so that its peak memory (max RSS on
the CPU, max allocated on CUDA) is its own. genforce's ``models/pggan_generator.py`` is imported from
the checkout you point at; nothing of it is part of this repository.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from timing import compare_generators  # benchmarks/timing.py, beside this script


def build_dse(resolution: int, baseline_dir: str | None):
    from dse_plugin_pggan import Generator, PGGANConfig

    G = Generator(PGGANConfig.standard(resolution)).eval()
    return G, G


def build_genforce(resolution: int, genforce_dir: str):
    # the module alone: genforce's models/__init__ imports every family
    spec = importlib.util.spec_from_file_location("pggan_generator", Path(genforce_dir) / "models" / "pggan_generator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    G = module.PGGANGenerator(resolution).eval()
    return G, lambda z: G(z)["image"]


if __name__ == "__main__":
    compare_generators("PGGAN G forward", {"dse": build_dse, "genforce": build_genforce}, doc=__doc__,
                       ref="genforce", ref_help="local checkout of genforce/genforce", ref_file="models/pggan_generator.py")
