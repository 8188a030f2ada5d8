"""Setting up a training run: what ``dse train`` does, as a Python API (:func:`train_encoder`).

:func:`plan_run` turns a generator, a preset (a training recipe), the options given and, on
``--resume``, the run's own ``run.json`` into everything :func:`~dse_core.train.trainer.train`
needs: the generator, the training, loss and encoder configs, and the VGG16 modules.

Options a family cannot honour are never silently ignored (:func:`~dse_core.train.fit.fit_to_family`):
given by the user, they are refused; coming from a preset, they are left out and said so (``notes``,
logged and written to ``run.json``), and the configs record what runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import attrs

from ..config import from_dict, read_json
from ..errors import DseError
from ..loss import LossConfig
from .config import TrainConfig, config_for_preset
from .fit import fit_to_family
from .presets import DEFAULT_PRESET, get_preset


@attrs.frozen
class VggWeights:
    """Where the ImageNet VGG16 weights for LPIPS and Grad-CAM come from (never a download), or Grad-CAM's own classifier."""

    lpips_weights: str | None = None  # a local torchvision vgg16 state dict
    lpips_hub: str | None = None  # a Hub repo holding one (e.g. timm/vgg16.tv_in1k)
    allow_untrained_lpips: bool = False  # none found: LPIPS on a random VGG16 (recorded)
    gradcam_weights: str | None = None  # default: lpips_weights (which must then hold the classifier)
    gradcam_hub: str | None = None  # default: lpips_hub
    allow_untrained_gradcam: bool = False
    # a ClassifierSpec: Grad-CAM on a classifier of the user's instead of VGG16, its state dict from
    # gradcam_weights / gradcam_hub (never the LPIPS ones); None: VGG16
    gradcam_classifier: Any = None


@attrs.frozen(eq=False)
class RunPlan:
    """Everything a training run needs, set up; ``notes`` say what was adapted to the family."""

    generator: Any
    generator_spec: str
    config: TrainConfig
    loss: LossConfig
    encoder: Any  # EncoderConfig
    lpips: Any
    gradcam: Any
    generator_info: dict
    notes: tuple[str, ...] = ()


def plan_run(output: str | Path, generator: Any = None, *, gan: str | None = None, resume: bool = False,
             preset: str | None = None, lpips_weight: float | None = None,
             latent_weights: dict[str, float] | None = None, attention: str | None = None,
             vgg: VggWeights = VggWeights(), **options) -> RunPlan:
    """Set up the run in ``output`` (see the module notes).

    ``generator``: a spec (file, folder, registry or Hub id, ``demo:FAMILY``); None: the resumed
    run's, else ``gan``'s demo. ``options``: :class:`TrainConfig` fields; those not given come from
    the resumed run, else the preset.
    """
    from ..models.format import generator_record
    from ..loading import load_generator, portable_spec
    from ..plugins import get_host

    saved = _saved_run(Path(output)) if resume else {}
    if resume and not saved:
        raise DseError(f"{output}: nothing to resume (no run.json)", hint="drop --resume to start a new run")
    vgg = _restore_backbones(vgg, saved.get("lpips") or {}, Path(output) / "run.json")
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(attrs.fields_dict(TrainConfig)))
    if unknown:
        raise DseError(f"unknown training option(s) {', '.join(unknown)}", hint="see dse train --help")
    fields = attrs.fields_dict(TrainConfig)
    # an option the saved run predates ran at its default (what the older code did), not at the preset's
    saved_train = saved.get("train")
    predates = {k: f.default for k, f in fields.items() if k != "preset" and k not in saved_train} if saved_train else {}
    merged = {**predates, **{k: v for k, v in saved.get("train", {}).items() if k in fields}, **given}
    preset_name = preset or merged.pop("preset", None) or DEFAULT_PRESET
    merged.pop("preset", None)
    chosen = get_preset(preset_name)
    try:
        config = config_for_preset(preset_name, **merged)
    except ValueError as exc:  # attrs validators: "'samples' must be > 0: 0"
        raise DseError(f"bad training option: {exc}", hint="see dse train --help") from None
    spec = generator or saved.get("generator", {}).get("id") or (f"demo:{gan}" if gan else None)  # the run's own
    if spec is None:
        raise DseError("say which generator to train an encoder for",
                       hint="pass --gan FAMILY (its demo model) or --generator PATH")
    G = load_generator(spec, gan=gan)
    family = get_host().family(G.family)
    if family.encoder is None:
        raise DseError(f"the {family.name} plugin defines no encoder variant; it cannot be inverted yet")
    if family.train_truncation_psi is not None and "truncation_psi" not in merged and config.truncation_psi == 1:
        config = attrs.evolve(config, truncation_psi=family.train_truncation_psi, truncation_cutoff=None)
        family_note = (f"trained at the {family.name} family's truncation psi {family.train_truncation_psi:g} "
                       "(--truncation-psi changes it)")
    else:
        family_note = None
    encoder_config = attrs.evolve(family.encoder(G), downsample="fused" if chosen.fused_downsample else "avgpool")
    loss_config = from_dict(LossConfig, saved["loss"], Path(output) / "run.json") if saved else chosen.loss
    try:
        if lpips_weight is not None:
            loss_config = attrs.evolve(loss_config, image=attrs.evolve(loss_config.image, lpips=lpips_weight))
        if latent_weights is not None:
            loss_config = attrs.evolve(loss_config, latent_weights={**loss_config.latent_weights, **latent_weights})
        if attention is not None:
            loss_config = attrs.evolve(loss_config, attention=attention)
    except ValueError as exc:  # attrs validators: "'lpips' must be a finite number >= 0, got -1.0"
        raise DseError(f"bad training option: {exc}", hint="see dse train --help") from None
    config, notes = fit_to_family(G, config, loss_config, encoder_config, given=set(given), preset=preset_name)
    notes = [family_note, *notes] if family_note else notes
    lpips = _load_lpips(vgg, needed=loss_config.image.lpips > 0)
    gradcam = _load_gradcam(vgg, needed=loss_config.attention == "gradcam")
    info = generator_record(G, portable_spec(spec))  # id, fingerprint, repo/revision: what invert checks
    return RunPlan(G, str(spec), config, loss_config, encoder_config, lpips, gradcam, info, tuple(notes))


