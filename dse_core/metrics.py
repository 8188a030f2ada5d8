"""Reconstruction metrics, the columns of the paper's Table III.

Definitions (also in the README): images are clamped to [-1, 1]; PSNR (peak 1),
SSIM (Gaussian window 11, data range 1) and MSE (raw, not x100) are computed on
pixels mapped to [0, 1]; LPIPS (VGG) and the cosine similarity of the flattened
images on [-1, 1]. Every metric is per image; summaries give mean and std.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim

METRICS = ("psnr", "ssim", "mse", "lpips", "cosine")


def image_metrics(x: torch.Tensor, x_rec: torch.Tensor,
                  lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Per-image metrics, each a (N,) tensor; ``lpips`` is skipped when not given."""
    x, x_rec = x.detach().float().clamp(-1, 1), x_rec.detach().float().clamp(-1, 1)
    t01, r01 = (x + 1) / 2, (x_rec + 1) / 2
    mse = (t01 - r01).square().flatten(1).mean(1)
    out = {
        "psnr": 10 * torch.log10(1 / mse.clamp_min(1e-10)),
        "ssim": ssim(t01, r01, data_range=1.0, size_average=False, win_size=min(11, _odd(min(x.shape[-2:])))),
        "mse": mse,
        "cosine": F.cosine_similarity(x.flatten(1), x_rec.flatten(1), dim=1),
    }
    if lpips is not None:
        with torch.no_grad():
            out["lpips"] = lpips(x, x_rec).reshape(-1).float()
    return {k: out[k].cpu() for k in METRICS if k in out}


def _odd(n: int) -> int:
    return n if n % 2 else n - 1


def summarize(rows: Sequence[Mapping[str, float]], names: Sequence[str] = METRICS) -> dict[str, dict[str, float]]:
    """Mean and (population) std of each metric over the rows that have it."""
    summary = {}
    for name in names:
        values = [float(r[name]) for r in rows if name in r and r[name] is not None]
        if values:
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
            summary[name] = {"mean": mean, "std": std, "n": len(values)}
    return summary


def format_table(summary: Mapping[str, Mapping[str, float]], lpips_note: str = "",
                 rows: Sequence[Mapping[str, Any]] = (), max_rows: int = 20) -> str:
    """Per image (up to ``max_rows``: the rest is in metrics.csv), then mean and std of each metric."""
    lines = []
    if rows:
        names = list(summary)
        width = min(max(len(str(r["output"])) for r in rows), 32)
        classes = any(r.get("class") for r in rows)
        lines.append(f"{'image':{width}s} " + " ".join(f"{n:>8s}" for n in names) + ("  class" if classes else ""))
        for r in rows[:max_rows]:
            lines.append(f"{str(r['output'])[:width]:{width}s} "
                         + " ".join(f"{r[n]:8.4f}" if r.get(n) is not None else f"{'-':>8s}" for n in names)
                         + (f"  {class_label(r.get('class'))}" if classes else ""))
        if len(rows) > max_rows:
            lines.append(f"... {len(rows) - max_rows} more in metrics.csv")
        lines.append("")
    lines.append(f"{'metric':8s} {'mean':>10s} {'std':>10s}")
    for name, stats in summary.items():
        note = f"  {lpips_note}" if name == "lpips" and lpips_note else ""
        lines.append(f"{name:8s} {stats['mean']:10.4f} {stats['std']:10.4f}{note}")
    return "\n".join(lines)


def class_label(entry: Mapping[str, Any] | None) -> str:
    """One image's class, short (the table's class column, the grid's captions): ``207 golden retriever (83%)``
    for a prediction, ``2 two (given)`` for a given class; ``-`` for none."""
    if not entry:
        return "-"
    name = f" {entry['name']}" if entry.get("name") else ""
    if entry.get("given"):
        return f"{entry['index']}{name} (given)"
    probability = entry.get("probability")
    return f"{entry['index']}{name}" + (f" ({probability:.0%})" if probability is not None else "")
