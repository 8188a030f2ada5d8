"""Train the embedded demo's DSE encoder with `dse train`, then install it in the plugin.

Run once by a developer after ``train_demo_gan.py`` (never in CI); it resumes if
interrupted. LPIPS is off (weight 0): the demo must be reproducible offline, and an
untrained VGG would make the LPIPS term meaningless.

    python tools/train_demo_encoder.py [--gan stylegan2] [--samples 150000] [--threads 1]
    python tools/train_demo_encoder.py --gan biggan --samples 64000 --truncation-psi 1 \
        --latent-weight z=100 --latent-weight c=100           # the BigGAN demo's (class head)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from dse_core.cli import main as dse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from check_demo_samples import demo_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=150_000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--preset", default="paper-s2")
    parser.add_argument("--gan", default="stylegan2", help="family whose embedded demo generator to invert")
    parser.add_argument("--run-dir", type=Path, help="default runs/demo-encoder (stylegan2), runs/demo-encoder-GAN otherwise")
    parser.add_argument("--latent-weight", action="append", default=[], metavar="NAME=W",
                        help="passed to dse train (e.g. z=1 for a z-space family)")
    parser.add_argument("--truncation-psi", type=float, default=None, help="passed to dse train (default: the "
                        "preset's, or the family's: BigGAN 0.4)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: reproducible and polite)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.run_dir is None:
        args.run_dir = ROOT / ("runs/demo-encoder" if args.gan == "stylegan2" else f"runs/demo-encoder-{args.gan}")
    command = ["train", "--generator", f"demo:{args.gan}", "-o", str(args.run_dir), "--preset", args.preset,
               "--samples", str(args.samples), "--batch-size", str(args.batch_size), "--lpips-weight", "0",
               "--grid-every", "1000", "--checkpoint-every", "1000", "--log-every", "50", "--device", "cpu",
               # the recipe the installed demo encoders were trained with: paper-s2 before its lr and EMA changed
               "--lr", "0.0015", "--ema-halflife", "0"]
    if args.truncation_psi is not None:
        command += ["--truncation-psi", str(args.truncation_psi)]
    for weight in args.latent_weight:
        command += ["--latent-weight", weight]
    if (args.run_dir / "checkpoints" / "latest").is_file():
        command.append("--resume")
    code = dse(command)
    if code:
        return code
    target = demo_dir(args.gan) / "encoder"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(args.run_dir / "encoder", target)
    print(f"installed {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
