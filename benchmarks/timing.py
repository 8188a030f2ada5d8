"""What the benchmark scripts share: the timing loop (warm-up, then ``iters`` timed calls, and the peak memory),
the devices ``--device`` names, and the harness that times a dse generator against a reference, each in its own
subprocess (``compare_generators``)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable


def timed(fn: Callable[[Any], Any], arg: Any, iters: int, device: str) -> tuple[float, float]:
    """Seconds for ``iters`` calls of ``fn(arg)`` after one untimed call, and peak MB (max allocated on CUDA,
    this process's max RSS on the CPU)."""
    import torch

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    with torch.no_grad():
        fn(arg)  # warm-up
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(iters):
            fn(arg)
        sync()
        elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return elapsed, peak


def devices(device: str) -> list[str]:
    """The devices ``--device`` names: cpu, cuda, or 'all' (cpu, plus cuda when present)."""
    import torch

    if device != "all":
        return [device]
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


# build(resolution, baseline_dir) -> (module, run): the module is moved to the device, run(z) is what is timed
Builder = Callable[[int, "str | None"], tuple[Any, Callable[[Any], Any]]]


def compare_generators(title: str, builders: dict[str, Builder], *, doc: str | None, ref: str, ref_help: str,
                       ref_file: str, z_dim: int = 512, resolution: int = 256, batch: int = 4, iters: int = 5,
                       threads: int = 2) -> None:
    """The command line of a generator-forward benchmark: ``builders`` holds "dse" and ``ref``; the reference is
    timed when ``--baseline-dir`` holds ``ref_file``. Each implementation runs in its own subprocess (this script
    again, with ``--worker NAME``) so that its peak memory is its own; then dse / ``ref`` ratios are printed."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-dir", help=ref_help)
    parser.add_argument("--resolution", type=int, default=resolution)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--iters", type=int, default=iters)
    parser.add_argument("--threads", type=int, default=threads)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or 'all' (cpu, plus cuda when present)")
    parser.add_argument("--worker", choices=list(builders), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        G, run = builders[args.worker](args.resolution, args.baseline_dir)
        G.to(args.device)
        z = torch.randn(args.batch, z_dim, device=args.device)
        elapsed, peak_mb = timed(run, z, args.iters, args.device)
        print(json.dumps({"impl": args.worker, "device": args.device, "img_per_s": args.batch * args.iters / elapsed,
                          "peak_mb": peak_mb}))
        return

    impls = ["dse"]
    baseline = args.baseline_dir and Path(args.baseline_dir).resolve()  # the workers run in another folder
    if baseline and (baseline / ref_file).is_file():
        impls.append(ref)
    else:
        print(f"{ref} reference not found ({args.baseline_dir or 'no --baseline-dir given'}): timing dse only")
    print(f"{title}, {args.resolution}px, batch {args.batch}, {args.threads} threads, {args.iters} iterations")
    width = max(map(len, builders)) + 1
    script = os.path.abspath(sys.argv[0])
    for device in devices(args.device):
        results = {}
        for impl in impls:
            cmd = [sys.executable, script, "--worker", impl, "--device", device, f"--resolution={args.resolution}",
                   f"--batch={args.batch}", f"--iters={args.iters}", f"--threads={args.threads}"]
            if impl != "dse":
                cmd.append(f"--baseline-dir={baseline}")
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(script).parent)
            if proc.returncode:  # show why: the worker's traceback is otherwise lost with its captured output
                sys.exit(f"{impl} worker failed on {device}:\n{proc.stderr}")
            results[impl] = r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"  {device:5s} {impl:{width}s} {r['img_per_s']:7.2f} img/s   peak {r['peak_mb']:8.0f} MB")
        if ref in results:
            speedup = results["dse"]["img_per_s"] / results[ref]["img_per_s"]
            memory = results["dse"]["peak_mb"] / results[ref]["peak_mb"]
            print(f"  {device:5s} dse / {ref}: {speedup:.2f}x speed, {memory:.2f}x peak memory")
