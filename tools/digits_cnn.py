"""A small CNN that classifies the demo digits anywhere in the frame: Grad-CAM's classifier for misaligned digits.

The paper's Grad-CAM classifier is an ImageNet VGG16; on 32 px digits it says nothing useful,
so the misaligned-images experiment (``misaligned_experiment.py``) uses this instead, through
``dse train --attention gradcam --gradcam-model tools/digits_cnn.py:digits_cnn --gradcam-layer
features.6 --gradcam-mean 0.5 --gradcam-std 0.5 --gradcam-weights FILE``: three 3x3 convs (16, 32,
64 maps; max-pools after the first two), global average pooling, one linear layer. It
trains on the 1500 training digits, each drawn at a random scale and place (``misalign``)
every time it is sampled, and takes 32 px RGB images in [-1, 1] (mean = std = 0.5 on [0, 1]).

    python tools/digits_cnn.py --out runs/misaligned/digits-cnn.safetensors   # about a minute, 1 thread

Prints held-out accuracy on the 297 held-out digits, as they are and misaligned (fixed seed),
and where its Grad-CAM++ heat maps put their mass: the fraction inside each misaligned digit's
ink box, against the box's share of the frame. Seeded: the same arguments give the same weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_digits import load_split, misalign, to_images  # noqa: E402

LAYER = "features.6"  # the last conv, as VGG16's features.28 in the paper: an 8x8 map on 32 px inputs
MEAN = STD = (0.5, 0.5, 0.5)  # it takes [-1, 1] images: ((x + 1) / 2 - 0.5) / 0.5 = x
HELDOUT_SEED = 2026  # the misaligned held-out digits (misaligned_experiment.py writes the same ones)


class DigitsCNN(nn.Module):
    """conv-relu-pool, conv-relu-pool, conv-relu, global average pool, linear: (N, 3, H, W) -> (N, 10) logits."""

    def __init__(self, channels: tuple[int, int, int] = (16, 32, 64), classes: int = 10):
        super().__init__()
        a, b, c = channels
        self.features = nn.Sequential(
            nn.Conv2d(3, a, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(b, c, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def digits_cnn() -> DigitsCNN:
    """The architecture, untrained (``--gradcam-model tools/digits_cnn.py:digits_cnn``; weights by ``--gradcam-weights``)."""
    return DigitsCNN()


def heldout_images(misaligned: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The 297 held-out digits as (N, 3, 32, 32) in [-1, 1], misaligned with ``HELDOUT_SEED`` if asked, and labels."""
    _, _, x8, y = load_split()
    images = to_images(x8)
    if misaligned:
        images = misalign(images, torch.Generator().manual_seed(HELDOUT_SEED))
    return images, torch.as_tensor(y)


def train(steps: int = 2000, batch: int = 64, lr: float = 2e-3, seed: int = 0, log_every: int = 500) -> DigitsCNN:
    """Adam on cross-entropy; every batch is drawn from the training digits and misaligned afresh."""
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    train_x, train_y, _, _ = load_split()
    images, labels = to_images(train_x), torch.as_tensor(train_y)
    model = digits_cnn().train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in range(1, steps + 1):
        pick = torch.randint(len(images), (batch,), generator=rng)
        loss = F.cross_entropy(model(misalign(images[pick], rng)), labels[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % log_every == 0:
            print(f"step {step}/{steps}  loss {loss.item():.4f}", flush=True)
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((model(images).argmax(dim=1) == labels).float().mean())


def heat_map_mass(model: nn.Module, images: torch.Tensor) -> dict:
    """Grad-CAM++ (dse's, at ``LAYER``) on ``images``: mean fraction of each heat map inside the ink's bounding
    box, and the box's mean share of the frame (what a map spread evenly would score)."""
    from dse_core.loss import GradCam

    maps, _ = GradCam(model, LAYER, mean=MEAN, std=STD)(images)
    ink = images.mean(dim=1) > 0  # (N, H, W): ink is +1, background -1
    rows, cols = ink.any(dim=2), ink.any(dim=1)
    box = torch.zeros_like(ink)
    for i in range(len(images)):
        r, c = rows[i].nonzero().flatten(), cols[i].nonzero().flatten()
        box[i, r.min():r.max() + 1, c.min():c.max() + 1] = True
    m = maps[:, 0]
    inside = (m * box).sum(dim=(1, 2)) / m.sum(dim=(1, 2)).clamp_min(1e-8)
    return {"mass_in_ink_box": round(float(inside.mean()), 4), "ink_box_area": round(float(box.float().mean()), 4)}


def report(model: nn.Module) -> dict:
    aligned, labels = heldout_images(misaligned=False)
    shifted, _ = heldout_images(misaligned=True)
    return {"heldout_accuracy_aligned": round(accuracy(model, aligned, labels), 4),
            "heldout_accuracy_misaligned": round(accuracy(model, shifted, labels), 4),
            "gradcam_misaligned": heat_map_mass(model, shifted)}


def main(argv: list[str] | None = None) -> int:
    from safetensors.torch import save_file

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/misaligned/digits-cnn.safetensors"))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: reproducible and polite)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = train(args.steps, seed=args.seed)
    minutes = (time.perf_counter() - start) / 60
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out)
    figures = {"steps": args.steps, "seed": args.seed, "train_minutes": round(minutes, 2), **report(model)}
    args.out.with_suffix(".json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
