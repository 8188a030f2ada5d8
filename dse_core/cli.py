"""The ``dse`` command line. Each sub-command is a small function over the Python API.

User errors (:class:`DseError`) print one message and exit with status 2; set
``DSE_DEBUG=1`` (or pass ``--debug``) to see their traceback too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

from .errors import DseError, DseWarning, UnknownNameError


def _device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, ...")


def cmd_plugins(args: argparse.Namespace) -> int:
    import json

    from .plugins import get_host

    host = get_host()
    rows = host.plugins()
    if args.json:
        families = host.families
        print(json.dumps([
            {"plugin": r.name, "distribution": r.distribution, "version": r.version, "error": r.error, "warning": r.warning,
             "families": [{"name": f, "formats": [fmt.name for fmt in families[f].formats]} for f in r.families]}
            for r in rows
        ], indent=2))
        return 0
    if host.skipped:
        print(f"not loaded (DSE_LOAD_PLUGINS): {', '.join(sorted(host.skipped))}")
    if not rows:
        if not host.skipped:
            print("no plugins installed (GAN families come from plugins: pip install dse-plugin-stylegan2)")
        return 0
    for r in rows:
        print(f"{r.name}  ({' '.join(filter(None, [r.distribution or 'not installed', r.version]))})")
        if r.error:
            print(f"  FAILED: {r.error}")
        if r.warning:
            print(f"  warning: {r.warning}")
        for name in r.families:
            family = host.families[name]
            print(f"  family {name}: {family.description}")
            for fmt in family.formats:
                print(f"    format {fmt.name}: {fmt.description}")
    return 1 if any(r.error for r in rows) else 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .encoder.convert import sniff_authors_encoder
    from .hub import is_pretrained_dir, sha256_of
    from .loading import load_encoder, load_generator

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise DseError(f"-o {out} is a file; a converted model is a folder (config.json + model.safetensors)",
                       hint="choose a folder name for -o")
    if is_pretrained_dir(out) and not args.force:
        raise DseError(f"{out} already holds a model", hint="pass --force to overwrite it, or choose another -o")
    source_path = Path(args.checkpoint)
    if source_path.is_file() and sniff_authors_encoder(source_path):
        model = load_encoder(source_path, gan=args.gan, device="cpu")
    else:
        model = load_generator(args.checkpoint, gan=args.gan, device="cpu")
    source = dict(getattr(model, "source", {}))
    origin = {k: v for k, v in (getattr(model, "origin", None) or {}).items() if k != "spec"}
    if origin:
        source["origin"] = origin  # the registry entry / Hub repo it came from: the card states its license
    checkpoint_file = source_path if source_path.is_file() else _registry_file(origin)
    if checkpoint_file is not None:
        source["sha256"] = sha256_of(checkpoint_file)
    model.save_pretrained(out, source=source)
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} ({source.get('format', model.family)}) -> {out}")
    print(f"  {model.family} {model.kind}, {model.resolution}px, w_dim={getattr(model, 'w_dim', '-')}, "
          f"num_ws={getattr(model, 'num_ws', '-')}, {params / 1e6:.2f}M parameters")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .images import make_grid, save_image
    from .loading import load_generator, resolve_device

    device = resolve_device(args.device)
    args.generator = _generator_spec(args)
    generator = load_generator(args.generator, gan=args.gan, device=device)
    if generator.c_dim and args.class_index is None:
        raise DseError(f"{args.generator} is conditional (c_dim={generator.c_dim})", hint="pass --class INDEX")
    if args.class_index is not None and not 0 <= args.class_index < max(generator.c_dim, 1):
        raise DseError(f"--class {args.class_index}: " + (f"{args.generator} has classes 0..{generator.c_dim - 1}"
                       if generator.c_dim else f"{args.generator} is unconditional"),
                       hint="drop --class" if not generator.c_dim else None)
    rng = torch.Generator().manual_seed(args.seed)
    out = Path(args.output)
    single_file = out.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")
    images = []
    with torch.no_grad():
        for start in tqdm(range(0, args.num, args.batch_size), desc="sampling", unit="batch", disable=args.num <= args.batch_size):
            n = min(args.batch_size, args.num - start)
            z = torch.randn(n, generator.z_dim, generator=rng).to(device)
            c = None
            if generator.c_dim:
                c = torch.nn.functional.one_hot(torch.full((n,), args.class_index), generator.c_dim).float().to(device)
            x = generator(z, c, truncation_psi=args.truncation, truncation_cutoff=args.truncation_cutoff,
                          noise_mode=args.noise_mode).cpu()
            if not single_file:
                for i, image in enumerate(x):
                    save_image(image, out / f"seed{args.seed}_{start + i:05d}.png")
            images.append(x)
    grid = make_grid(torch.cat(images), nrow=args.nrow)
    target = out if single_file else out / "grid.png"
    save_image(grid, target)
    print(f"wrote {args.num} samples ({generator.family}, {generator.resolution}px, truncation {args.truncation}) -> {target}")
    return 0


def _generator_spec(args: argparse.Namespace) -> str:
    """--generator, or the --gan family's embedded demo."""
    if args.generator:
        return args.generator
    if not args.gan:
        raise DseError("say which generator to use", hint="pass --gan FAMILY (its demo model) or --generator PATH")
    return f"demo:{args.gan}"