def train_encoder(output: str | Path, generator: Any = None, *, device: str = "auto", progress: bool = True,
                  log: Callable[[str], None] = print, **plan):
    """What ``dse train`` does: :func:`plan_run` (same arguments), then train; returns the ``TrainResult``."""
    from ..device import resolve_device
    from .trainer import train

    run = plan_run(output, generator, **plan)
    for note in run.notes:
        log(f"note: {note}")
    return train(run.generator, output, run.config, run.loss, run.encoder, lpips=run.lpips, gradcam=run.gradcam,
                 resume=plan.get("resume", False), device=resolve_device(device), generator_info=run.generator_info,
                 notes=run.notes, progress=progress, log=log)


def _saved_run(run_dir: Path) -> dict:
    """run.json of the run to resume ({} when there is none)."""
    return read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else {}


def _restore_backbones(vgg: VggWeights, recorded: dict, source: Path) -> VggWeights:
    """On resume, the VGG16 weights the run used (a file, a Hub repo, or untrained) and Grad-CAM's own
    classifier, unless given again."""
    from ..loss import ClassifierSpec

    changes = {}
    if vgg.gradcam_classifier is None and isinstance(recorded.get("gradcam_classifier"), dict):
        changes["gradcam_classifier"] = from_dict(ClassifierSpec, recorded["gradcam_classifier"], source)
    for kind in ("lpips", "gradcam"):
        source = recorded.get(f"{kind}_source")
        if not isinstance(source, str) or getattr(vgg, f"{kind}_weights") or getattr(vgg, f"{kind}_hub"):
            continue
        if source == "untrained":
            changes[f"allow_untrained_{kind}"] = True
        elif source.startswith("hf://"):
            changes[f"{kind}_hub"] = source[len("hf://"):].rsplit("/", 1)[0]
        elif Path(source).is_file():
            changes[f"{kind}_weights"] = source
    return attrs.evolve(vgg, **changes)


def _load_lpips(vgg: VggWeights, needed: bool):
    from ..loss.perceptual import lpips_for_command

    if not needed:
        return None
    return lpips_for_command(vgg.lpips_weights, vgg.lpips_hub, vgg.allow_untrained_lpips,
                             skip="--lpips-weight 0 to train without LPIPS")


def _load_gradcam(vgg: VggWeights, needed: bool):
    """The Grad-CAM classifier: the user's, else VGG16 by its own options, else the LPIPS ones (one file serves both)."""
    from ..loss import load_classifier_gradcam, load_gradcam

    if not needed:
        return None
    if vgg.gradcam_classifier is not None:
        return load_classifier_gradcam(vgg.gradcam_classifier, vgg.gradcam_weights, hub_repo=vgg.gradcam_hub)
    return load_gradcam(vgg.gradcam_weights or vgg.lpips_weights, hub_repo=vgg.gradcam_hub or vgg.lpips_hub,
                        allow_untrained=vgg.allow_untrained_gradcam)
