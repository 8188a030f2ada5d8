"""What ``dse app``'s page does, without the page: load models, invert uploads, make directions, render edits.

Every action runs the code the CLI runs and writes what the CLI writes, into a folder of this app's (one per
process, under the system's temporary folder unless ``--workdir`` says where), and returns the equivalent
``dse`` command, so that every download can be reproduced from a terminal. Functions return plain data
(paths, arrays, text), so the page (:mod:`dse_core.app.page`) only lays them out and the tests need no browser.
"""

from __future__ import annotations

import atexit
import collections
import functools
import itertools
import os
import re
import shlex
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Sequence

import attrs
import numpy as np
import torch

from ..errors import DseError, DseWarning

MAX_IMAGES = 16  # per upload: the page is for looking, dse invert is for folders
DIRECTION_METHODS = ("sefa", "pca")  # made on demand from the generator alone
CLASS_METHOD = "class"  # a conditional G: an image moved from its class to another (dse directions --method class)
DIRECTION_COMPONENTS = 10
TUNED_KEPT = MAX_IMAGES  # generators kept loaded for editing (a PTI run's tuned copies): about one run's worth
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"  # a checkout's examples/ (make demo's); not installed


@attrs.frozen
class ModelChoice:
    """One entry of the page's model list: what ``dse invert`` would be given."""

    label: str
    gan: str | None = None
    generator: str | None = None
    encoder: str | None = None

    def cli_args(self) -> list[str]:
        return [flag for name, value in (("--gan", self.gan), ("--generator", self.generator),
                                         ("--encoder", self.encoder)) if value for flag in (name, value)]


def model_choices(gan: str | None = None, generator: str | None = None,
                  encoder: str | None = None, folders: Sequence[str | Path] = ()) -> list[ModelChoice]:
    """The models the page offers: the one given on the command line first, then the encoders found in
    ``folders`` (``--models``), then every installed family's demo and the registry pairs in the cache."""
    from ..plugins import get_host

    choices = []
    if generator or encoder:
        shown = encoder or generator
        choices.append(ModelChoice(f"{gan or 'model'}: {Path(str(shown)).name or shown}", gan, generator, encoder))
    choices += folder_choices(folders)
    for name, family in sorted(get_host().families.items()):
        if family.demo is not None and all((family.demo / kind).is_dir() for kind in ("generator", "encoder")):
            choices.append(ModelChoice(f"{name} demo", gan=name))
    choices += _cached_registry_pairs()
    if gan and not (generator or encoder):  # --gan alone: its demo first
        choices.sort(key=lambda choice: choice.gan != gan)
    if not choices:
        raise DseError("no model to show: no installed GAN plugin ships a demo",
                       hint="pass --generator and --encoder, or pip install dse-plugin-stylegan2")
    return choices


def _cached_registry_pairs() -> list[ModelChoice]:
    """Registry encoders (``dse models``) already in the Hub cache with the generator they invert: no download."""
    from ..models import registry
    from ..plugins import get_host

    known = get_host().checkpoints
    pairs = []
    for entry in sorted(known.values(), key=lambda e: e.id):
        target = known.get(entry.inverts or "")
        if entry.kind == "encoder" and target is not None and all(registry.cached_path(e) for e in (entry, target)):
            pairs.append(ModelChoice(f"{entry.id} (registry)", entry.family, target.id, entry.id))
    return pairs


# --- converted folders and trained encoders (``--models DIR``) -----------------------------------------------------

@attrs.frozen
class SavedModel:
    """A folder dse wrote (``config.json`` + ``model.safetensors``), as its config describes it: no weights read."""

    path: Path
    kind: str  # "generator" or "encoder"
    family: str
    resolution: int | None
    trained_for: dict  # an encoder's record of its generator (``source.generator``: id, fingerprint, ...)