def _lpips_for(args: argparse.Namespace, needed: bool, without: str = "--lpips-weight 0 to train without LPIPS"):
    """The LPIPS module the user's options allow, or None when no trained backbone is available and none was allowed."""
    from .loss import load_lpips

    if not needed:
        return None
    try:
        return load_lpips(args.lpips_weights, hub_repo=args.lpips_hub, allow_untrained=args.allow_untrained_lpips)
    except DseError as exc:  # the library's hint names Python arguments; say it in options
        raise DseError(exc.message, hint="pass --lpips-weights FILE (a torchvision vgg16 state dict) or --lpips-hub REPO "
                       f"(e.g. timm/vgg16.tv_in1k); or --allow-untrained-lpips (recorded), or {without}") from None


def _lpips_note(lpips) -> str:
    if lpips is None:
        return "not computed"
    return "VGG, trained backbone" if lpips.trained else "VGG, UNTRAINED backbone (not the published metric)"


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_invert(args: argparse.Namespace) -> int:
    from .hub import generator_fingerprint
    from .invert import Inverter, invert_files
    from .loading import check_encoder_matches, load_encoder, load_generator, portable_spec, recorded_generator, resolve_device
    from .refine import make_refinement
    from .train import distributed

    refine = dict(method=args.refine, steps=args.refine_steps, lr=args.refine_lr, preset=args.refine_preset)
    make_refinement(**refine)  # bad --refine-* options fail before anything loads
    device = resolve_device(args.device)
    dist, device = distributed.init(device)
    encoder_spec = args.encoder or (f"demo:{args.gan}" if not args.generator and args.gan else None)
    if encoder_spec is None:
        raise DseError("say which encoder to use", hint="pass --encoder PATH (a trained run's encoder/ folder, or a Hub repo id)")
    if args.encoder and not args.generator and not args.gan:  # the generator the encoder was trained for
        encoder = load_encoder(encoder_spec, device=device)
        generator_spec = recorded_generator(encoder)
        generator = load_generator(generator_spec, device=device)
        check_encoder_matches(encoder, generator, force=args.force)
    else:
        generator_spec = _generator_spec(args)
        generator = load_generator(generator_spec, gan=args.gan, device=device)
        encoder = load_encoder(encoder_spec, gan=generator.family, device=device, generator=generator, force=args.force)
    try:
        lpips = _lpips_for(args, needed=not args.no_lpips, without="--no-lpips")
    except DseError as exc:
        if args.lpips_weights or args.lpips_hub:
            raise
        uses = "metric and refinement loss term" if args.refine else "metric"
        print(f"dse: LPIPS {uses} skipped: {exc.message}", file=sys.stderr)
        lpips = None
    if lpips is not None:
        lpips = lpips.to(device)
    metadata = {"family": generator.family, "generator": portable_spec(generator_spec),
                "generator_fingerprint": generator_fingerprint(generator), "encoder": portable_spec(encoder_spec),
                "resolution": generator.resolution, "latents": ",".join(generator.latent_names)}
    # the per-step bar sits under the batch bar: only a terminal can redraw two lines (else "\x1b[A" litter)
    nested_bar = not args.quiet and dist.is_main and sys.stderr.isatty()
    inverter = Inverter(generator, encoder, noise_mode=args.noise_mode,
                        refinement=make_refinement(**refine, lpips=lpips, progress=nested_bar))
    report = invert_files(args.inputs, inverter, args.output,
                          batch_size=args.batch_size, formats=["safetensors", *args.format], lpips=lpips,
                          lpips_note=_lpips_note(lpips), metadata=metadata, dist=dist, progress=not args.quiet,
                          log=lambda m: print(m, file=sys.stderr))
    if dist.is_main:
        failed = f"{len(report.failed)} failed: " + ", ".join(str(f.path) for f in report.failed)
        if report.inverted == 0 and not report.interrupted:
            print(f"no image was inverted: {failed}")
        else:
            print(f"inverted {report.inverted} image(s) -> {report.out_dir}" + (f"; {failed}" if report.failed else ""))
    distributed.shutdown()
    if report.interrupted:
        print(f"dse: interrupted: {report.out_dir / 'metrics.json'} covers the {report.inverted} image(s) done",
              file=sys.stderr)
        return 130
    return 1 if report.failed else 0


