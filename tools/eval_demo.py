"""A demo encoder's figures for the READMEs: PSNR/SSIM on held-out G(z) and on held-out real digits.

    python tools/eval_demo.py [--json docs/demo-figures.json] [--grid docs/demo-grid.png]
    python tools/eval_demo.py --gan pggan --json plugins/dse-plugin-pggan/docs/demo-figures.json \
        --grid plugins/dse-plugin-pggan/docs/demo-grid.png

* 256 G(z) samples from a seed the encoder never trained on (training draws z from
  seed 0, rank 0, step s; these come from their own generator seeded 2026);
* the 297 real digits held out from both the GAN and the encoder (demo_digits.HELDOUT),
  as 32 px RGB images, the same preprocessing the GAN was trained on.
Metric definitions are dse's (dse_core.metrics): pixels in [0, 1] for PSNR (peak 1),
SSIM and MSE; cosine similarity on [-1, 1]. LPIPS is left out: it needs VGG16 weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_digits import load_split, to_images  # noqa: E402

from dse_core import Inverter, load_encoder, load_generator  # noqa: E402
from dse_core.images import make_grid, save_image  # noqa: E402
from dse_core.metrics import format_table, image_metrics, summarize  # noqa: E402

SAMPLES, SEED = 256, 2026


def evaluate(inverter: Inverter, images: torch.Tensor, labels: torch.Tensor | None = None,
             batch: int = 64) -> tuple[dict, torch.Tensor]:
    """Metric summaries of E then G on ``images``; with ``labels`` (a class-head encoder), its class accuracy too."""
    rows, recons, hits = [], [], []
    for i in range(0, len(images), batch):
        x = images[i : i + batch]
        inversion = inverter(x)
        recon = inversion.x_rec.cpu()
        scores = image_metrics(x, recon)
        rows += [{k: float(v[j]) for k, v in scores.items()} for j in range(len(x))]
        recons.append(recon)
        if labels is not None:
            hits.append(inversion.latents["c"].argmax(dim=1).cpu() == labels[i : i + batch])
    summary = summarize(rows)
    if hits:
        summary["class_accuracy"] = round(float(torch.cat(hits).float().mean()), 4)
    return summary, torch.cat(recons)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gan", default="stylegan2", help="the family whose embedded demo to evaluate")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--grid", type=Path, default=None, help="write a reconstruction grid here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    G = load_generator(f"demo:{args.gan}")
    E = load_encoder(f"demo:{args.gan}", generator=G)
    inverter = Inverter(G, E)
    psi = E.config.fixed_latents.get("truncation", 1.0)  # the truncation E was trained at (BigGAN), else none
    rng = torch.Generator().manual_seed(SEED)
    z = G.sample_z(SAMPLES, psi, generator=rng)
    fake_labels = torch.randint(G.c_dim, (SAMPLES,), generator=rng) if G.c_dim else None
    with torch.no_grad():
        fakes = G(z, None if fake_labels is None else G.class_vector(fake_labels.tolist()), truncation_psi=psi)
    _, _, heldout, heldout_labels = load_split()
    reals = to_images(heldout)
    class_head = "c" in E.latent_shapes
    figures = {}
    for name, images, labels in (("G(z), 256 held-out seeds", fakes, fake_labels),
                                 (f"real digits, {len(reals)} held out", reals, torch.as_tensor(heldout_labels))):
        summary, recon = evaluate(inverter, images, labels if class_head else None)
        figures[name] = summary
        accuracy = f"class head accuracy {summary['class_accuracy']:.3f}\n" if class_head else ""
        print(f"{name}\n{format_table({k: v for k, v in summary.items() if k != 'class_accuracy'})}\n{accuracy}")
        if args.grid and name.startswith("real"):
            save_image(make_grid(torch.cat([images[:8], recon[:8]]), nrow=8), args.grid)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