def folder_choices(folders: Sequence[str | Path]) -> list[ModelChoice]:
    """Every encoder saved in ``folders`` (each folder, its subfolders and theirs: a ``dse train`` run's
    ``encoder/``), with the generator folder it was trained on where that one is found there too."""
    found: dict[Path, SavedModel] = {}
    for folder in folders:
        for model in saved_models(folder):
            found.setdefault(model.path.resolve(), model)  # a folder reached twice is listed once
    generators = [m for m in found.values() if m.kind == "generator"]
    encoders = [m for m in found.values() if m.kind == "encoder"]
    choices, paired, fingerprints = [], set(), {}
    for encoder in encoders:
        generator, note = _generator_of(encoder, generators, fingerprints)
        if generator is not None:
            paired.add(generator.path)
            choices.append(ModelChoice(f"{encoder.family}: {encoder.path} on {generator.path}", encoder.family,
                                       str(generator.path), str(encoder.path)))
        else:  # dse invert --encoder alone: the generator the encoder records (loaded when picked)
            recorded = encoder.trained_for.get("id") or "none recorded"
            warnings.warn(f"{encoder.path}: {note}: listed with the generator it records ({recorded})", DseWarning,
                          stacklevel=2)
            choices.append(ModelChoice(f"{encoder.family}: {encoder.path} (its recorded generator)",
                                       encoder=str(encoder.path)))
    for generator in generators:
        if generator.path not in paired:  # inverting needs an encoder: say why this folder is not listed
            warnings.warn(f"{generator.path}: a {generator.family} generator with no encoder of it in --models: "
                          "not listed", DseWarning, stacklevel=2)
    return choices


def saved_models(folder: str | Path) -> list[SavedModel]:
    """The dse folders in ``folder``, its subfolders and theirs (one level down: a run's ``encoder/``);
    a folder that looks like one but cannot be read is skipped with a warning."""
    root = Path(folder)
    if not root.is_dir():
        raise DseError(f"--models {folder}: not a folder", hint="pass a folder holding converted or trained models")
    children = _subfolders(root)
    models = []
    for path in [root, *children, *(grand for child in children for grand in _subfolders(child))]:
        try:
            model = read_saved(path)
        except DseError as exc:
            warnings.warn(f"{path}: skipped: {exc.message}", DseWarning, stacklevel=2)
            continue
        if model is not None:
            models.append(model)
    return models


def read_saved(path: Path) -> SavedModel | None:
    """What the folder's ``config.json`` says it holds; None for a folder that is not a model's, a
    :class:`DseError` for one that should be and cannot be read."""
    from ..models.format import CONFIG_FILE, WEIGHTS_FILE, read_header
    from ..plugins import get_host

    has_config, has_weights = (path / CONFIG_FILE).is_file(), (path / WEIGHTS_FILE).is_file()
    if not has_weights:
        if has_config and _says_dse(path / CONFIG_FILE):
            raise DseError(f"a dse config.json without its {WEIGHTS_FILE}")
        return None  # not a model folder (other tools write config.json too)
    if not has_config:
        raise DseError(f"{WEIGHTS_FILE} without its config.json")
    header = read_header(path)
    kind, family = header.get("kind"), header.get("family")
    if kind not in ("generator", "encoder"):
        raise DseError(f"config.json's kind is {kind!r}, not generator or encoder")
    if family not in get_host().families:
        raise DseError(f"a {family} {kind}, and no installed plugin reads {family}")
    record = (header.get("source") or {}).get("generator") if kind == "encoder" else None
    return SavedModel(path, kind, family, header.get("resolution"), dict(record or {}))


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:  # unreadable: skipped like a bad model folder
        warnings.warn(f"{folder}: skipped: {exc.strerror or exc}", DseWarning, stacklevel=2)
        return []


def _says_dse(config: Path) -> bool:
    import json

    try:
        return json.loads(config.read_text(encoding="utf-8")).get("library_name") == "dse"
    except (OSError, ValueError, AttributeError):
        return False