def cmd_train(args: argparse.Namespace) -> int:
    import attrs

    from .config import from_dict
    from .loading import load_generator, portable_spec, resolve_device
    from .loss import LossConfig, get_preset
    from .train import config_for_preset, train

    # options not given: the run's own on --resume, else the preset's / the defaults
    saved = _saved_run(Path(args.output)) if args.resume else {}
    if args.resume and not saved:
        raise DseError(f"{args.output}: nothing to resume (no run.json)", hint="drop --resume to start a new run")
    _restore_backbones(args, saved.get("lpips") or {})
    given = {"preset": args.preset, "samples": args.samples, "batch_size": args.batch_size, "lr": args.lr,
             "truncation_psi": args.truncation, "truncation_cutoff": args.truncation_cutoff,
             "style_mixing_prob": args.style_mixing, "seed": args.seed, "log_every": args.log_every,
             "grid_every": args.grid_every, "checkpoint_every": args.checkpoint_every, "precision": args.precision,
             "latent_step": args.latent_step}
    options = {k: v if v is not None else saved.get("train", {}).get(k) for k, v in given.items()}
    preset_name = options.pop("preset") or "paper-s2"
    preset = get_preset(preset_name)
    try:
        config = config_for_preset(preset_name, **options)
    except ValueError as exc:  # attrs validators: "'samples' must be > 0: 0"
        raise DseError(f"bad training option: {exc}", hint="see dse train --help") from None
    device = resolve_device(args.device)
    generator_spec = args.generator or (None if args.gan else saved.get("generator", {}).get("id")) or _generator_spec(args)
    generator = load_generator(generator_spec, gan=args.gan)
    family = _family(generator.family)
    if family.encoder is None:
        raise DseError(f"the {family.name} plugin defines no encoder variant; it cannot be inverted yet")
    encoder_config = family.encoder(generator)
    encoder_config = attrs.evolve(encoder_config, downsample="fused" if preset.fused_downsample else "avgpool")
    loss_config = from_dict(LossConfig, saved["loss"], Path(args.output) / "run.json") if saved else preset.loss
    if args.lpips_weight is not None:
        loss_config = attrs.evolve(loss_config, image=attrs.evolve(loss_config.image, lpips=args.lpips_weight))
    if args.attention is not None:
        loss_config = attrs.evolve(loss_config, attention=args.attention)
    lpips = _lpips_for(args, needed=loss_config.image.lpips > 0)
    gradcam = _gradcam_for(args, needed=loss_config.attention == "gradcam")
    from .hub import generator_record

    info = generator_record(generator, portable_spec(generator_spec))  # id, fingerprint, repo/revision: what invert checks
    try:
        result = train(generator, args.output, config, loss_config, encoder_config, lpips=lpips, gradcam=gradcam,
                       resume=args.resume, device=device, generator_info=info, progress=not args.quiet,
                       log=lambda m: print(m, file=sys.stderr))
    except KeyboardInterrupt:
        return 130
    if result.rank == 0:
        print(f"trained {result.steps} steps ({result.samples} samples) -> {result.run_dir / 'encoder'}")
    return 0


