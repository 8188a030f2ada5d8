"""Write ``examples/digit-{label}.png``: held-out real digits as 32 px RGB, the demo's input images.

For each label asked for, the first digit of the held-out split with that label
(scikit-learn digits, indices 1500..1796, never seen in training) is upscaled
exactly as the demo models' training data (``demo_digits.to_images``).

Usage::

    python tools/make_demo_examples.py [--labels 2 3 5 8] [--out examples]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_digits import HELDOUT, load_split, to_images  # noqa: E402

from dse_core.images import save_image  # noqa: E402

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[2, 3, 5, 8], help="which digits to write")
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR)
    args = parser.parse_args(argv)
    _, _, held_x, held_y = load_split()
    images = to_images(held_x)
    for label in args.labels:
        i = int((held_y == label).nonzero()[0][0])
        path = save_image(images[i], args.out / f"digit-{label}.png")
        print(f"{path}: scikit-learn digits index {HELDOUT[0] + i}, label {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
