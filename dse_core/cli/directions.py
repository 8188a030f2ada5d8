"""``dse directions``: latent directions computed for a generator (SeFa, PCA, an SVM boundary, a class move),
written as ``direction.safetensors`` + ``direction.json`` for ``dse edit --direction``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DseError
from .common import device_arg, generator_spec, positive_int

METHODS = ("sefa", "pca", "svm", "class")


def add_parser(sub) -> None:
    p = sub.add_parser("directions", help="compute latent directions for editing (SeFa, PCA, SVM boundary, class)",
                       description="examples:\n"
                       "  dse directions --gan stylegan2 --generator G/ --method sefa -n 20 -o dirs/\n"
                       "  dse directions --gan stylegan2 --generator G/ --method pca -n 20 -o dirs/\n"
                       "  dse directions --method svm --latents out/latents/ --labels labels.csv -o dirs/smile\n"
                       "  dse directions --gan biggan --generator G/ --method class --classes 207 208 -o dirs/dogs\n"
                       "SeFa, PCA and SVM strengths read in standard deviations of the latents along each direction;\n"
                       "a class move runs from 0 (the first class) to 1 (the second). labels.csv: name,label rows, name\n"
                       "a latents file's stem, label 0 or 1.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gan", help="GAN family; alone, uses its embedded demo generator")
    p.add_argument("--generator", help="checkpoint, converted folder, Hub repo id or demo:FAMILY (svm: default the "
                   "generator recorded in the latents)")
    p.add_argument("--method", choices=METHODS, required=True,
                   help="sefa: closed form from the style weights; pca: principal axes of sampled w (GANSpace); "
                   "svm: boundary of labelled latents (InterFaceGAN); class: move class A to class B (conditional)")
    p.add_argument("-n", "--num", type=positive_int, default=20, help="components to keep (sefa, pca)")
    p.add_argument("--layers", help="ws layers the directions edit, e.g. 0-5 or 0,2,4 (style-based families; "
                   "sefa factorizes only their weights)")
    p.add_argument("--samples", type=positive_int, default=10000, help="pca: latents sampled")
    p.add_argument("--seed", type=int, default=0, help="pca: sampling seed")
    p.add_argument("--latents", help="svm: a latents file or folder (dse invert's latents/)")
    p.add_argument("--labels", help="svm: CSV rows name,label (name: a latents file's stem; label 0 or 1)")
    p.add_argument("--classes", nargs=2, metavar=("A", "B"), help="class: from class A to class B (index or name)")
    p.add_argument("-o", "--output", default="directions",
                   help="output folder (direction.safetensors + direction.json), or a .safetensors path")
    device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import attrs

    from ..device import resolve_device
    from ..editing import compute
    from ..editing.apply import layer_indices
    from ..editing.direction import SUFFIX
    from ..loading import load_generator, portable_spec

    _check_options(args)
    spec = _spec(args)
    G = load_generator(spec, gan=args.gan, device=resolve_device(args.device)).eval()
    layers = layer_indices(G, args.layers, hint="drop --layers")
    where = portable_spec(spec)
    if args.method == "sefa":
        direction = compute.sefa(G, layers, min(args.num, compute.latent_dim(G)), spec=where)
    elif args.method == "pca":
        direction = compute.pca(G, min(args.num, compute.latent_dim(G)), args.samples, args.seed, layers=layers, spec=where)
    elif args.method == "svm":
        name = G.latent_names[0]
        latents, labels = labelled_latents(args.latents, args.labels, G, spec, name)
        direction = compute.svm_boundary(latents, labels, name, layers=layers, generator=compute.made_for(G, where))
        direction = attrs.evolve(direction, source={**direction.source, "latents": str(Path(args.latents).absolute()),
                                                    "labels": str(Path(args.labels).absolute())})
    else:
        direction = compute.class_direction(G, *args.classes, spec=where)
    out = Path(args.output)
    path = direction.save(out if out.suffix == SUFFIX else out / "direction")
    for i, name in enumerate(direction.names):
        print(f"{name}\tstd {float(direction.std[i]):.4g}" if direction.std is not None else f"{name}\t(raw strength)")
    extra = f", train accuracy {direction.source['train_accuracy']}" if args.method == "svm" else ""
    print(f"wrote {len(direction)} {args.method} direction(s) in {direction.latent} for {where} ({G.family}{extra}) "
          f"-> {path}")
    return 0


def _check_options(args: argparse.Namespace) -> None:
    """Options that do not fit the method: refused before anything loads."""
    if args.method == "svm" and not (args.latents and args.labels):
        raise DseError("--method svm fits a boundary to labelled latents",
                       hint="pass --latents FOLDER (dse invert's latents/) and --labels labels.csv (rows name,label)")
    if args.method != "svm" and (args.latents or args.labels):
        raise DseError(f"--latents and --labels are for --method svm, not {args.method}", hint="drop them")
    if args.method == "class" and not args.classes:
        raise DseError("--method class moves one class to another", hint="pass --classes A B (indices or names)")
    if args.method != "class" and args.classes:
        raise DseError(f"--classes is for --method class, not {args.method}", hint="drop it")


def _spec(args: argparse.Namespace) -> str:
    """--generator; for svm the generator recorded in the latents; else the --gan family's demo."""
    if not args.generator and args.method == "svm":
        from ..latents import find_latents, read_latents
        from ..loading import latents_generator

        first = find_latents(args.latents)[0]
        metadata = read_latents(first).metadata
        if metadata.get("generator"):  # a tuned G's path is recorded relative to the file
            return latents_generator(first, metadata)
    return generator_spec(args)


def read_labels(path: str | Path) -> dict[str, int]:
    """``name,label`` rows (a header row, blank lines and ``#`` comments skipped) -> {name: 0 or 1}."""
    import csv

    path = Path(path)
    labels: dict[str, int] = {}
    with path.open(newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            name, label = (row + [""])[0].strip(), (row + ["", ""])[1].strip()
            if label not in ("0", "1"):
                if not labels and line == 1:
                    continue  # a header such as name,label
                raise DseError(f"{path}:{line}: expected name,label with label 0 or 1, got {','.join(row)!r}")
            if name in labels:
                raise DseError(f"{path}:{line}: {name!r} is labelled twice")
            labels[name] = int(label)
    if not labels:
        raise DseError(f"{path}: no name,label rows", hint="one row per latents file: its stem, then 0 or 1")
    return labels


def labelled_latents(latents_path: str, labels_path: str, G, spec: str, name: str):
    """(latents (N, ...) of ``name``, labels (N,)) of the latents files the CSV labels; unlabelled files are skipped."""
    import torch

    from ..latents import find_latents, match_latents, read_latents

    labels = read_labels(labels_path)
    files = {p.stem: p for p in find_latents(latents_path)}
    missing = [stem for stem in labels if stem not in files]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DseError(f"{labels_path}: no latents file for {shown} in {latents_path}",
                       hint="name each latents file by its stem (face.safetensors -> face)")
    tensors, targets = [], []
    for stem, label in labels.items():
        latent = match_latents(read_latents(files[stem]), G, spec)[name]
        tensors.append(latent.float().cpu())
        targets += [label] * len(latent)
    return torch.cat(tensors), torch.tensor(targets)
