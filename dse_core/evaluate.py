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
  so its figures equal ``dse invert``'s metrics.json summary. A file that cannot be read is skipped, named in the
  log and listed in the report (``dse invert`` skips it the same way).

Conditional generators: the class accuracy of each method is how often the class it predicts (E's class head,
refined with the latents by a latent refinement; the mean start: its optimised class) is the true one: on G(z)
the sampled class, on images the class given as ``dse invert`` takes it (``--class``: then every method decodes
the given class, as ``dse invert`` does, and E's prediction is what is scored). An encoder without a class head is
given the sampled class on G(z) (it is not scored) and cannot run on images without ``--class``.

Per method and set: every metric's mean, (population) std, n and 95% interval half-width of the mean by Student's
t, ``t(0.975, n - 1) * s / sqrt(n)`` with ``s`` the sample std (:func:`~dse_core.metrics.interval95`; none for n = 1);
every image's scores too (``per_image.csv``); and seconds per image: ``time.perf_counter`` around
E (+ refinement) + G only (not reading, not metrics), synchronised on CUDA, after one untimed warm-up batch
of E + G and one step of each refinement method per encoder (first-call allocations and kernel selection are not
the method's cost). The methods take turns batch by batch (the order reversed every other batch), so that a busy
spell on a shared machine slows them alike: the time fractions stay comparable where the seconds do not.

The baseline without an encoder, latent optimisation from G's mean latent (Image2StyleGAN, NVlabs' projector;
``mean_starts``, ``dse eval --optimise-from-mean STEPS``), is :func:`~dse_core.refine.refine_latents` from
:func:`~dse_core.refine.mean_latents` (fixed inputs such as BigGAN's truncation: the first encoder's); its
s/image is that optimisation + G. report.md then compares every method with it (Delta PSNR, time fraction).

Faces (``identity``, a :class:`~dse_core.identity.FaceIdentity`; ``dse eval --identity``): two more columns, on every
set: identity, the cosine similarity of dlib's face descriptors of input and reconstruction, both at the landmarks
found on the input, and same person, the fraction whose descriptor distance is < 0.6 (dlib's threshold). An input
without a face is left out of both (their n); the report's header says how many inputs of each set had a face.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Callable, Sequence

import attrs
import torch

from .config import write_bytes_atomic, write_json_atomic
from .data import IMAGE_SUFFIXES, describe_unsupported, load_image
from .errors import DseError
from .images import make_grid, save_image
from .invert import Inversion, Inverter, image_background, output_names, scan_for_inversion
from .metrics import IDENTITY, IDENTITY_DEFINITION, METRICS, image_metrics, interval95, per_image, summarize
from .refine import DEFAULT_LR, Refinement, mean_latents

DEFAULT_SEED = 2026
GRID_IMAGES = 8  # per set in grid.png
MEAN_START = "mean latent"  # the encoder column of the baseline that has none
DEFINITIONS = ("PSNR (peak 1), SSIM (Gaussian window 11) and MSE (raw) on pixels in [0, 1]; LPIPS (VGG) and cosine "
               "similarity of the flattened images on [-1, 1]; images clamped to [-1, 1]; per image, then mean and "
               "population std over the set; ci95: half-width of the 95% interval of the mean, Student's t: "
               "t(0.975, n - 1) * s / sqrt(n), s the sample std (ddof 1); none for n = 1; per_image.csv: every "
               "image's scores; seconds_per_image: wall time of E (+ refinement) + G per image, no I/O; "
               "class_accuracy (conditional generators): 1 where the method's predicted class (argmax) is the true "
               "one (G(z): the sampled class; images: --class), else 0; not scored where the method is given the class")
SCORED = (*METRICS, *IDENTITY, "class_accuracy")
COLUMNS = {"psnr": "PSNR ↑", "ssim": "SSIM ↑", "mse": "MSE ↓", "lpips": "LPIPS ↓", "cosine": "cosine ↑",
           "identity": "identity ↑", "same_person": "same person ↑"}


@attrs.frozen
class ImageSet:
    name: str  # "G(z)" or the folder
    x: torch.Tensor  # (N, C, H, W) in [-1, 1], on the CPU
    c: torch.Tensor | None  # (N, c_dim) each image's true class: G(z)'s sampled one, or the images' --class; else None
    source: dict  # how it was made: seed, psi / the folder, its files and those skipped
    class_given: bool = False  # c is given to every method (--class); else only to an E without a class head

    def image_names(self) -> list[str]:
        """per_image.csv's image column: a folder's file names, G(z)'s seed and sample index, else the index."""
        if self.source["kind"] == "folder":
            return self.source["files"]
        if self.source["kind"] == "synthetic":
            return [f"seed {self.source['seed']} index {i}" for i in range(len(self.x))]
        return [f"index {i}" for i in range(len(self.x))]


@attrs.frozen
class Result:
    method: str
    set: str
    summary: dict  # metric -> {mean, std, n, ci95}
    seconds_per_image: float
    x_rec: torch.Tensor  # the first GRID_IMAGES reconstructions, CPU
    classes: str | None = None  # "predicted" (scored in summary["class_accuracy"]) or "given"; None: no class / truth
    rows: list[dict] = attrs.field(factory=list)  # per image, in the set's order: metric -> score (per_image.csv)


@attrs.frozen
class Report:
    device: str
    sets: list[ImageSet]
    methods: list[dict]  # {name, encoder, refinement (its record, or None)}
    results: list[Result]
    lpips_note: str
    seed: int
    batch_size: int  # refinements optimise a batch at once: their s/image falls as it grows
    identity: str | None = None  # the face model that computed the identity columns; None: not computed

    def faces_found(self, set_name: str) -> int:
        """How many inputs of a set had a face (the identity's n; the same for every method: found on the input)."""
        result = next(r for r in self.results if r.set == set_name)
        return result.summary.get("identity", {}).get("n", 0)

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


def folder_set(G, folder: str | Path, c: torch.Tensor | None = None,
               log: Callable[[str], None] = lambda m: None, align=None) -> ImageSet:
    """The images under ``folder`` as ``dse invert`` reads them: a file it cannot read is skipped, logged and listed
    in ``source["skipped"]``; a DseError when none is left. ``c`` (1, c_dim): every image's class (``--class``)."""
    scan = scan_for_inversion([folder])
    if scan.unsupported:
        log(f"skipped {describe_unsupported(scan.unsupported)} in {folder}: dse reads {', '.join(IMAGE_SUFFIXES)}")
    background = image_background(G)
    images, names, files, skipped = [], [], [], []
    for path, name in zip(scan.found, output_names(scan.found, scan.roots)):
        try:
            images.append(load_image(path, G.resolution, G.img_channels, background, align=align).tensor)
            names.append(name)
            files.append(_file_name(path, folder))
        except (ValueError, OSError) as exc:
            skipped.append({"image": str(path), "reason": str(exc)})
            log(f"skipped {path}: {exc}")
    if not images:
        raise DseError(f"no image in {folder} could be read: " + "; ".join(f"{s['image']}: {s['reason']}"
                                                                          for s in skipped))
    source = {"kind": "folder", "n": len(images), "folder": str(folder), "images": names, "files": files,
              "skipped": skipped, "background": list(background)}
    if align is not None:  # dse eval --align: each photo's FFHQ face crop (dse_core.align)
        source["aligned"] = "FFHQ face crop"
    return _given_class(ImageSet(str(folder), torch.stack(images), None, source), c)


def _file_name(path: Path, folder: str | Path) -> str:
    """``path`` below ``folder`` (``sub/a.png``); its name where ``folder`` is the file itself."""
    folder = Path(folder)
    return Path(path).relative_to(folder).as_posix() if folder.is_dir() else Path(path).name


def _given_class(image_set: ImageSet, c: torch.Tensor | None) -> ImageSet:
    """``image_set`` with ``c`` (1, c_dim), the class of every image (dse invert's --class), given to every method."""
    if c is None:
        return image_set
    if c.ndim != 2 or len(c) != 1:
        raise DseError(f"evaluate: c is the one class of every image, (1, c_dim); got {tuple(c.shape)}")
    source = {**image_set.source, "class": int(c.argmax())}
    return attrs.evolve(image_set, c=c.cpu().expand(len(image_set.x), -1), source=source, class_given=True)


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

    def __call__(self, x: torch.Tensor, c: torch.Tensor | None = None) -> Inversion:
        """``c``: a given class (kept, not optimised); else the class is optimised too, and is the prediction."""
        start = mean_latents(self.G, len(x), x.device, self.fixed)
        names = self.G.latent_names
        if c is not None:
            start, names = {**start, "c": c.to(x.device)}, [n for n in names if n != "c"]
        latents = self.refinement(self.G, None, x, start, names, noise_mode=self.noise_mode)
        with torch.no_grad():
            x_rec = self.G.decode(latents, noise_mode=self.noise_mode)
        return Inversion(latents, x_rec, latents["c"] if "c" in names else None)


def method_name(encoder: str, refinement) -> str:
    """``encoder``, ``encoder + latents (20 steps)``, ``encoder + latents (20 steps) then generator (20 steps)``;
    a learning rate other than the method's default is named too: ``latents (200 steps, lr 0.03)``."""
    if refinement is None:
        return encoder
    stages = getattr(refinement, "stages", [refinement])
    return f"{encoder} + " + " then ".join(f"{s.method} ({s.steps} step{'' if s.steps == 1 else 's'}{_lr_note(s)})"
                                          for s in stages)


def _lr_note(stage: Refinement) -> str:
    return "" if stage.lr == DEFAULT_LR[stage.method] else f", lr {stage.lr:g}"


def evaluate(G, encoders: Sequence[tuple[str, object]], refinements: Sequence[tuple[str, object]],
             images: torch.Tensor | str | Path | None = None, synthetic: int = 0, seed: int = DEFAULT_SEED,
             batch_size: int = 8, lpips=None, lpips_note: str = "not computed", device: torch.device | str = "cpu",
             progress: bool = False, log: Callable[[str], None] = lambda m: None,
             mean_starts: Sequence[Refinement] = (), c: torch.Tensor | None = None, align=None,
             identity=None) -> Report:
    """Every encoder x refinement on ``synthetic`` G(z) samples and/or ``images`` (a folder, or an (N, C, H, W)
    tensor in [-1, 1]); refinements are (name, Refinement or None); ``mean_starts`` latent refinements run from G's
    mean latent, no encoder (the baseline). ``c`` (1, c_dim): the class of every one of ``images`` (dse invert's
    --class). ``align`` (a :class:`~dse_core.align.FaceDetector`): a folder's photos are read as their FFHQ face
    crops (dse invert's --align). ``identity`` (a :class:`~dse_core.identity.FaceIdentity`): the identity columns too.
    See the module notes for what is measured."""
    if not synthetic and images is None:
        raise DseError("nothing to evaluate on", hint="pass --synthetic N and/or --images FOLDER")
    if c is not None and images is None:
        raise DseError("a given class is the class of the images: G(z) samples keep their sampled class",
                       hint="pass --images FOLDER with --class, or drop --class")
    names = method_names([name for name, _ in encoders], [r for _, r in refinements], mean_starts)  # before any work
    G = G.to(device).eval()
    psi = encoders[0][1].config.fixed_latents.get("truncation", 1.0)
    sets = []
    if synthetic:
        sets.append(synthetic_set(G, synthetic, seed, psi, device=device))
    if isinstance(images, torch.Tensor):
        sets.append(_given_class(ImageSet("images", images.cpu(), None, {"kind": "tensor", "n": len(images)}), c))
    elif images is not None:
        sets.append(folder_set(G, images, c, log, align=align))
    if needs := [name for name, E in encoders if E.needs_c]:
        if unknown := [s.name for s in sets if s.c is None]:
            raise DseError(f"{needs[0]} is conditional and cannot predict the class (no class head): it needs the "
                           f"class of each image, unknown for {unknown[0]}",
                           hint="give the images' class (--class), or evaluate it on --synthetic only")
    runs = []
    for encoder_name, E in encoders:
        _warm_up(Inverter(G, E.to(device)), sets[0], batch_size, [r for _, r in refinements if r] + list(mean_starts))
        runs += [(encoder_name, r, Inverter(G, E, refinement=r)) for _, r in refinements]
    fixed = getattr(encoders[0][1].config, "fixed_latents", {})
    runs += [(MEAN_START, r, MeanStart(G, r, fixed)) for r in mean_starts]
    methods = []
    for name, (encoder_name, refinement, _) in zip(names, runs, strict=True):
        methods.append({"name": name,
                        "encoder": None if encoder_name == MEAN_START else encoder_name,
                        "refinement": None if refinement is None else refinement.record()})
        if encoder_name == MEAN_START:
            methods[-1]["start"] = ("G's mean latent (no encoder): ws = w_avg; z = 0 (a G that normalises z: one z "
                                    "drawn from seed 0); c = 1 / c_dim")
    named = [(name, inverter) for name, (_, _, inverter) in zip(names, runs)]
    by_set = []
    for image_set in sets:
        log(f"evaluating {len(named)} method(s) on {image_set.name} ({len(image_set.x)} images), taking turns by batch")
        by_set.append(_run_set(named, image_set, batch_size, lpips, progress, identity))
    results = [result for i in range(len(named)) for result in (part[i] for part in by_set)]  # method by method
    return Report(describe_device(device), sets, methods, results, lpips_note, seed, batch_size,
                  None if identity is None else identity.model)


def method_names(encoders: Sequence[str], refinements: Sequence, mean_starts: Sequence = ()) -> list[str]:
    """Every method's name in the report's order (encoders x refinements, then the mean starts); a DseError where one
    repeats: names are the report's keys (rows, numbers, CSV, grid), and the repeat would only redo the work."""
    names = [method_name(e, r) for e in encoders for r in refinements] + [method_name(MEAN_START, r)
                                                                           for r in mean_starts]
    if repeated := next((n for i, n in enumerate(names) if n in names[:i]), None):
        raise DseError(f"method {repeated!r} given twice: its rows would be indistinguishable",
                       hint="drop the repeat; to compare step budgets give each its own (--refine latents:20 "
                       "--refine latents:100)")
    return names


def _warm_up(inverter: Inverter, image_set: ImageSet, batch_size: int, refinements: Sequence[Refinement]) -> None:
    """One untimed batch of E + G, and one step of each refinement method used: first calls allocate and pick
    kernels (the backward's too), a cost that would otherwise fall on whichever method happens to run first."""
    x, c = image_set.x[:batch_size], image_set.c[:batch_size] if _class_given(inverter, image_set) else None
    inverter(x, c)
    stages = {s.method: s for r in refinements for s in r.stages}
    for method, stage in stages.items():
        n = 1 if method == "generator" else len(x)  # G is tuned one image at a time
        warm = Inverter(inverter.generator, inverter.encoder, refinement=attrs.evolve(stage, steps=1, then=None))
        warm(x[:n], None if c is None else c[:n])


def _class_given(inverter: Inverter, image_set: ImageSet) -> bool:
    """Whether a method decodes the set's true class: the images' --class, or G(z)'s sampled one to an E without a
    class head (the mean start has no encoder: it optimises c too)."""
    return image_set.c is not None and (image_set.class_given or getattr(inverter.encoder, "needs_c", False))


def _run_set(named: Sequence[tuple[str, object]], image_set: ImageSet, batch_size: int, lpips,
             progress: bool, identity=None) -> list[Result]:
    """Every method on one set, taking turns batch by batch (the order reversed every other batch), so that a busy
    spell on a shared machine slows them alike and the time fractions stay comparable."""
    from tqdm import tqdm

    tallies = [_Tally(name, inverter, image_set) for name, inverter in named]
    starts = range(0, len(image_set.x), batch_size)
    for k, i in enumerate(tqdm(starts, desc=image_set.name, unit="batch", leave=False, disable=not progress)):
        for tally in tallies if k % 2 == 0 else tallies[::-1]:
            tally.add(i, batch_size, lpips, identity)
    return [tally.result() for tally in tallies]


class _Tally:
    """One method on one set: metrics per image (as dse invert computes them) and the timed E (+ refinement) + G."""

    def __init__(self, name: str, inverter, image_set: ImageSet):
        self.name, self.inverter, self.image_set = name, inverter, image_set
        self.rows, self.recons, self.seconds, self.predicted = [], [], 0.0, False
        self.given = _class_given(inverter, image_set)

    def add(self, i: int, batch_size: int, lpips, identity=None) -> None:
        x, c = self.image_set.x[i : i + batch_size], self.image_set.c
        inversion, elapsed = _timed(self.inverter, x, c[i : i + batch_size] if self.given else None)
        self.seconds += elapsed
        x_rec = inversion.x_rec.cpu()
        scores = image_metrics(x, x_rec, lpips=lpips, identity=identity)
        rows = [per_image(scores, j) for j in range(len(x))]  # identity: none where the input has no face
        if c is not None and inversion.class_probs is not None:  # its prediction against the truth
            right = inversion.class_probs.cpu().argmax(1) == c[i : i + batch_size].argmax(1)
            self.predicted = True
            for row, hit in zip(rows, right.tolist()):
                row["class_accuracy"] = float(hit)
        self.rows += rows
        if sum(len(r) for r in self.recons) < GRID_IMAGES:
            self.recons.append(x_rec)

    def result(self) -> Result:
        summary = {k: {**s, "ci95": interval95(s)} for k, s in summarize(self.rows, SCORED).items()}
        classes = "given" if self.given and not self.predicted else "predicted" if self.predicted else None
        return Result(self.name, self.image_set.name, summary, self.seconds / len(self.image_set.x),
                      torch.cat(self.recons)[:GRID_IMAGES], classes, self.rows)


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
    """report.md, report.csv, per_image.csv, report.json and grid.png in ``out_dir``."""
    out_dir = Path(out_dir)
    write_bytes_atomic(out_dir / "report.md", (markdown(report) + "\n").encode())
    write_bytes_atomic(out_dir / "report.csv", to_csv(report).encode())
    write_bytes_atomic(out_dir / "per_image.csv", per_image_csv(report).encode())
    write_json_atomic(out_dir / "report.json", to_json(report))
    save_image(grid(report), out_dir / "grid.png")
    return out_dir


def header(report: Report) -> str:
    sets = "; ".join(_describe_set(s) for s in report.sets)
    return (f"Device: {report.device}. Sets: {sets}. LPIPS: {report.lpips_note}. "
            "± is the 95% interval of the mean (Student's t: t(0.975, n−1)·s/√n, s the sample std; n/a for n = 1); "
            f"s/image: E (+ refinement) + G only (mean latent: the optimisation + G), batches of {report.batch_size}, "
            "the methods taking turns batch by batch." + _identity_header(report))


def _identity_header(report: Report) -> str:
    if report.identity is None:
        return ""
    found = "; ".join(f"{s.name} {report.faces_found(s.name)} of {len(s.x)}" for s in report.sets)
    return (f" Identity: {report.identity}: cosine similarity of the input's and the reconstruction's face "
            "descriptors (both at the input's landmarks; unrelated faces still score about 0.85, so same person "
            "is the sharper figure); same person: descriptor distance < 0.6 (dlib's threshold); "
            f"over the inputs with a face found: {found} (the others left out).")


def _describe_set(image_set: ImageSet) -> str:
    src = image_set.source
    if src["kind"] == "synthetic":
        return f"G(z), n = {src['n']}, seed {src['seed']}, psi {src['truncation_psi']:g}"
    given = f", class {src['class']} (given)" if "class" in src else ""
    aligned = ", FFHQ face crops (--align)" if "aligned" in src else ""
    return f"{image_set.name}, n = {src['n']}{given}{aligned}"


def notes(report: Report) -> list[str]:
    """report.md's lines under the header: the class column's meaning, the files skipped."""
    lines = []
    if any(r.classes for r in report.results):
        lines.append("class ↑: how often the class a method predicts (its encoder's, refined with the latents; the "
                     "mean latent's: optimised) is the true one: G(z)'s sampled class, the images' given class; "
                     "given: the method decodes the true class; –: no true class known.")
    for image_set in report.sets:
        if skipped := image_set.source.get("skipped"):
            lines.append(f"Skipped in {image_set.name} (unreadable): "
                         + "; ".join(f"{s['image']}: {s['reason']}" for s in skipped))
    return ["", *lines] if lines else []


def markdown(report: Report) -> str:
    classes = any(r.classes for r in report.results)  # a conditional G: the class column
    faces = list(IDENTITY) if report.identity is not None else []  # --identity: its two columns
    extra = ["class ↑"] if classes else []
    lines = [header(report), *notes(report), "",
             "grid.png: per set, the inputs, then one row per method (#: its number here); per_image.csv: every "
             "image's scores.", "",
             "| # | method | set | " + " | ".join([COLUMNS[m] for m in (*METRICS, *faces)] + extra) + " | s/image |",
             "|---:|---|---|" + "---:|" * (len(METRICS) + len(faces) + len(extra) + 1)]
    numbers = {m["name"]: i for i, m in enumerate(report.methods, 1)}
    for r in report.results:
        cells = [_cell(r.summary.get(m)) for m in METRICS]  # a metric not computed (LPIPS): "–"
        cells += [_cell(r.summary.get("identity")), _fraction_cell(r.summary.get("same_person"))] if faces else []
        cells += [_class_cell(r)] if classes else []
        lines.append(f"| {numbers[r.method]} | {r.method} | {r.set} | " + " | ".join(cells)
                     + f" | {r.seconds_per_image:.4g} |")
    return "\n".join(lines + frontier(report))


def _class_cell(result: Result) -> str:
    if result.classes == "given":
        return "given"
    return _fraction_cell(result.summary.get("class_accuracy"))


def _fraction_cell(stats: dict | None) -> str:
    """A 0/1 score's mean as a share and a count: ``75% (3/4)``; "–" where no image had it."""
    if stats is None:
        return "–"
    return f"{stats['mean']:.0%} ({round(stats['mean'] * stats['n'])}/{stats['n']})"


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
    interval = "n/a" if stats["ci95"] is None else f"{stats['ci95']:.{digits}f}"  # n = 1: no interval
    return f"{stats['mean']:.{digits}f} ± {interval}"


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


def per_image_csv(report: Report) -> str:
    """One row per method, set and image (a folder's file name; G(z)'s seed and sample index): every score, empty
    where the image has none (identity: no face; class_accuracy: not scored)."""
    metrics = [m for m in SCORED if any(m in row for r in report.results for row in r.rows)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["method", "set", "image", *metrics])
    writer.writeheader()
    names = {s.name: s.image_names() for s in report.sets}
    for r in report.results:
        for image, row in zip(names[r.set], r.rows, strict=True):
            writer.writerow({"method": r.method, "set": r.set, "image": image, **row})
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
        # --identity: the face model, the definition and how many inputs of each set had a face; None: not computed
        "identity": None if report.identity is None else {
            "model": report.identity, "definition": IDENTITY_DEFINITION,
            "faces_found": {s.name: report.faces_found(s.name) for s in report.sets}},
        # class: "predicted" (scored: summary's class_accuracy), "given" (decodes the true class), None (no truth)
        "results": [{"method": r.method, "set": r.set, "summary": r.summary, "class": r.classes,
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