def _restore_backbones(args: argparse.Namespace, recorded: dict) -> None:
    """On --resume, the VGG16 weights the run used (a file, a Hub repo, or untrained), unless given again."""
    for kind in ("lpips", "gradcam"):
        source = recorded.get(f"{kind}_source")
        if not isinstance(source, str) or getattr(args, f"{kind}_weights") or getattr(args, f"{kind}_hub"):
            continue
        if source == "untrained":
            setattr(args, f"allow_untrained_{kind}", True)
        elif source.startswith("hf://"):
            setattr(args, f"{kind}_hub", source[len("hf://"):].rsplit("/", 1)[0])
        elif Path(source).is_file():
            setattr(args, f"{kind}_weights", source)


def _saved_run(run_dir: Path) -> dict:
    """run.json of the run to resume ({} when there is none)."""
    from .config import read_json

    return read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else {}


def _gradcam_for(args: argparse.Namespace, needed: bool):
    """The Grad-CAM VGG16 for --attention gradcam: its own options, else the LPIPS ones (the same VGG16 file serves both)."""
    from .loss import load_gradcam

    if not needed:
        return None
    return load_gradcam(args.gradcam_weights or args.lpips_weights, hub_repo=args.gradcam_hub or args.lpips_hub,
                        allow_untrained=args.allow_untrained_gradcam)


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from .images import save_image
    from .invert import find_latents, match_latents, read_latents
    from .loading import load_generator, resolve_device

    if Path(args.output).suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
        raise DseError(f"-o {args.output}: dse generate writes one PNG per latent file into a folder",
                       hint="pass a folder name")
    device = resolve_device(args.device)
    paths = find_latents(args.latents)
    generators: dict[str, object] = {}
    checked: set[tuple[str, str]] = set()  # (generator spec, recorded fingerprint) pairs already compared
    for path in paths:
        file = read_latents(path)
        spec = args.generator or file.metadata.get("generator") or (f"demo:{args.gan}" if args.gan else None)
        if not spec:
            raise DseError(f"{path}: no generator recorded (a {path.suffix} file without its .safetensors beside it)",
                           hint="pass --generator with the generator the latents were inverted with "
                                "(--gan FAMILY alone: its demo generator)")
        if spec not in generators:
            generators[spec] = load_generator(spec, gan=args.gan or file.metadata.get("family"), device=device)
        generator = generators[spec]
        latents = {k: v.to(device) for k, v in match_latents(file, generator, spec).items()}
        recorded = file.metadata.get("generator_fingerprint")  # absent in latents of older dse versions
        if recorded and (spec, recorded) not in checked:
            _check_fingerprint(path, file.metadata, generator, spec, args.force)
            checked.add((spec, recorded))
        with torch.no_grad():
            image = generator.decode(latents, noise_mode=args.noise_mode)[0]
        save_image(image.cpu(), Path(args.output) / f"{path.stem}.png")
    print(f"generated {len(paths)} image(s) -> {args.output}")
    return 0


def _check_fingerprint(path: Path, metadata: dict, generator, spec: str, force: bool) -> None:
    """Latents decode as they were inverted only with the generator ``dse invert`` recorded (its fingerprint)."""
    from .errors import DseWarning
    from .hub import describe_generator, generator_fingerprint

    found = generator_fingerprint(generator)
    if found == metadata["generator_fingerprint"]:
        return
    wanted = describe_generator({"id": metadata.get("generator"), "fingerprint": metadata["generator_fingerprint"]})
    message = (f"{path}: these latents were inverted with generator {wanted}, not with "
               f"{describe_generator({'id': spec, 'fingerprint': found})}")
    if not force:
        raise DseError(message, hint="pass --generator with the generator they were inverted with, "
                       "or --force to decode them with this one anyway")
    warnings.warn(message + "; decoding anyway (--force)", DseWarning, stacklevel=2)


