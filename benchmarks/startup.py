"""Start-up time of the `dse` command: how long before a command does its work.

    python benchmarks/startup.py [--runs 5]

Each figure is the median wall time of fresh processes. `import torch` alone is the
reference: a command that needs no model (`dse --help`, `dse train --help`) should cost
far less than it; one that loads plugins (`dse plugins`) pays for torch once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

DSE = str(Path(sys.executable).with_name("dse"))
CASES = {
    "python -c 'import torch'   (reference)": [sys.executable, "-c", "import torch"],
    "python -c 'import dse_core'": [sys.executable, "-c", "import dse_core"],
    "dse --help": [DSE, "--help"],
    "dse train --help": [DSE, "train", "--help"],
    "dse plugins": [DSE, "plugins"],
}


def wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"start-up time, median of {args.runs} fresh processes")
    reference = None
    for name, cmd in CASES.items():
        seconds = wall(cmd, args.runs)
        reference = reference or seconds
        print(f"  {name:<40} {seconds:6.2f} s   {seconds / reference:5.2f}x import torch")


if __name__ == "__main__":
    main()
