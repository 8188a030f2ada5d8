"""StyleGAN2 generator forward speed: dse vs. a reference implementation, measured in one run.

    python benchmarks/generator_speed.py                      # dse only
    python benchmarks/generator_speed.py --baseline-dir ../refs/stylegan2-pytorch   # + rosinality

Random weights, 256 px, config F channels, batch 4, const noise, float32. Each
implementation runs in its own subprocess so that its peak memory (max RSS on the
CPU, max allocated on CUDA) is its own. The reference's code is imported from the
folder you point at; nothing of it is part of this repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from timing import timed  # benchmarks/timing.py, beside this script


def build_dse(resolution: int):
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


def measure(impl: str, resolution: int, batch: int, iters: int, threads: int, device: str, baseline_dir: str | None) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    G, run = build_dse(resolution) if impl == "dse" else build_rosinality(resolution, baseline_dir)
    G.to(device)
    z = torch.randn(batch, 512, device=device)
    elapsed, peak_mb = timed(run, z, iters, device)
    return {"impl": impl, "device": device, "img_per_s": batch * iters / elapsed, "peak_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-dir", help="local checkout of rosinality/stylegan2-pytorch")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or 'all' (cpu, plus cuda when present)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(measure(args.worker, args.resolution, args.batch, args.iters, args.threads, args.device, args.baseline_dir)))
        return

    import torch

    devices = ["cpu", "cuda"] if args.device == "all" and torch.cuda.is_available() else ["cpu" if args.device == "all" else args.device]
    impls = ["dse"] + (["rosinality"] if args.baseline_dir else [])
    print(f"StyleGAN2 G forward, {args.resolution}px, batch {args.batch}, {args.threads} threads, {args.iters} iterations")
    for device in devices:
        results = {}
        for impl in impls:
            cmd = [sys.executable, __file__, "--worker", impl, "--device", device] + [
                f"--{k}={v}" for k, v in (("resolution", args.resolution), ("batch", args.batch), ("iters", args.iters),
                                          ("threads", args.threads), ("baseline-dir", args.baseline_dir)) if v is not None]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=Path(__file__).parent).stdout
            results[impl] = json.loads(out.strip().splitlines()[-1])
            r = results[impl]
            print(f"  {device:5s} {impl:11s} {r['img_per_s']:7.2f} img/s   peak {r['peak_mb']:8.0f} MB")
        if "rosinality" in results:
            speedup = results["dse"]["img_per_s"] / results["rosinality"]["img_per_s"]
            memory = results["dse"]["peak_mb"] / results["rosinality"]["peak_mb"]
            print(f"  {device:5s} dse / rosinality: {speedup:.2f}x speed, {memory:.2f}x peak memory")


if __name__ == "__main__":
    main()
