"""StyleGAN2 generator forward speed: dse vs. a reference implementation, measured in one run.

    python benchmarks/generator_speed.py                      # dse only
    python benchmarks/generator_speed.py --baseline-dir ../refs/stylegan2-pytorch   # + rosinality

Random weights, 256 px, config F channels, batch 4, const noise, float32. Each
implementation runs in its own subprocess so that its peak memory (max RSS on the
CPU, max allocated on CUDA) is its own. The reference's code is imported from the
folder you point at; nothing of it is part of this repository.
"""

from __future__ import annotations

import sys

from timing import compare_generators  # benchmarks/timing.py, beside this script


def build_dse(resolution: int, baseline_dir: str | None):
    from dse_plugin_stylegan2 import Generator, StyleGAN2Config

    G = Generator(StyleGAN2Config.standard(resolution)).eval()
    return G, lambda z: G(z, noise_mode="const")


def build_rosinality(resolution: int, baseline_dir: str):
    import torch.utils.cpp_extension as ext

    ext.load = lambda *a, **k: None  # its CUDA ops compile at import; the CPU path never calls them
    sys.path.insert(0, baseline_dir)
    from model import Generator  # noqa: E402  (the reference's own module)

    G = Generator(resolution, 512, 8, channel_multiplier=2).eval()
    return G, lambda z: G([z], randomize_noise=False)[0]


if __name__ == "__main__":
    compare_generators("StyleGAN2 G forward", {"dse": build_dse, "rosinality": build_rosinality}, doc=__doc__,
                       ref="rosinality", ref_help="local checkout of rosinality/stylegan2-pytorch", ref_file="model.py")