def _registry_file(origin: dict) -> Path | None:
    """The cached checkpoint file a registry id was read from (its sha256 goes into the converted config)."""
    from . import registry

    entry = registry.find(origin.get("registry_id") or "")
    return None if entry is None or entry.is_dse_repo else registry.cached_path(entry)


def cmd_models(args: argparse.Namespace) -> int:
    from . import registry
    from .plugins import get_host

    host = get_host()
    entries = sorted(host.checkpoints.values(), key=lambda e: (e.kind, e.family, e.id))
    families = host.families
    rows = []
    for e in entries:
        status, detail = registry.check_cached(e) if args.check else (registry.cache_status(e), "")
        note = "" if e.family in families else f"needs {e.plugin}"
        rows.append({"id": e.id, "kind": e.kind, "family": e.family, "resolution": e.resolution, "license": e.license,
                     "cached": status, "verified": not e.hub.unverified, "note": note, "detail": detail,
                     "repo": f"{e.hub.repo_id}@{e.hub.revision}", "file": e.hub.file})
    broken = [f"plugin {r.name}: {r.error}" for r in host.plugins() if r.error] + list(host.registry_errors)
    bad = [r for r in rows if r["cached"] == "MISMATCH"]
    if args.json:
        print(json.dumps({"models": rows, "errors": broken}, indent=2))
        return 1 if broken or bad else 0
    header = ("ID", "KIND", "FAMILY", "RES", "LICENSE", "CHECK" if args.check else "CACHED", "")
    table = [header] + [(r["id"] + ("" if r["verified"] else " *"), r["kind"], r["family"], str(r["resolution"]),
                         r["license"], r["cached"], r["note"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if not rows:
        print("(no registry entries)")
    if any(not r["verified"] for r in rows):
        print("* unverified: no sha256 pinned yet (the entry says why); `dse pull` prints the sha256 of what it fetched")
    for r in rows:
        if args.check and r["detail"] and r["cached"] != "ok":
            print(f"{r['id']}: {r['cached']}: {r['detail']}")
    for line in broken:
        print(f"FAILED: {line}", file=sys.stderr)
    return 1 if broken or bad else 0


def cmd_pull(args: argparse.Namespace) -> int:
    from . import hub, registry

    name, rev = hub.split_revision(args.spec)
    rev = args.revision or rev
    entry = registry.find(name)
    if entry is not None:
        path = registry.fetch(entry, rev)
        print(f"{entry.id}: {entry.hub.repo_id}@{rev or entry.hub.revision} {entry.hub.file} -> {path}")
        print(f"  license: {entry.license}" + (f" ({entry.license_url})" if entry.license_url else "")
              + ("" if entry.redistribution == "allowed" else f"; redistribution: {entry.redistribution}"))
        if not entry.pinned or rev not in (None, entry.hub.revision):
            target = path / hub.WEIGHTS_FILE if path.is_dir() else path
            why = entry.hub.unverified_reason if entry.hub.unverified else "another revision than the pinned one"
            print(f"  not pinned ({why}): sha256 of this download {hub.sha256_of(target)}")
        return 0
    if not hub.is_repo_id(name):
        raise UnknownNameError("registry id or Hub repo id", name, registry.entries(),
                                        hint="`dse models` lists the registry; Hub repos are owner/name[@revision]")
    folder = hub.download(name, rev)
    print(f"{name}@{hub.commit_of(folder) or rev or 'main'} -> {folder}")
    print(f"  license: {_card_license(folder)}")
    return 0


def _card_license(folder: Path) -> str:
    from huggingface_hub import ModelCard

    from . import hub, registry

    card = folder / hub.CARD_FILE
    if card.is_file():
        data = ModelCard.load(card).data
        if data.license:
            return data.license_name or data.license if data.license == "other" else data.license
    if hub.is_pretrained_dir(folder):
        header = hub.read_header(folder)
        entry = registry.entry_for_source(header.get("source") or {}, header.get("kind"))
        if entry is not None:
            return f"{entry.license} (from the registry entry {entry.id})"
    return "unknown (the repo states none: check it before use)"


def cmd_push(args: argparse.Namespace) -> int:
    from . import hub

    src = Path(args.path)
    if hub.is_pretrained_dir(src):
        folder, run = src, None
    elif hub.is_pretrained_dir(src / "encoder"):
        folder, run = src / "encoder", src
    else:
        raise DseError(f"{src}: neither a saved model (config.json + model.safetensors) nor a training run (encoder/)",
                       hint="push a run folder of `dse train`, its encoder/, or a folder written by `dse convert`")
    header = hub.read_header(folder)
    with tempfile.TemporaryDirectory(prefix="dse-push-") as tmp:
        stage = Path(tmp)
        for name in hub.REPO_FILES:
            if (folder / name).is_file() and name != hub.CARD_FILE:
                shutil.copy2(folder / name, stage / name)
        _stage_run_extras(stage, run, Path(args.metrics) if args.metrics else None)
        _warn_redistribution(header)
        info = hub.push_folder(stage, args.repo_id, private=args.private, revision=args.revision, license=args.license)
    print(f"pushed {header.get('family')} {header.get('kind')} -> {args.repo_id}@{args.revision or 'main'} "
          f"(commit {info.oid[:12]}){' [private]' if args.private else ''}")
    return 0


def _stage_run_extras(stage: Path, run: Path | None, metrics: Path | None) -> None:
    """A run's last reconstruction grid and final loss, and an invert run's metrics summary, for the card."""
    from . import hub
    from .config import read_json, write_json_atomic

    extra = read_json(stage / hub.METRICS_FILE) if (stage / hub.METRICS_FILE).is_file() else {}
    if run is not None:
        grids = sorted((run / "grids").glob("*.png"))
        if grids and not (stage / hub.GRID_FILE).exists():
            shutil.copy2(grids[-1], stage / hub.GRID_FILE)
        log = run / "log.jsonl"
        if log.is_file():
            lines = [line for line in log.read_text().splitlines() if line.strip()]
            if lines:
                last = json.loads(lines[-1])
                extra["training_loss"] = {k: v for k, v in last.items()
                                          if k not in ("step", "samples", "samples_per_s") and isinstance(v, (int, float))}
    if metrics is not None:
        data = read_json(metrics)
        if not isinstance(data, dict) or not isinstance(data.get("summary"), dict):
            raise DseError(f"{metrics}: no metrics summary", hint="pass the metrics.json written by `dse invert`")
        extra["summary"] = data["summary"]
    if extra:
        write_json_atomic(stage / hub.METRICS_FILE, extra)


def _warn_redistribution(header: dict) -> None:
    from . import hub, registry

    source = header.get("source") or {}
    if header.get("kind") != "generator" or source.get("format") in (None, "dse-trained"):
        return
    entry = registry.entry_for_source(source, "generator")
    note = registry.redistribution_note(entry) if entry is not None else (
        f"these weights were converted from a third-party checkpoint ({source.get('format')}) that is not in the "
        "registry: check its license allows redistribution before publishing them")
    if note:
        warnings.warn(note, hub.DseWarning, stacklevel=2)


def _family(name: str):
    from .plugins import get_host

    return get_host().family(name)


def _lpips_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("LPIPS (VGG16 backbone weights; never downloaded)")
    group.add_argument("--lpips-weights", help="a local torchvision vgg16 state dict (.pth or .safetensors)")
    group.add_argument("--lpips-hub", help="a Hugging Face repo holding those weights (e.g. timm/vgg16.tv_in1k)")
    group.add_argument("--allow-untrained-lpips", action="store_true",
                       help="with no weights found, run LPIPS on an untrained backbone (recorded in the outputs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dse", description="Invert images into the latent space of pretrained GANs (DSE).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("plugins", help="list installed plugins, their GAN families and checkpoint formats")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("convert", help="convert a checkpoint (any supported format) to safetensors + config.json")
    p.add_argument("checkpoint", help="checkpoint file or folder")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--gan", help="GAN family (default: detected from the file)")
    p.add_argument("--force", action="store_true", help="overwrite an existing model in the output folder")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("sample", help="draw random samples from a generator")
    p.add_argument("--generator", help="checkpoint file, converted folder, Hub repo id or demo:FAMILY")
    p.add_argument("--gan", help="GAN family (default: detected); alone, samples its embedded demo generator")
    p.add_argument("-n", "--num", type=_positive_int, default=16, help="number of samples")
    p.add_argument("-o", "--output", default="samples.png", help="a .png grid, or a folder for one PNG each plus grid.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation", type=float, default=1.0, help="truncation psi (1 = none)")
    p.add_argument("--truncation-cutoff", type=int, default=None, help="truncate only the first K ws")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    p.add_argument("--class", dest="class_index", type=int, default=None, help="class index for conditional generators")
    p.add_argument("--batch-size", type=_positive_int, default=8)
    p.add_argument("--nrow", type=_positive_int, default=None, help="images per grid row")
    _device_arg(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("invert", help="invert images (files or folders) with an encoder")
    p.add_argument("inputs", nargs="+", help="images (PNG, JPEG, WebP, BMP, TIFF) or folders of them")
    p.add_argument("-o", "--output", default="out", help="output folder")
    p.add_argument("--gan", help="GAN family; alone, uses its embedded demo generator and encoder")
    p.add_argument("--generator", help="checkpoint, converted folder, Hub repo id or demo:FAMILY")
    p.add_argument("--encoder", help="encoder folder (a run's encoder/), Hub repo id, authors' .pth or demo:FAMILY")
    p.add_argument("--batch-size", type=_positive_int, default=8)
    p.add_argument("--format", nargs="*", choices=["npy", "npz"], default=[],
                   help="also write w+ as .npy (InterFaceGAN) or .npz (NVlabs projector)")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    p.add_argument("--no-lpips", action="store_true", help="skip the LPIPS metric (and the refinement loss's LPIPS term)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help="use an encoder trained for another generator anyway")
    group = p.add_argument_group("refinement of each inversion (paper Table III); everything written is after it")
    group.add_argument("--refine", choices=["w", "encoder"],
                       help="w: optimise w+ from E's output per image (In-domain (W)); encoder: fine-tune a copy of E "
                       "on each batch, then re-encode it (DSE (E); results depend on --batch-size)")
    group.add_argument("--refine-steps", type=int, default=None, help="Adam steps (default 100)")
    group.add_argument("--refine-lr", type=float, default=None, help="Adam learning rate (default 0.01 for w, 1e-3 for encoder)")
    group.add_argument("--refine-preset", default=None,
                       help="whose image loss terms to minimise: paper-s2 (default), paper-s1, code-s2, code-s1; "
                       "LPIPS is a term only with trained VGG16 weights or --allow-untrained-lpips, never with --no-lpips")
    _lpips_args(p)
    _device_arg(p)
    p.set_defaults(func=cmd_invert)

    p = sub.add_parser("train", help="train a DSE encoder for a generator (resumable; torchrun for several processes)")
    p.add_argument("--gan", help="GAN family; alone, trains on its embedded demo generator")
    p.add_argument("--generator", help="checkpoint, converted folder, Hub repo id or demo:FAMILY")
    p.add_argument("-o", "--output", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in -o from its latest checkpoint, with "
                   "its own generator and options (those given must match, except --samples, which may grow)")
    p.add_argument("--preset", default=None, help="paper-s2 (default), paper-s1, code-s2, code-s1, "
                   "paper-s1-misaligned, code-s1-misaligned (the last two: Grad-CAM areas)")
    p.add_argument("--samples", type=int, default=None, help="training budget in samples (default 210000, the paper's "
                   "30000 x 7; with --resume, the run's own, so an interrupted run finishes where it meant to)")
    p.add_argument("--batch-size", type=int, default=None, help="per process (default 8 / 4 / 2 at 256 / 512 / 1024 px)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 0.0015)")
    p.add_argument("--truncation", type=float, default=None,
                   help="truncation psi of the training samples (default: the preset's; code-*: 0.7 on 8 ws, else 1)")
    p.add_argument("--truncation-cutoff", type=int, default=None, help="truncate only the first K ws")
    p.add_argument("--style-mixing", type=float, default=None, help="style-mixing probability (default: the preset's)")
    p.add_argument("--latent-step", choices=["joint", "separate"], default=None,
                   help="joint: one optimizer step on image + latent loss; separate: a second step on the latent loss "
                   "alone (the authors' code). Default: the preset's (code-*: separate)")
    p.add_argument("--lpips-weight", type=float, default=None, help="override the preset's LPIPS weight (0: no LPIPS)")
    p.add_argument("--seed", type=int, default=None, help="default 0")
    p.add_argument("--log-every", type=int, default=None, help="steps (default 10)")
    p.add_argument("--grid-every", type=int, default=None, help="steps (default 500)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps (default 500)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None, help="autocast: bf16 (GPUs, and CPUs with bf16 support) or fp16 (GPUs, with loss scaling); default fp32")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _lpips_args(p)
    group = p.add_argument_group("AT1/AT2 areas (Sec. III-B); Grad-CAM uses an ImageNet VGG16 with its classifier, never downloaded")
    group.add_argument("--attention", choices=["centre", "gradcam"], default=None,
                       help="centre: fixed centre crops (aligned images); gradcam: VGG16 heat maps and heat-map-tinted "
                       "images (misaligned images). Default: the preset's")
    group.add_argument("--gradcam-weights", help="a whole torchvision vgg16 state dict, classifier included "
                       "(default: --lpips-weights, which then must hold the classifier; else torchvision's cache)")
    group.add_argument("--gradcam-hub", help="a Hugging Face repo holding those weights (default: --lpips-hub; "
                       "e.g. timm/vgg16.tv_in1k)")
    group.add_argument("--allow-untrained-gradcam", action="store_true",
                       help="with no weights found, run Grad-CAM on a random VGG16 (heat maps locate nothing; recorded)")
    _device_arg(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="images back from latents saved by dse invert")
    p.add_argument("latents", help="a latents file (.safetensors, .npz, .npy) or a folder of them")
    p.add_argument("-o", "--output", default="regen", help="output folder")
    p.add_argument("--generator", help="override the generator recorded in the latents")
    p.add_argument("--force", action="store_true", help="decode with --generator even if it is not the recorded one")
    p.add_argument("--gan", help="GAN family (default: recorded in the latents)")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    _device_arg(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("models", help="the checkpoint registry: id, kind, family, resolution, license, cached?")
    p.add_argument("--check", action="store_true", help="verify the sha256 of every cached file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("pull", help="download a registry checkpoint or a Hub repo into the Hugging Face cache")
    p.add_argument("spec", metavar="ID_OR_REPO", help="a registry id (`dse models`) or a Hub repo id, optionally @revision")
    p.add_argument("--revision", help="branch, tag or commit (overrides @revision)")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("push", help="upload an encoder (a run, or its encoder/) or a converted model to the Hub")
    p.add_argument("path", metavar="RUN_OR_MODEL_DIR", help="a `dse train` run folder, its encoder/, or a saved model folder")
    p.add_argument("--repo-id", required=True, help="owner/name on the Hub (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", help="branch to push to (created from main if missing; default main)")
    p.add_argument("--metrics", help="a metrics.json written by `dse invert`, shown in the model card")
    p.add_argument("--license", help="license id for the card (default: the registry's, else unknown)")
    p.set_defaults(func=cmd_push)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("DSE_DEBUG") == "1"
    try:
        with warnings.catch_warnings():
            _show_user_warnings()
            return args.func(args)
    except DseError as exc:
        if debug:
            traceback.print_exc()
        print(f"dse: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dse: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dse plugins | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # an unwritable -o, a full disk, a folder where a file was expected, ...
        if debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"dse: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


def _show_user_warnings() -> None:
    """Print dse's own warnings as ``dse: warning: ...`` (others keep Python's format)."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DseWarning):
            print(f"dse: warning: {message}", file=sys.stderr)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def _exit(code: int) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # torch 2.14 + gloo: a process that used DistributedDataParallel can abort in C++ static
        # destructors at interpreter exit ("terminate called without an active exception"), turning
        # a finished run into a failure. Every output is written and closed by now: leave directly.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def run() -> None:
    """The console script: ``dse ...``."""
    _exit(main())


if __name__ == "__main__":
    run()
