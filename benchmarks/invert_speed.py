"""Inversion speed (E then G, no gradients): images/s and peak memory.

    python benchmarks/invert_speed.py              # the 32 px demo models and a 256 px random StyleGAN2
    python benchmarks/invert_speed.py --device all # + CUDA when present

Each case runs in its own subprocess so that its peak memory (max RSS on the CPU,
max allocated on CUDA) is its own. The 256 px case uses random weights: StyleGAN2
config F and the paper's Table I encoder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from timing import devices, timed  # benchmarks/timing.py, beside this script


def build(case: str):
    from dse_core import Encoder, Inverter, load_encoder, load_generator

    if case == "demo":
        G = load_generator("demo:stylegan2")
        return Inverter(G, load_encoder("demo:stylegan2", generator=G))
    from dse_plugin_stylegan2 import Generator, StyleGAN2Config
    from dse_plugin_stylegan2.encoder import encoder_plan

    G = Generator(StyleGAN2Config.standard(256))
    return Inverter(G, Encoder(encoder_plan(G)))


def measure(case: str, batch: int, iters: int, threads: int, device: str) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    inverter = build(case)
    inverter.generator.to(device)
    inverter.encoder.to(device)
    res = inverter.generator.resolution
    images = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    elapsed, peak = timed(inverter, images, iters, device)
    return {"case": case, "device": device, "resolution": res, "batch": batch, "img_per_s": batch * iters / elapsed,
            "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or 'all' (cpu, plus cuda when present)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)  # case batch device
    args = parser.parse_args()
    if args.worker:
        case, batch, device = args.worker
        print(json.dumps(measure(case, int(batch), args.iters, args.threads, device)))
        return

    print(f"inversion (E + G, eval, no grad), {args.threads} threads, {args.iters} iterations")
    for device in devices(args.device):
        for case, batch in (("demo", 32), ("stylegan2-256", 4)):
            cmd = [sys.executable, __file__, "--worker", case, str(batch), device, f"--iters={args.iters}",
                   f"--threads={args.threads}"]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"  {device:5s} {case:14s} {r['resolution']:4d}px batch {batch:2d}  {r['img_per_s']:8.2f} img/s"
                  f"   peak {r['peak_mb']:7.0f} MB")


if __name__ == "__main__":
    main()
