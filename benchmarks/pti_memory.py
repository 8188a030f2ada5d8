"""What inverting one 256 px image needs with each refinement: peak memory (and time) of ``dse invert``'s
``Inverter`` with --refine none, latents and generator (PTI).

    python benchmarks/pti_memory.py                  # CPU, 2 threads, 5 steps each
    python benchmarks/pti_memory.py --steps 10 --lpips   # + the refinement loss's LPIPS term (random VGG16)

Random weights: StyleGAN2 config F at 256 px and the encoder ``encoder_plan(G)`` builds for it (the paper's
Table I), one image, batch 1, float32. Each case runs in its own subprocess, so its peak (max RSS on the CPU,
max allocated on CUDA) is its own; "loaded" is the peak after building the models (and LPIPS), before inverting.
The expected cost of PTI beyond the models: a copy of G, its gradients and Adam's two moments (4x G's weights),
plus the activations of G's forward and backward passes at the pivot and at the locality regulariser's latent.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CASES = ("none", "latents", "generator")


def peak_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(case: str, steps: int, threads: int, device: str, lpips: bool) -> dict:
    import torch
    from dse_plugin_stylegan2 import Generator, StyleGAN2Config
    from dse_plugin_stylegan2.encoder import encoder_plan

    from dse_core import Encoder, Inverter
    from dse_core.loss import load_lpips
    from dse_core.refine import Refinement

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    G = Generator(StyleGAN2Config.standard(256)).to(device)
    E = Encoder(encoder_plan(G)).to(device)
    perceptual = load_lpips(allow_untrained=True).to(device) if lpips else None  # random VGG16: no download
    refinement = None if case == "none" else Refinement(case, steps=steps, lpips=perceptual)
    inverter = Inverter(G, E, refinement=refinement)
    image = torch.rand(1, 3, 256, 256, device=device) * 2 - 1
    loaded = peak_mb(device)
    start = time.perf_counter()
    inversion = inverter(image)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    g_mb = sum(p.numel() * p.element_size() for p in G.parameters()) / 2**20
    return {"case": case, "steps": 0 if refinement is None else steps, "seconds": seconds, "loaded_mb": loaded,
            "peak_mb": peak_mb(device), "g_weights_mb": g_mb, "tuned": inversion.generators is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="refinement steps (latents, generator)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lpips", action="store_true", help="the loss's LPIPS term too (VGG16, random weights)")
    parser.add_argument("--worker", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.steps, args.threads, args.device, args.lpips)))
        return

    print(f"one 256 px image, StyleGAN2 config F + its encoder (random weights), {args.device}, {args.threads} "
          f"threads, {args.steps} steps, LPIPS term {'on (random VGG16)' if args.lpips else 'off'}")
    rows = {}
    for case in CASES:
        cmd = [sys.executable, __file__, "--worker", case, f"--steps={args.steps}", f"--threads={args.threads}",
               f"--device={args.device}"] + (["--lpips"] if args.lpips else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = rows[case] = json.loads(out.strip().splitlines()[-1])
        print(f"  --refine {case:9s} peak {r['peak_mb']:7.0f} MB (models loaded {r['loaded_mb']:6.0f} MB, "
              f"+{r['peak_mb'] - r['loaded_mb']:5.0f} MB inverting)  {r['seconds']:6.1f} s")
    g = rows["generator"]["g_weights_mb"]
    pti = rows["generator"]["peak_mb"] - rows["latents"]["peak_mb"]
    print(f"  G's weights {g:.0f} MB: PTI's copy + gradients + Adam's moments are 4x that, {4 * g:.0f} MB; "
          f"PTI needs {pti:+.0f} MB over latent refinement, {rows['generator']['peak_mb'] / rows['none']['peak_mb']:.2f}x "
          f"inversion alone")


if __name__ == "__main__":
    main()