def _generator_of(encoder: SavedModel, generators: Sequence[SavedModel],
                  fingerprints: dict[Path, str | None]) -> tuple[SavedModel | None, str]:
    """The generator folder ``encoder`` was trained on, or None and why: the folder it records by path, else the
    one whose weights have its recorded fingerprint, else (no fingerprint recorded) the only one that fits.
    ``fingerprints``: those read so far, by folder (each generator's weights are read once at most)."""
    record = encoder.trained_for
    fits = [g for g in generators if g.family == encoder.family and record.get("resolution") in (None, g.resolution)]
    by_path = [g for g in fits if _same_path(record.get("id"), g.path)]
    if by_path:
        return by_path[0], ""
    if record.get("fingerprint"):  # read only the weights of the generators that could be it
        for g in fits:
            if g.path not in fingerprints:
                fingerprints[g.path] = weights_fingerprint(g.path)
        match = [g for g in fits if fingerprints[g.path] == record["fingerprint"]]
        return (match[0], "") if match else (None, "its generator (by fingerprint) is not in --models")
    if len(fits) == 1:
        return fits[0], ""
    return None, (f"records no fingerprint and {len(fits)} {encoder.family} generators in --models fit it"
                  if fits else f"no {encoder.family} generator in --models fits it")


def _same_path(spec: str | None, path: Path) -> bool:
    return bool(spec) and Path(spec).exists() and Path(spec).resolve() == path.resolve()


def weights_fingerprint(folder: Path) -> str | None:
    """The saved generator's fingerprint from its weights file alone; None, with a warning, if unreadable."""
    from safetensors import SafetensorError

    from ..models.format import WEIGHTS_FILE, saved_fingerprint

    try:
        return saved_fingerprint(folder)
    except (SafetensorError, OSError, ValueError) as exc:
        warnings.warn(f"{folder}: skipped: cannot read {WEIGHTS_FILE} ({exc})", DseWarning, stacklevel=2)
        return None


@attrs.frozen
class ModelInfo:
    family: str
    resolution: int
    latents: str  # "ws (8, 64)"
    num_ws: int  # 0: no per-layer ws (no layer range to edit)
    class_names: tuple[str, ...]  # a conditional generator's classes ("3 three"); empty: unconditional
    text: str  # one line for the page


@attrs.frozen(eq=False)
class Run:
    """One inversion: ``dse invert``'s output folder, as the page shows it."""

    out_dir: Path
    model: str  # the ModelChoice's label
    images: list[dict]  # metrics.json's "images": one row per inverted image (output name, metrics, class)
    failed: list[dict]  # {"image", "reason"} for each file that could not be read, with dse invert's reason
    command: str

    @property
    def names(self) -> list[str]:
        return [row["output"] for row in self.images]

    def latents(self, name: str, suffix: str = ".safetensors") -> Path:
        return self.out_dir / "latents" / f"{name}{suffix}"

    def latent_files(self, name: str) -> list[Path]:
        """Its latents as written: .safetensors (dse), .npz (every latent by name), .npy (a bare array, if one)."""
        return [p for p in (self.latents(name, s) for s in (".safetensors", ".npz", ".npy")) if p.is_file()]

    def reconstruction(self, name: str) -> Path:
        return self.out_dir / "reconstructions" / f"{name}.png"

    def label(self, name: str) -> str:
        """How the page names one of its images among every run's: "run-003 / digit-2"."""
        return f"{self.out_dir.parent.name} / {name}"

    def image_class(self, name: str) -> int:
        """The class ``name`` was decoded with: the encoder's prediction, or the class given to dse invert."""
        entry = next(row for row in self.images if row["output"] == name).get("class")
        if not entry:
            raise DseError(f"{name} has no class: it was inverted with an unconditional generator")
        return int(entry["index"])

    def input(self, name: str) -> Path:
        """The image as inverted: the aligned crop with --align, else the file as uploaded."""
        aligned = self.out_dir / "aligned" / f"{name}.png"
        if aligned.is_file():
            return aligned
        return Path(next(row["image"] for row in self.images if row["output"] == name))


