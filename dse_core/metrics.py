"""Reconstruction metrics, the columns of the paper's Table III.

Definitions (also in the README): images are clamped to [-1, 1]; PSNR (peak 1),
SSIM (Gaussian window 11, data range 1) and MSE (raw, not x100) are computed on
pixels mapped to [0, 1]; LPIPS (VGG) and the cosine similarity of the flattened
images on [-1, 1]. Every metric is per image; summaries give mean and std;
``dse eval`` adds the 95% interval of the mean (:func:`interval95`: Student's t).

For faces, optionally (``identity``, :class:`dse_core.identity.FaceIdentity`): ``identity``, the cosine similarity
of dlib's face descriptors of the image and its reconstruction (both at the image's landmarks), and ``same_person``
(1 where their distance is < 0.6, dlib's threshold); NaN where the image has no face, and left out of the summary.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim

METRICS = ("psnr", "ssim", "mse", "lpips", "cosine")
IDENTITY = ("identity", "same_person")  # faces only, opt-in (dse_core.identity)
IDENTITY_DEFINITION = ("identity (faces, --identity): cosine similarity of the dlib face descriptors (128-D) of the "
                       "input and the reconstruction, both computed at the face and 5 dlib landmarks found on the "
                       "input (images under 160 px enlarged to 160 px, bicubic); same_person: 1 where the "
                       "descriptors' Euclidean distance is < 0.6 (dlib's threshold), else 0; both over the inputs "
                       "with a face found only (their n)")


def image_metrics(x: torch.Tensor, x_rec: torch.Tensor,
                  lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                  identity: Callable[[torch.Tensor, torch.Tensor], Mapping[str, torch.Tensor]] | None = None
                  ) -> dict[str, torch.Tensor]:
    """Per-image metrics, each a (N,) tensor; ``lpips`` and ``identity`` (its two metrics, NaN where an image has no
    face) are skipped when not given."""
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
    if identity is not None:
        out.update(identity(x, x_rec))
    return {k: out[k].cpu() for k in (*METRICS, *IDENTITY) if k in out}


def per_image(scores: Mapping[str, torch.Tensor], i: int) -> dict[str, float]:
    """Image ``i``'s row of :func:`image_metrics`' scores; a NaN (identity: no face) is left out."""
    return {k: float(v[i]) for k, v in scores.items() if not math.isnan(float(v[i]))}


def _odd(n: int) -> int:
    return n if n % 2 else n - 1


def summarize(rows: Sequence[Mapping[str, float]], names: Sequence[str] = (*METRICS, *IDENTITY)
              ) -> dict[str, dict[str, float]]:
    """Mean and (population) std of each metric over the rows that have it (``n``: how many)."""
    summary = {}
    for name in names:
        values = [float(r[name]) for r in rows if name in r and r[name] is not None]
        if values:
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
            summary[name] = {"mean": mean, "std": std, "n": len(values)}
    return summary


def interval95(stats: Mapping[str, float]) -> float | None:
    """Half-width of the 95% interval of a :func:`summarize` entry's mean: ``t(0.975, n - 1) * s / sqrt(n)``, with
    ``s`` the sample std (ddof 1; ``summarize``'s std is the population one, as ``dse invert`` prints it). None for
    n = 1: one value says nothing of its spread."""
    n = stats["n"]
    if n < 2:
        return None
    sample_std = stats["std"] * math.sqrt(n / (n - 1))
    return t_quantile(n - 1) * sample_std / math.sqrt(n)


@functools.lru_cache(maxsize=None)
def t_quantile(df: int, level: float = 0.95) -> float:
    """Student's t two-sided ``level`` quantile (0.95: t(0.975, df)) for whole ``df`` >= 1, exact to ~1e-13.

    Why not a library: scipy is not a dependency of dse, and torch's StudentT has no icdf. For whole df the
    t distribution's P(|T| < t) is a finite sum (Abramowitz & Stegun 26.7.3-4, :func:`_t_within`), increasing in
    theta = atan(t / sqrt(df)): bisection on theta gives the quantile, O(df) per step (0.5 s at df = 1e5, cached).
    """
    if df < 1:
        raise ValueError(f"Student's t needs df >= 1, got {df}")
    low, high = 0.0, math.pi / 2
    for _ in range(60):  # pi/2 / 2**60: below a double's resolution
        mid = (low + high) / 2
        low, high = (mid, high) if _t_within(mid, df) < level else (low, mid)
    return math.sqrt(df) * math.tan((low + high) / 2)


def _t_within(theta: float, df: int) -> float:
    """P(|T| < sqrt(df) tan theta) for Student's t with whole ``df`` (Abramowitz & Stegun 26.7.3 and 26.7.4)."""
    cos2, total, term = math.cos(theta) ** 2, 1.0, 1.0
    if df % 2 == 0:
        for k in range(1, df // 2):
            term *= (2 * k - 1) / (2 * k) * cos2
            total += term
        return math.sin(theta) * total
    for k in range(1, (df - 1) // 2):
        term *= 2 * k / (2 * k + 1) * cos2
        total += term
    return 2 / math.pi * (theta + (math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0))


def format_table(summary: Mapping[str, Mapping[str, float]], lpips_note: str = "",
                 rows: Sequence[Mapping[str, Any]] = (), max_rows: int = 20) -> str:
    """Per image (up to ``max_rows``: the rest is in metrics.csv), then mean and std of each metric."""
    lines = []
    if rows:
        names = list(summary)
        width = min(max(len(str(r["output"])) for r in rows), 32)
        classes = any(r.get("class") for r in rows)
        widths = [max(8, len(n)) for n in names]  # same_person is wider than a figure
        lines.append(f"{'image':{width}s} " + " ".join(f"{n:>{w}s}" for n, w in zip(names, widths))
                     + ("  class" if classes else ""))
        for r in rows[:max_rows]:
            lines.append(f"{str(r['output'])[:width]:{width}s} "
                         + " ".join(f"{r[n]:{w}.4f}" if r.get(n) is not None else f"{'-':>{w}s}"
                                    for n, w in zip(names, widths))
                         + (f"  {class_label(r.get('class'))}" if classes else ""))
        if len(rows) > max_rows:
            lines.append(f"... {len(rows) - max_rows} more in metrics.csv")
        lines.append("")
    name_width = max([8, *(len(n) for n in summary)])
    lines.append(f"{'metric':{name_width}s} {'mean':>10s} {'std':>10s}")
    for name, stats in summary.items():
        note = f"  {lpips_note}" if name == "lpips" and lpips_note else ""
        if name in IDENTITY:  # over the images with a face only
            note = f"  over the {stats['n']} image(s) with a face found"
        lines.append(f"{name:{name_width}s} {stats['mean']:10.4f} {stats['std']:10.4f}{note}")
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
