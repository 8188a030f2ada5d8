"""The timing loop the benchmark scripts share: warm-up, then ``iters`` timed calls, and the peak memory."""

from __future__ import annotations

import resource
import time
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