class Studio:
    """The app's models (loaded once, shared by every browser tab) and its folder of runs."""

    def __init__(self, choices: Sequence[ModelChoice], device: str | torch.device = "cpu",
                 workdir: str | Path | None = None, lpips=None, max_images: int = MAX_IMAGES):
        self.choices = {choice.label: choice for choice in choices}
        self.device = torch.device(device)
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dse-app-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        # a folder of our own is removed at exit (a --workdir the user chose is kept)
        self._remove = None if workdir else functools.partial(shutil.rmtree, self.workdir, ignore_errors=True)
        if self._remove is not None:
            atexit.register(self._remove)
        self.lpips, self.max_images = lpips, max_images
        self._pairs: dict[str, tuple[Any, Any, str]] = {}
        self._generators = LruDict(TUNED_KEPT)  # by spec, for latents files: tuned copies would pile up otherwise
        self._directions: dict[tuple[str, str], tuple[Any, Path, str]] = {}
        self._direction_files: dict[tuple[str, str], tuple[Any, Path, str]] = {}  # by (model, uploaded path)
        self._lock = threading.RLock()  # one model load / inversion at a time: CPU threads are shared anyway
        self._counter = itertools.count(1)

    def close(self) -> None:
        """Remove the work folder if this Studio made it (``--workdir`` folders are the user's and kept)."""
        if self._remove is not None:
            self._remove()
            atexit.unregister(self._remove)
            self._remove = None

    # --- models -------------------------------------------------------------------------------------

    def choice(self, label: str) -> ModelChoice:
        if label not in self.choices:
            raise DseError(f"unknown model {label!r}", hint=f"pick one of {', '.join(self.choices)}")
        return self.choices[label]

    def pair(self, label: str) -> tuple[Any, Any, str]:
        """(G, E, G's spec) for a model choice, loaded on first use as ``dse invert`` loads them."""
        from ..loading import load_pair

        with self._lock:
            if label not in self._pairs:
                choice = self.choice(label)
                self._pairs[label] = load_pair(choice.generator, choice.encoder, choice.gan, device=self.device)
            return self._pairs[label]

    def info(self, label: str) -> ModelInfo:
        G, E, spec = self.pair(label)
        shapes = ", ".join(f"{name} {tuple(shape)}" for name, shape in G.latent_shapes.items())
        num_ws = G.latent_shapes["ws"][0] if "ws" in G.latent_shapes else 0
        names = G.class_names or [str(i) for i in range(G.c_dim)]
        classes = tuple(f"{i} {name}" if name != str(i) else name for i, name in enumerate(names)) if G.c_dim else ()
        text = (f"**{G.family}** generator `{spec}`, {G.resolution} px; latents {shapes}"
                + (f"; {G.c_dim} classes" if G.c_dim else ""))
        return ModelInfo(G.family, G.resolution, shapes, num_ws, classes, text)

    # --- inversion ----------------------------------------------------------------------------------

    def invert(self, label: str, files: Sequence[str | Path], *, refine: str | None = None,
               steps: int | None = None, class_: str | None = None, align: bool = False,
               progress: bool = False, stop: threading.Event | None = None) -> Run:
        """Invert uploaded files as ``dse invert`` does into a new run folder; bad files are listed, not raised.
        ``stop`` set (the page's Stop button): the work ends before the next refinement step (the refinement asks it
        each step), its run folder removed, as :class:`InversionCancelled`; set before the work begins, none is done."""
        from ..config import read_json
        from ..invert import Inverter, invert_files
        from ..loading import DEMO_PREFIX, inversion_metadata
        from ..refine import Stopped, make_refinement

        files = [Path(f) for f in files]
        if not files:
            raise DseError("no image to invert", hint="upload one or more images (PNG, JPEG, WebP, BMP, TIFF)")
        if len(files) > self.max_images:
            raise DseError(f"{len(files)} images: the page inverts at most {self.max_images} at a time",
                           hint="use dse invert for a folder")
        # bad settings fail before any work; the refinement asks stop before each step (without one an inversion is
        # one encoder pass per batch, quick enough to run to its end once begun)
        refinement = make_refinement(refine, steps=steps, lpips=self.lpips, progress=progress,
                                     stop=None if stop is None else stop.is_set)
        align_with = _face_detector() if align else None
        with self._lock:
            if stop is not None and stop.is_set():  # stopped while another inversion held the lock: none begins
                raise InversionCancelled("inversion cancelled", hint="invert again when you are ready")
            G, E, spec = self.pair(label)
            run_dir = self.workdir / f"run-{next(self._counter):03d}"
            inputs = run_dir / "inputs"
            inputs.mkdir(parents=True)
            for path in files:  # under their own names, so that the command below reads the same files
                shutil.copyfile(path, _free_name(inputs, path.name))
            c = None if not class_ else G.class_vector([_class_key(class_)])
            choice = self.choice(label)
            metadata = inversion_metadata(G, spec, choice.encoder or f"{DEMO_PREFIX}{choice.gan}")
            inverter = Inverter(G, E, refinement=refinement)
            out_dir = run_dir / "out"
            formats = ["safetensors", "npz", *(["npy"] if len(G.latent_shapes) == 1 else [])]  # npy: one array only
            try:
                report = invert_files([inputs], inverter, out_dir, formats=formats, lpips=self.lpips, metadata=metadata,
                                      c=c, align=align_with, progress=progress, log=lambda message: None)
            except Stopped:
                shutil.rmtree(run_dir, ignore_errors=True)  # nothing half-written left to show or download
                raise InversionCancelled("inversion cancelled", hint="invert again when you are ready") from None
        # not one image read: no metrics.json, but the report holds each file's reason, as dse invert logs it
        images = (read_json(out_dir / "metrics.json").get("images") or []) if report.inverted else []
        failed = [{"image": str(bad.path), "reason": bad.reason} for bad in report.failed]
        failed += _unsupported(inputs, [*images, *failed])
        command = ["dse", "invert", *choice.cli_args(), str(inputs), "-o", str(out_dir), "--format", *formats[1:]]
        if refinement is not None:
            command += ["--refine", refine, *(["--refine-steps", str(steps)] if steps else [])]
        if class_:
            command += ["--class", _class_key(class_)]
        if align:
            command += ["--align"]
        if self.lpips is None:
            command += ["--no-lpips"]
        return Run(out_dir, label, images, failed, shlex.join(command))

    def archive(self, run: Run) -> Path:
        """The run's output folder as one .zip beside it (latents, reconstructions, grid, metrics and, for
        ``--refine generator``, the tuned generators, which the latents name relative to themselves), so that
        every download decodes elsewhere. Written atomically, once per run."""
        import zipfile

        target = run.out_dir.parent / f"{run.out_dir.parent.name}.zip"
        if target.is_file():
            return target
        partial = target.with_name(f".{target.name}.partial")
        with zipfile.ZipFile(partial, "w") as archive:
            for path in sorted(p for p in run.out_dir.rglob("*") if p.is_file()):
                stored = path.suffix in (".safetensors", ".png", ".npz")  # compressed already, or barely
                archive.write(path, path.relative_to(run.out_dir).as_posix(),
                              compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
        os.replace(partial, target)
        return target

    def save_drawing(self, editor_value) -> Path | None:
        """The drawing pad's picture (gradio's EditorValue: background, layers, composite as RGBA arrays) as a
        PNG in the work folder; None when nothing was drawn (an untouched pad is not an image to invert)."""
        from PIL import Image

        composite = editor_value.get("composite") if isinstance(editor_value, dict) else None
        if composite is None or not _drawn(editor_value):
            return None
        folder = self.workdir / "drawings"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"drawing-{next(self._counter):03d}.png"
        Image.fromarray(np.asarray(composite, dtype=np.uint8)).save(path)
        return path

    # --- directions ---------------------------------------------------------------------------------

    def direction_methods(self, label: str) -> tuple[str, ...]:
        """The methods that make directions for this model: SeFa only where G exposes its style weights, a class
        move only for a conditional G."""
        G, _, _ = self.pair(label)
        try:
            G.style_weights(None)
            methods = DIRECTION_METHODS
        except NotImplementedError:
            methods = tuple(m for m in DIRECTION_METHODS if m != "sefa")
        return (*methods, *([CLASS_METHOD] if G.c_dim and "c" in G.latent_names else []))

    def directions(self, label: str, method: str) -> tuple[Any, Path, str]:
        """(Direction, its folder, the ``dse directions`` command): SeFa or PCA, made once per model."""
        from ..editing.compute import latent_dim, pca, sefa

        if method not in DIRECTION_METHODS:
            raise DseError(f"unknown direction method {method!r}", hint=f"use one of {', '.join(DIRECTION_METHODS)}")

        def make(G, spec):
            if method == "sefa":
                direction = sefa(G, k=min(DIRECTION_COMPONENTS, latent_dim(G)), spec=spec)
            else:
                direction = pca(G, k=DIRECTION_COMPONENTS, spec=spec)
            return direction, ["-n", str(len(direction))]
        return self._made(label, method, method, make)

    def class_directions(self, label: str, a: int | str, b: int | str) -> tuple[Any, Path, str]:
        """(Direction, its folder, the ``dse directions --method class --classes A B`` command): the move from
        class ``a`` to ``b`` (indices, or the class list's "207 golden retriever"), made once per pair."""
        from ..editing.compute import class_direction

        G, _, _ = self.pair(label)
        ia, ib = (G.class_index(_class_key(x)) for x in (a, b))
        return self._made(label, f"{CLASS_METHOD}-{ia}-{ib}", CLASS_METHOD, lambda G, spec: (
            class_direction(G, ia, ib, spec=spec), ["--classes", str(ia), str(ib)]))

    def class_move(self, run: Run, name: str, to: int | str) -> tuple[Any, Path, str] | None:
        """:meth:`class_directions` from the class ``name`` was decoded with to ``to``; None where that is its
        class already (no move: the reconstruction)."""
        G, _, _ = self.pair(run.model)
        own = run.image_class(name)
        return None if G.class_index(_class_key(to)) == own else self.class_directions(run.model, own, to)

    def _made(self, label: str, key: str, method: str, make) -> tuple[Any, Path, str]:
        """(Direction, folder, command) by ``make(G, spec)`` -> (direction, dse directions' options of it), made
        once per model and ``key`` and saved where ``dse directions -o FOLDER`` writes it."""
        with self._lock:
            if (label, key) not in self._directions:
                G, _, spec = self.pair(label)
                folder = self.workdir / "directions" / f"{_slug(label)}-{key}"
                direction, options = make(G, spec)
                direction.save(folder / "direction")
                command = shlex.join(["dse", "directions", *_generator_args(G, spec), "--method", method, *options,
                                      "-o", str(folder)])
                self._directions[label, key] = (direction, folder, command)
            return self._directions[label, key]

    def load_direction_file(self, label: str, path: str | Path) -> tuple[Any, Path, str]:
        """(Direction, its copy in the work folder, "") for a direction file a user uploads (InterFaceGAN, GANSpace,
        e4e, dse, as ``dse edit --direction`` reads them): the copy is what saved edits' commands name, since
        the upload itself lives in the page's cache. No command makes it, hence "" (a file's record is its own).
        Copied once per upload and model (each upload has its own path in the page's cache)."""
        from ..editing import load_direction
        from ..editing.files import warn_if_made_for_another

        key = (label, str(path))
        if key in self._direction_files:
            return self._direction_files[key]
        G, _, _ = self.pair(label)
        folder = self.workdir / "directions" / f"file-{next(self._counter):03d}"
        folder.mkdir(parents=True)
        copy = Path(shutil.copyfile(path, folder / Path(path).name))
        try:
            direction = load_direction(copy, G)
        except DseError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        warn_if_made_for_another(direction, G, Path(path).name)  # as dse edit warns: a note on the page
        self._direction_files[key] = (direction, copy, "")
        return self._direction_files[key]

    # --- editing ------------------------------------------------------------------------------------

    def latents_of(self, run: Run, name: str) -> tuple[dict[str, torch.Tensor], Any, dict]:
        """(latents, the G that decodes them, metadata): a PTI run's tuned copy where it made one."""
        from ..editing.files import open_latents

        with self._lock:
            return open_latents(run.latents(name), None, None, self.device, self._generators)

    def render_edit(self, run: Run, name: str, direction, moves: Sequence[tuple[int, float]],
                    layers: str | None = None) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        """The image (H, W, C uint8) and latents of ``name`` moved by ``strength`` along each ``(component,
        strength)`` in turn (strengths in std where the direction knows it, as dse edit reads them)."""
        from ..editing import edit
        from ..editing.apply import layer_indices

        latents, G, _ = self.latents_of(run, name)
        layer_ids = layer_indices(G, layers or None, hint="clear the layers")  # as saving it (dse edit) would
        for component, strength in moves:
            if strength:
                latents = edit(latents, direction, [strength], component=component, layers=layer_ids)[0]
        return _decode(G, latents), latents

    def save_edit(self, run: Run, name: str, direction, direction_folder: Path, moves: Sequence[tuple[int, float]],
                  layers: str | None = None) -> tuple[list[Path], str]:
        """Write the edited latents (.safetensors, .npz) and image with ``dse edit``'s code, one ``dse edit`` per
        move chained on the last one's latents; returns the files and the commands that reproduce them."""
        from ..editing.files import edit_files

        moves = [(c, s) for c, s in moves if s]
        if not moves:
            raise DseError("no edit to save: every strength is 0", hint="move a slider first")
        source, commands = run.latents(name), []
        base = self.workdir / "edits" / f"{run.out_dir.parent.name}-{_slug(name)}-{next(self._counter):03d}"
        with self._lock:
            for i, (component, strength) in enumerate(moves):
                out = base / f"step{i + 1}"
                edit_files(source, out, direction=str(direction_folder), component=component,
                           strength=f"{strength:g}", layers=layers or None, device=self.device)
                commands.append(shlex.join(["dse", "edit", str(source), "--direction", str(direction_folder),
                                            "--component", str(component), "--strength", f"{strength:g}",
                                            *(["--layers", layers] if layers else []), "-o", str(out)]))
                source = next((out / source.stem).glob("*.safetensors"))
        from ..latents import read_latents, write_latents

        final = read_latents(source)
        write_latents(source.parent, source.stem, final.tensors, final.metadata, ["npz"])
        return [source, source.with_suffix(".npz"), source.with_suffix(".png")], "\n".join(commands)

    def interpolate(self, first: tuple[Run, str], second: tuple[Run, str], t: float) -> np.ndarray:
        """The image a fraction ``t`` of the way from one (run, image)'s latents to another's, of one run or two
        (dse edit --interpolate's path, and its refusal of latents that decode with different generators)."""
        from ..editing.apply import blend
        from ..editing.files import check_one_generator
        from ..interfaces import StyleGenerator

        (run_a, a), (run_b, b) = first, second
        la, G, meta_a = self.latents_of(run_a, a)
        lb, Gb, meta_b = self.latents_of(run_b, b)
        check_one_generator((run_a.latents(a), G, meta_a), (run_b.latents(b), Gb, meta_b))  # as dse edit checks
        return _decode(G, blend(la, lb, t, z_space=() if isinstance(G, StyleGenerator) else ("z",)))


def find_image(runs: Sequence[Run], label: str) -> tuple[Run, str]:
    """(run, image name) of a :meth:`Run.label` among ``runs``."""
    found = next(((run, name) for run in runs for name in run.names if run.label(name) == label), None)
    if found is None:
        raise DseError(f"no image {label!r} among this page's runs", hint="pick one of the listed images")
    return found


class InversionCancelled(DseError):
    """An inversion ended by its ``stop`` (the page's Stop button): nothing of it kept."""


class LruDict(collections.OrderedDict):
    """A dict that keeps its ``size`` most recently used entries (the loaded generators, tuned copies included)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def __getitem__(self, key):
        self.move_to_end(key)
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


def _generator_args(G, spec: str) -> list[str]:
    """``dse directions``' options for the generator ``spec`` (the one an encoder records, for an encoder alone)."""
    from ..loading import DEMO_PREFIX, portable_spec

    demo = spec == f"{DEMO_PREFIX}{G.family}"
    return ["--gan", G.family, *([] if demo else ["--generator", portable_spec(spec)])]


def _unsupported(inputs: Path, listed: Sequence[dict]) -> list[dict]:
    """The uploads dse invert skips for their suffix (it counts them; the page names each)."""
    from ..data import IMAGE_SUFFIXES

    seen = {Path(row["image"]).name for row in listed}
    reason = f"not an image file dse reads ({', '.join(IMAGE_SUFFIXES)})"
    return [{"image": str(p), "reason": reason} for p in sorted(inputs.iterdir()) if p.name not in seen]


def _drawn(editor_value: dict) -> bool:
    """Whether anything was drawn: a layer with a painted pixel (else, without layers, a composite that is not
    one flat colour)."""
    layers = [np.asarray(layer) for layer in editor_value.get("layers") or [] if layer is not None]
    if layers:
        return any(layer.ndim == 3 and layer.shape[-1] == 4 and layer[..., 3].any() for layer in layers)
    composite = np.asarray(editor_value["composite"])
    return bool((composite != composite.reshape(-1, composite.shape[-1])[0]).any())


def example_images(folder: Path = EXAMPLES) -> list[Path]:
    """The example pictures of a checkout (``examples/*.png``, what ``make demo`` inverts); none when dse was
    installed without them."""
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def _decode(G, latents: dict[str, torch.Tensor]) -> np.ndarray:
    from ..images import to_uint8

    with torch.no_grad():
        image = G.decode(latents)[:1].cpu()
    return to_uint8(image)[0]


def _face_detector():
    from ..align import FaceDetector

    return FaceDetector()


def _class_key(text: str) -> str:
    """The page lists classes as "207 golden retriever": dse's class readers take the index."""
    head = str(text).strip().split(" ", 1)[0]
    return head if head.isdigit() else str(text).strip()


def _free_name(folder: Path, name: str) -> Path:
    stem, suffix = Path(name).stem, Path(name).suffix
    path, n = folder / name, 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


# --- what the page prints (markdown), kept here so that it is tested without gradio ---------------------------------

def metrics_markdown(run: Run) -> str:
    """The metrics ``dse invert`` prints, one row per image, as a markdown table (with the class where there is one)."""
    from ..metrics import METRICS, class_label

    if not run.images:
        return "No image was inverted."
    shown = [m for m in METRICS if any(row.get(m) is not None for row in run.images)]
    classes = any("class" in row for row in run.images)
    head = ["image", *[m.upper() if m != "cosine" else "cosine" for m in shown], *(["class"] if classes else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in run.images:
        cells = [row["output"], *[_number(row.get(m)) for m in shown],
                 *([class_label(row.get("class"))] if classes else [])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def class_markdown(run: Run) -> str:
    """Each image's top-5 classes as the encoder's class head predicted them (empty for an unconditional model)."""
    lines = []
    for row in run.images:
        entry = row.get("class")
        if not entry or not entry.get("top5"):
            continue
        top = ", ".join(f"{_class_text(t)} {t['probability']:.0%}" for t in entry["top5"])
        given = f" (decoded as the given class {_class_text(entry)})" if entry.get("given") else ""
        lines.append(f"- **{row['output']}**: {top}{given}")
    return "\n".join(lines)


def failed_markdown(run: Run) -> str:
    return "\n".join(f"- could not read **{Path(f['image']).name}**: {f['reason']}" for f in run.failed)


def _class_text(entry: dict) -> str:
    return f"{entry['index']} {entry['name']}" if entry.get("name") else str(entry["index"])


def _number(value) -> str:
    return "–" if value is None else f"{value:.4g}"
