"""Do the demo generator's samples look like digits? A classifier trained on real digits says.

A logistic regression is fitted on the GAN's training split of scikit-learn's digits
(8x8, 0..16). Generator samples are downsampled back to 8x8 greyscale and scored:
mean top-1 confidence, the fraction above 0.9 and the predicted-class histogram
(every digit should appear). Held-out real digits give the reference figures, both
as they are and after the same 32 px round trip the samples go through.

Usage::

    python tools/check_demo_samples.py [GENERATOR_DIR] [--gan stylegan2] [--samples 2000] [--grid samples.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_digits import load_split, to_digits, to_images  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIDENT = 0.9


def demo_dir(gan: str) -> Path:
    """The embedded demo folder of the plugin for ``gan`` in this repository (``generator/`` and ``encoder/``)."""
    return ROOT / f"plugins/dse-plugin-{gan}/dse_plugin_{gan}/demo"


def psis(G) -> tuple[float, ...]:
    """The truncations a sample report covers: 1.0, and 0.7 where the family truncates."""
    return (1.0, 0.7) if G.has_truncation else (1.0,)


def train_classifier(x8: np.ndarray, y: np.ndarray):
    """Logistic regression on 8x8 digits in 0..16 (held-out accuracy about 0.91)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=5000).fit(x8.reshape(len(x8), 64) / 16, y)


def score(classifier, features: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Confidence figures of (N, 64) digits in 0..16; accuracy too when labels are given."""
    probs = classifier.predict_proba(features / 16)
    top = probs.max(axis=1)
    report = {
        "n": len(features),
        "mean_confidence": round(float(top.mean()), 4),
        "confident_fraction": round(float((top > CONFIDENT).mean()), 4),
        "histogram": np.bincount(probs.argmax(axis=1), minlength=10).tolist(),
    }
    if labels is not None:
        report["accuracy"] = round(float((probs.argmax(axis=1) == labels).mean()), 4)
    return report


def sample_classes(G, n: int) -> torch.Tensor | None:
    """A conditional generator's classes for ``n`` samples, 0, 1, ..., 9, 0, ... (one-hot); None otherwise."""
    return G.class_vector([i % G.c_dim for i in range(n)]) if G.c_dim else None


@torch.no_grad()
def sample(G, n: int, truncation_psi: float, seed: int = 0, batch: int = 250) -> torch.Tensor:
    """``n`` images from fixed latents (``seed``; classes cycled for a conditional G), noise_mode const."""
    z = G.sample_z(n, truncation_psi, generator=torch.Generator().manual_seed(seed))
    c = sample_classes(G, n)
    G = G.eval()
    return torch.cat([G(z[i : i + batch], None if c is None else c[i : i + batch], truncation_psi=truncation_psi,
                        noise_mode="const") for i in range(0, n, batch)])


def check_generator(G, n: int = 2000, seed: int = 0) -> dict:
    """The full report: held-out real digits (raw and 32 px round trip) and samples at each psi."""
    train_x, train_y, held_x, held_y = load_split()
    classifier = train_classifier(train_x, train_y)
    report = {
        "heldout_real": score(classifier, held_x.reshape(len(held_x), 64), held_y),
        "heldout_real_32px": score(classifier, to_digits(to_images(held_x)), held_y),
    }
    for psi in psis(G):  # a conditional generator's accuracy: does the classifier read the class it was asked for?
        labels = np.arange(n) % G.c_dim if G.c_dim else None
        report[f"psi_{psi}"] = score(classifier, to_digits(sample(G, n, psi, seed)), labels)
    return report


def format_report(report: dict) -> str:
    lines = [f"{'set':<18} {'n':>5} {'mean conf':>9} {'>' + str(CONFIDENT):>6} {'acc':>6}  class histogram 0..9"]
    for name, r in report.items():
        acc = f"{r['accuracy']:.3f}" if "accuracy" in r else "-"
        conf, frac = r["mean_confidence"], r["confident_fraction"]
        lines.append(f"{name:<18} {r['n']:>5} {conf:>9.3f} {frac:>6.3f} {acc:>6}  {r['histogram']}")
    missing = [name for name, r in report.items() if min(r["histogram"]) == 0]
    lines.append("all 10 classes present in every set" if not missing else f"classes missing in: {', '.join(missing)}")
    return "\n".join(lines)


def write_grid(G, path: Path, n: int = 100, seed: int = 0) -> None:
    """One PNG: each row holds 10 latents at psi 1.0, then (where the family truncates) the same 10 at psi 0.7."""
    from dse_core.images import make_grid, save_image

    rows = torch.stack([sample(G, n, psi, seed).unflatten(0, (-1, 10)) for psi in psis(G)], dim=1)
    save_image(make_grid(rows.flatten(0, 2), nrow=10 * len(psis(G))), path)


def main(argv: list[str] | None = None) -> int:
    from dse_core import load_generator

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generator", nargs="?", type=Path, help="saved generator folder (default: the --gan demo's)")
    parser.add_argument("--gan", default="stylegan2", help="family whose embedded demo to check (default stylegan2)")
    parser.add_argument("--samples", type=int, default=2000, help="samples per truncation psi")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample latents")
    parser.add_argument("--grid", type=Path, help="also write a PNG grid: rows of 10 samples at psi 1.0, then the same 10 at 0.7")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    G = load_generator(args.generator or demo_dir(args.gan) / "generator")
    print(format_report(check_generator(G, args.samples, args.seed)))
    if args.grid:
        write_grid(G, args.grid, seed=args.seed)
        print(f"grid: {args.grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
