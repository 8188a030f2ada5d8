"""``dse eval``: the paper's Table III for any model: encoders x refinements, side by side, on fixed image sets.

Methods are every (encoder, refinement) pair; each is run on

* ``synthetic`` G(z) samples: z from ``G.sample_z(n, psi, generator)`` with a ``torch.Generator`` seeded
  ``seed`` (2026 by default, the seed tools/eval_demo.py uses, so the figures agree). Training draws step s of
  run seed S on rank r from ``(S * 1_000_003 + r) * 1_000_000_007 + s`` (dse_core.train.samples.step_generator):
  that equals 2026 only for run seed 0, rank 0, step 2026, so these samples are held out from every run shorter
  than 2026 steps at seed 0 (the demo encoders train 1875 steps) and from every run at another seed.
  psi is the truncation the encoder trained at (``config.fixed_latents["truncation"]``, else 1); a conditional
  G gets one uniformly drawn class per sample, from the same generator after z (as tools/eval_demo.py does);
* and/or the images of a folder, read exactly as ``dse invert`` reads them (same loading, background, batches),
  so its figures equal ``dse invert``'s metrics.json summary.

Per method and set: every metric's mean, (population) std, n and 95% interval half-width of the mean by the
normal approximation, ``1.96 * std / sqrt(n)``; and seconds per image: ``time.perf_counter`` around
E (+ refinement) + G only (not reading, not metrics), synchronised on CUDA, after one untimed warm-up batch
of E + G per encoder (first-call allocations and kernel selection are not the method's cost).

The baseline without an encoder, latent optimisation from G's mean latent (Image2StyleGAN, NVlabs' projector;
``mean_starts``, ``dse eval --optimise-from-mean STEPS``), is :func:`~dse_core.refine.refine_latents` from
:func:`~dse_core.refine.mean_latents` (fixed inputs such as BigGAN's truncation: the first encoder's); its
s/image is that optimisation + G. report.md then compares every method with it (Delta PSNR, time fraction).
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import attrs
import torch

from .config import write_bytes_atomic, write_json_atomic
from .errors import DseError
from .images import make_grid, save_image
from .invert import Inverter, image_background, output_names, scan_for_inversion
from .metrics import METRICS, image_metrics, summarize
from .refine import Refined, Refinement, mean_latents

DEFAULT_SEED = 2026
Z95 = 1.96  # the normal approximation's 95% quantile
GRID_IMAGES = 8  # per set in grid.png
MEAN_START = "mean latent"  # the encoder column of the baseline that has none
DEFINITIONS = ("PSNR (peak 1), SSIM (Gaussian window 11) and MSE (raw) on pixels in [0, 1]; LPIPS (VGG) and cosine "
               "similarity of the flattened images on [-1, 1]; images clamped to [-1, 1]; per image, then mean and "
               "population std over the set; ci95: half-width of the 95% interval of the mean, normal approximation "
               "1.96 * std / sqrt(n); seconds_per_image: wall time of E (+ refinement) + G per image, no I/O")
COLUMNS = {"psnr": "PSNR ↑", "ssim": "SSIM ↑", "mse": "MSE ↓", "lpips": "LPIPS ↓", "cosine": "cosine ↑"}


@attrs.frozen
class ImageSet:
    name: str  # "G(z)" or the folder
    x: torch.Tensor  # (N, C, H, W) in [-1, 1], on the CPU
    c: torch.Tensor | None  # (N, c_dim): the classes of G(z) (given to an encoder that needs them), else None
    source: dict  # how it was made: seed, psi / the folder and its files


@attrs.frozen
class Result:
    method: str
    set: str
    summary: dict  # metric -> {mean, std, n, ci95}
    seconds_per_image: float
    x_rec: torch.Tensor  # the first GRID_IMAGES reconstructions, CPU


@attrs.frozen
class Report:
    device: str
    sets: list[ImageSet]
    methods: list[dict]  # {name, encoder, refinement (its record, or None)}
    results: list[Result]
    lpips_note: str
    seed: int
    batch_size: int  # refinements optimise a batch at once: their s/image falls as it grows

    def result(self, method: str, set_name: str) -> Result:
        return next(r for r in self.results if r.method == method and r.set == set_name)


def synthetic_set(G, n: int, seed: int = DEFAULT_SEED, psi: float = 1.0, batch_size: int = 64,
                  device: torch.device | str = "cpu") -> ImageSet:
    """``n`` G(z) samples from a generator seeded ``seed`` (see the module notes): z, then one class each."""
    rng = torch.Generator().manual_seed(seed)
    z = G.sample_z(n, psi, generator=rng)
    labels = torch.randint(G.c_dim, (n,), generator=rng) if G.c_dim else None
    c = None if labels is None else G.class_vector(labels.tolist())
    with torch.no_grad():
        x = torch.cat([G(z[i : i + batch_size].to(device), None if c is None else c[i : i + batch_size].to(device),
                         truncation_psi=psi).cpu() for i in range(0, n, batch_size)])
    return ImageSet("G(z)", x, c, {"kind": "synthetic", "n": n, "seed": seed, "truncation_psi": psi,
                                   "classes": None if labels is None else labels.tolist()})


def folder_set(G, folder: str | Path) -> ImageSet:
    """The images under ``folder`` as ``dse invert`` reads them; a DseError when there is none or one is unreadable."""
    from .data import load_image

    scan = scan_for_inversion([folder])
    background = image_background(G)
    images = []
    for path in scan.found:
        try:
            images.append(load_image(path, G.resolution, G.img_channels, background).tensor)
        except (ValueError, OSError) as exc:
            raise DseError(f"cannot read {path}: {exc}", hint="remove it from the folder to evaluate the rest") from None
    names = output_names(scan.found, scan.roots)
    return ImageSet(str(folder), torch.stack(images), None,
                    {"kind": "folder", "n": len(images), "folder": str(folder), "images": names,
                     "background": list(background)})


def describe_device(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return str(device)


@attrs.frozen
class MeanStart:
    """The baseline without an encoder: ``refinement`` (latents only) from G's mean latent, an Inverter's interface."""

    G: object
    refinement: Refinement
    fixed: dict  # decode's other inputs (BigGAN's truncation)
    noise_mode: str = "const"
    encoder = None

    def __attrs_post_init__(self) -> None:
        if self.refinement.method != "latents" or self.refinement.then is not None:
            raise DseError("optimisation from the mean latent refines the latents only",
                           hint="give it steps (--optimise-from-mean STEPS), not another refinement")

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    def __call__(self, x: torch.Tensor, c: torch.Tensor | None = None) -> Refined:
        start = mean_latents(self.G, len(x), x.device, self.fixed)
        latents = self.refinement(self.G, None, x, start, self.G.latent_names, noise_mode=self.noise_mode)
        with torch.no_grad():
            return Refined(latents, None, self.G.decode(latents, noise_mode=self.noise_mode))


def method_name(encoder: str, refinement) -> str:
    """``encoder``, ``encoder + latents (20 steps)``, ``encoder + latents (20 steps) then generator (20 steps)``."""
    if refinement is None:
        return encoder
    stages = getattr(refinement, "stages", [refinement])
    return f"{encoder} + " + " then ".join(f"{s.method} ({s.steps} steps)" for s in stages)


def evaluate(G, encoders: Sequence[tuple[str, object]], refinements: Sequence[tuple[str, object]],
             images: torch.Tensor | str | Path | None = None, synthetic: int = 0, seed: int = DEFAULT_SEED,
             batch_size: int = 8, lpips=None, lpips_note: str = "not computed", device: torch.device | str = "cpu",
             progress: bool = False, log: Callable[[str], None] = lambda m: None,
             mean_starts: Sequence[Refinement] = ()) -> Report:
    """Every encoder x refinement on ``synthetic`` G(z) samples and/or ``images`` (a folder, or an (N, C, H, W)
    tensor in [-1, 1]); refinements are (name, Refinement or None); ``mean_starts`` latent refinements run from G's
    mean latent, no encoder (the baseline). See the module notes for what is measured."""
    if not synthetic and images is None:
        raise DseError("nothing to evaluate on", hint="pass --synthetic N and/or --images FOLDER")
    G = G.to(device).eval()
    psi = encoders[0][1].config.fixed_latents.get("truncation", 1.0)
    sets = []
    if synthetic:
        sets.append(synthetic_set(G, synthetic, seed, psi, device=device))
    if isinstance(images, torch.Tensor):
        sets.append(ImageSet("images", images.cpu(), None, {"kind": "tensor", "n": len(images)}))
    elif images is not None:
        sets.append(folder_set(G, images))
    runs = []
    for encoder_name, E in encoders:
        _warm_up(Inverter(G, E.to(device)), sets[0].x[:batch_size])
        runs += [(encoder_name, r, Inverter(G, E, refinement=r)) for _, r in refinements]
    fixed = getattr(encoders[0][1].config, "fixed_latents", {})
    runs += [(MEAN_START, r, MeanStart(G, r, fixed)) for r in mean_starts]
    methods, results = [], []
    for encoder_name, refinement, inverter in runs:
        name = method_name(encoder_name, refinement)
        methods.append({"name": name, "encoder": None if encoder_name == MEAN_START else encoder_name,
                        "refinement": None if refinement is None else refinement.record()})
        if encoder_name == MEAN_START:
            methods[-1]["start"] = "G's mean latent (no encoder): ws = w_avg; z = 0; c = 1 / c_dim"
        for image_set in sets:
            log(f"evaluating {name} on {image_set.name} ({len(image_set.x)} images)")
            results.append(_run(inverter, image_set, name, batch_size, lpips, progress))
    return Report(describe_device(device), sets, methods, results, lpips_note, seed, batch_size)


def _warm_up(inverter: Inverter, x: torch.Tensor) -> None:
    if not inverter.encoder.needs_c:  # a conditional E without a class head needs c: its first batch warms it
        inverter(x)


def _run(inverter: Inverter, image_set: ImageSet, name: str, batch_size: int, lpips, progress: bool) -> Result:
    """One method on one set: metrics per image (as dse invert computes them) and the timed E (+ refinement) + G."""
    from tqdm import tqdm

    rows, recons, seconds = [], [], 0.0
    needs_c = getattr(inverter.encoder, "needs_c", False)  # the mean start has no encoder: it optimises c too
    if needs_c and image_set.c is None:
        raise DseError(f"{name} is conditional and cannot predict the class: it needs the class of each image",
                       hint="evaluate it on --synthetic only (its classes are known)")
    starts = range(0, len(image_set.x), batch_size)
    for i in tqdm(starts, desc=f"{name} on {image_set.name}", unit="batch", leave=False, disable=not progress):
        x = image_set.x[i : i + batch_size]
        c = image_set.c[i : i + batch_size] if needs_c else None
        inversion, elapsed = _timed(inverter, x, c)
        seconds += elapsed
        x_rec = inversion.x_rec.cpu()
        scores = image_metrics(x, x_rec, lpips=lpips)
        rows += [{k: float(v[j]) for k, v in scores.items()} for j in range(len(x))]
        if sum(len(r) for r in recons) < GRID_IMAGES:
            recons.append(x_rec)
    summary = {k: {**s, "ci95": Z95 * s["std"] / math.sqrt(s["n"])} for k, s in summarize(rows).items()}
    return Result(name, image_set.name, summary, seconds / len(image_set.x), torch.cat(recons)[:GRID_IMAGES])


def _timed(inverter: Inverter, x: torch.Tensor, c: torch.Tensor | None):
    device = inverter.device
    x = x.to(device)  # the copy to the device is I/O, not the method
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    inversion = inverter(x, c)
    sync()
    return inversion, time.perf_counter() - start


# --- the report's files ----------------------------------------------------------------------------------------


def write_report(report: Report, out_dir: str | Path) -> Path:
    """report.md, report.csv, report.json and grid.png in ``out_dir``."""
    out_dir = Path(out_dir)
    write_bytes_atomic(out_dir / "report.md", (markdown(report) + "\n").encode())
    write_bytes_atomic(out_dir / "report.csv", to_csv(report).encode())
    write_json_atomic(out_dir / "report.json", to_json(report))
    save_image(grid(report), out_dir / "grid.png")
    return out_dir


def header(report: Report) -> str:
    sets = "; ".join(_describe_set(s) for s in report.sets)
    return (f"Device: {report.device}. Sets: {sets}. LPIPS: {report.lpips_note}. "
            f"± is the 95% interval of the mean (normal approximation, 1.96·std/√n); "
            f"s/image: E (+ refinement) + G only (mean latent: the optimisation + G), batches of {report.batch_size}.")


def _describe_set(image_set: ImageSet) -> str:
    src = image_set.source
    if src["kind"] == "synthetic":
        return f"G(z), n = {src['n']}, seed {src['seed']}, psi {src['truncation_psi']:g}"
    return f"{image_set.name}, n = {src['n']}"


def markdown(report: Report) -> str:
    lines = [header(report), "",
             "grid.png: per set, the inputs, then one row per method (#: its number here).", "",
             "| # | method | set | " + " | ".join(COLUMNS[m] for m in METRICS) + " | s/image |",
             "|---:|---|---|" + "---:|" * (len(METRICS) + 1)]
    numbers = {m["name"]: i for i, m in enumerate(report.methods, 1)}
    for r in report.results:
        cells = [_cell(r.summary.get(m)) for m in METRICS]  # a metric not computed (LPIPS): "–"
        lines.append(f"| {numbers[r.method]} | {r.method} | {r.set} | " + " | ".join(cells) + f" | {r.seconds_per_image:.4g} |")
    return "\n".join(lines + frontier(report))


def baseline(report: Report) -> str | None:
    """The optimisation-alone method the others are measured against: the mean start with the most steps."""
    starts = [m for m in report.methods if m["encoder"] is None]
    return max(starts, key=lambda m: m["refinement"]["steps"])["name"] if starts else None


def frontier(report: Report) -> list[str]:
    """report.md's second table: each method's PSNR and time per image relative to optimisation alone, per set."""
    if (base := baseline(report)) is None:
        return []
    numbers = {m["name"]: i for i, m in enumerate(report.methods, 1)}
    lines = ["", f"Against optimisation alone (#{numbers[base]}, {base}; no encoder): PSNR difference and the "
             "fraction of its time per image.", "",
             "| # | method | set | Δ PSNR (dB) | time fraction |", "|---:|---|---|---:|---:|"]
    for r in report.results:
        b = report.result(base, r.set)
        delta = r.summary["psnr"]["mean"] - b.summary["psnr"]["mean"]
        lines.append(f"| {numbers[r.method]} | {r.method} | {r.set} | {delta:+.2f} | "
                     f"{r.seconds_per_image / b.seconds_per_image:.3f} |")
    return lines


def _cell(stats: dict | None) -> str:
    if stats is None:
        return "–"
    digits = 2 if abs(stats["mean"]) >= 1 else 4
    return f"{stats['mean']:.{digits}f} ± {stats['ci95']:.{digits}f}"


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    fields = ["method", "set", "metric", "mean", "std", "ci95", "n", "seconds_per_image", "device"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for r in report.results:
        for metric, s in r.summary.items():
            writer.writerow({"method": r.method, "set": r.set, "metric": metric, "mean": s["mean"], "std": s["std"],
                             "ci95": s["ci95"], "n": s["n"], "seconds_per_image": r.seconds_per_image,
                             "device": report.device})
    return buffer.getvalue()


def to_json(report: Report) -> dict:
    return {
        "definitions": DEFINITIONS,
        "device": report.device,
        "lpips": report.lpips_note,
        "seed": report.seed,
        "batch_size": report.batch_size,
        "sets": [{"name": s.name, **s.source} for s in report.sets],
        "methods": report.methods,
        "baseline": baseline(report),  # optimisation alone, which report.md compares every method with
        "results": [{"method": r.method, "set": r.set, "summary": r.summary,
                     "seconds_per_image": r.seconds_per_image} for r in report.results],
    }


def grid(report: Report) -> torch.Tensor:
    """Per set, its first images in a row, then a row per method's reconstructions, captioned with the method's
    number in report.md's table (a name does not fit under a 32 px image)."""
    tiles, labels = [], []
    numbers = {m["name"]: f"#{i}" for i, m in enumerate(report.methods, 1)}
    for image_set in report.sets:
        rows = [("input", image_set.x[:GRID_IMAGES])]
        rows += [(numbers[r.method], r.x_rec) for r in report.results if r.set == image_set.name]
        for label, x in rows:
            blank = x.new_full((GRID_IMAGES - len(x), *x.shape[1:]), -1.0)  # short sets keep the columns aligned
            tiles.append(torch.cat([x.float(), blank]))
            labels += [label] + [None] * (GRID_IMAGES - 1)
    return make_grid(torch.cat(tiles), nrow=GRID_IMAGES, labels=labels)
