"""Grad-CAM-based three-scale areas for misaligned images (Sec. III-B, Fig. 3).

A classifier says where the object of each target image is: the Grad-CAM++ heat map
of its top class at one layer. AT1 compares the heat maps of x and x', AT2 the
images tinted by their heat maps (the paper's "labelled" images). The paper's
classifier is an ImageNet VGG16 at its last conv layer (:func:`load_gradcam`); any
other (images in, logits out, e.g. a torchvision or timm model, or a small CNN for
a domain ImageNet does not cover) plugs in by a :class:`ClassifierSpec`
(:func:`load_classifier_gradcam`; ``dse train --gradcam-model MODULE:CALLABLE
--gradcam-layer NAME``): forward hooks take the layer's output and the gradient of
the chosen class's logit with respect to it.

What the public code does (``metric/grad_cam.py``, ``E_mis_align_cropping_s1.py``)
and what dse does:

- heat maps: ``GradCamPlusPlus(vgg16, last Conv2d)`` on x and, separately, on x'.
  Its "Grad-CAM++" weights reduce to 1 for every channel with any positive
  gradient (``alpha = 1[g > 0] / sum relu(g)``); dse's ``paper`` variant uses the
  weights of Grad-CAM++ itself, the ``code`` variant the code's.
- class: the code takes the most frequent argmax of the batch, and x' gets its own.
  dse (``paper``) takes each target's argmax and reuses it for its reconstruction:
  AT1 should ask whether the evidence for *x's* object sits in the same place in x',
  not compare the explanations of two different classes (early in training x' is a
  blur that VGG labels as anything).
- activations: the conv output as the code's forward hook ends up holding it,
  rectified (VGG's in-place ReLU overwrites it); gradients w.r.t. the conv output.
- input: the code feeds [-1, 1] images to VGG as they are; ``paper`` normalises them
  as the classifier expects (ImageNet statistics for VGG16; a :class:`ClassifierSpec`'s).
- AT2: ``mask2cam``: x + jet colour map of the heat map, min-max normalised; x' is
  tinted with *its own* map, as in the code.
- detached: the code runs all of it on detached copies. Here the heat maps never
  carry gradient (AT1 trains nothing); the tinted x' keeps x's gradient path, so
  AT2 trains E whenever the image terms are not detached (strategy 2). Strategy 1
  presets detach x' before the areas are taken, which reproduces the code.

Ranges: the loss terms expect NCHW images in [-1, 1] with 3 channels (LPIPS). AT1 is
``2 h - 1`` repeated over 3 channels (a flat map becomes -1 everywhere, so cosine
is never 0/0); AT2 is the tinted image min-max normalised to [-1, 1].
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from pathlib import Path
from typing import Callable, Literal, Mapping, Union

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DseError, DseWarning, UnknownNameError
from ..interfaces import Attention
from ..models.convert import check_tensors
from .areas import pool_to
from .vgg_weights import find_vgg16, hub_file, read_state_dict

Weighting = Literal["gradcam++", "gradcam", "code"]
WEIGHTINGS: tuple[str, ...] = ("gradcam++", "gradcam", "code")
Variant = Literal["paper", "code"]
VARIANTS: tuple[str, ...] = ("paper", "code")
Classes = Union[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], None]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UntrainedGradCamWarning(DseWarning):
    """Grad-CAM runs on a randomly initialised VGG16: its heat maps do not locate objects."""


# --- the CAM computation, for any features/classifier pair -----------------------------------------

def channel_weights(activations: torch.Tensor, gradients: torch.Tensor,
                    weighting: Weighting = "gradcam++") -> torch.Tensor:
    """(N, C) weights of each activation map from A and dS/dA, both (N, C, h, w).

    ``gradcam``: the spatial mean of the gradient (Selvaraju et al.).
    ``gradcam++``: sum_ij alpha_ij relu(g_ij) with alpha = g^2 / (2 g^2 + sum_ab A_ab g^3),
    0 where that denominator is 0 (Chattopadhyay et al., Eq. 19, exponential score).
    ``code``: the public code's simplification, 1 for a channel with any positive gradient.
    """
    if weighting == "gradcam":
        return gradients.mean(dim=(2, 3))
    if weighting == "code":
        return (gradients > 0).any(dim=3).any(dim=2).to(gradients.dtype)
    if weighting != "gradcam++":
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    g2 = gradients.square()
    denom = 2 * g2 + activations.sum(dim=(2, 3), keepdim=True) * g2 * gradients
    alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, 1.0), 0.0)
    return (alpha * gradients.clamp_min(0)).sum(dim=(2, 3))


def class_activation_map(activations: torch.Tensor, gradients: torch.Tensor,
                         weighting: Weighting = "gradcam++") -> torch.Tensor:
    """(N, 1, h, w): sum_k w_k A_k, rectified (the code's variant is not: it min-max normalises instead)."""
    weights = channel_weights(activations, gradients, weighting)
    cam = (weights[:, :, None, None] * activations).sum(dim=1, keepdim=True)
    return cam if weighting == "code" else cam.clamp_min(0)


def unit_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to ``size``, then each map min-max normalised to [0, 1] (a flat map becomes 0)."""
    if tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)
    low = maps.amin(dim=(1, 2, 3), keepdim=True)
    span = maps.amax(dim=(1, 2, 3), keepdim=True) - low
    return torch.where(span > 0, (maps - low) / span.clamp_min(torch.finfo(maps.dtype).tiny), torch.zeros_like(maps))


class GradCam(nn.Module):
    """Class activation maps of a frozen classifier at one of its layers, taken by forward hooks.

    ``model``: images in, (N, classes) logits out. ``layer``: the name (in ``model.named_modules()``)
    of the module whose (N, C, h, w) output is explained, e.g. ``features.28`` (VGG16's last conv)
    or ``layer4`` (a ResNet). ``mean`` / ``std``: the normalisation the model expects on images in
    [0, 1] (:meth:`normalise`). ``min_size``: the smallest input side it takes (None: 2 to the
    number of its ``nn.MaxPool2d``). Always in eval mode; no parameter trains or collects ``.grad``.
    ``trained`` / ``source`` say where the weights came from (``trained`` None: the model's own,
    not known); ``spec`` is how a user's classifier was built (None: the built-in VGG16), for run.json.
    """

    def __init__(self, model: nn.Module, layer: str, *, mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD, min_size: int | None = None, trained: bool | None = False,
                 source: str = "untrained", spec: "ClassifierSpec | None" = None):
        super().__init__()
        modules = dict(model.named_modules())
        if layer not in modules or not layer:
            raise UnknownNameError("Grad-CAM layer", layer, [name for name in modules if name],
                                   hint="name one of the classifier's modules, as print(model) shows them "
                                   "(--gradcam-layer), e.g. its last convolutional block")
        self.model, self.layer = model, layer
        self.mean, self.std = tuple(mean), tuple(std)
        self.requires_grad_(False)
        self.min_size = min_size or 2 ** sum(isinstance(m, nn.MaxPool2d) for m in model.modules())
        self.trained, self.source, self.spec = trained, source, spec
        self.train(False)

    @classmethod
    def from_vgg(cls, vgg: nn.Module, trained: bool = False, source: str = "untrained") -> "GradCam":
        """From a torchvision ``VGG`` (features, avgpool, classifier), at its last conv layer."""
        last = [i for i, m in enumerate(vgg.features) if isinstance(m, nn.Conv2d)][-1]
        return cls(vgg, f"features.{last}", trained=trained, source=source)

    def train(self, mode: bool = True) -> "GradCam":
        return super().train(False)  # VGG's classifier has dropout: never switch it on

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] as the classifier expects them: mapped to [0, 1], then (x - mean) / std."""
        mean = x.new_tensor(self.mean).reshape(1, -1, 1, 1)
        std = x.new_tensor(self.std).reshape(1, -1, 1, 1)
        return ((x + 1) / 2 - mean) / std

    def activations_and_gradients(self, x: torch.Tensor, classes: Classes = None):
        """``(A, dS/dz, classes)``: A the layer's output z rectified, S each image's class logit.

        ``classes``: (N,) indices, a function of the (N, classes) logits, or None for each
        image's argmax. Works inside ``torch.no_grad()`` and ``torch.inference_mode()``.
        """
        captured = []
        target = self.model.get_submodule(self.layer)  # looked up, not stored: it would register twice
        handle = target.register_forward_hook(lambda module, inputs, output: self._capture(output, captured))
        try:
            with _autograd_on():
                logits = self.model(x.detach())  # no parameter requires grad: only the layer onwards is recorded
                if not captured:
                    raise DseError(f"Grad-CAM layer {self.layer!r} did not run in the classifier's forward",
                                   hint="name a module the forward pass calls (--gradcam-layer)")
                if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != x.shape[0]:
                    shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                    raise DseError(f"the Grad-CAM classifier returned {shape} for {x.shape[0]} images, not "
                                   "(N, classes) logits", hint="wrap it so that forward returns the logits tensor")
                chosen = _choose(classes, logits)
                score = logits.gather(1, chosen[:, None]).sum()  # images are independent: one backward for all
                (gradients,) = torch.autograd.grad(score, captured[0])
        finally:
            handle.remove()
        return captured[0].detach().clamp_min(0).float(), gradients.float(), chosen

    def _capture(self, output, captured: list) -> torch.Tensor:
        """The forward hook: z = the layer's output as a leaf that collects dS/dz; the forward goes on with a copy."""
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise DseError(f"Grad-CAM layer {self.layer!r} outputs {shape}, not an (N, C, h, w) feature map",
                           hint="pick a convolutional layer or block (--gradcam-layer), e.g. the last one")
        z = output.detach().requires_grad_(True)
        captured.append(z)
        return z.clone()  # clone: an in-place op after the layer (VGG's ReLU) must not overwrite z

    def forward(self, x: torch.Tensor, classes: Classes = None, weighting: Weighting = "gradcam++",
                size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(maps, classes)``: (N, 1, *size) heat maps in [0, 1] (size: x's by default) and the (N,) classes."""
        activations, gradients, chosen = self.activations_and_gradients(x, classes)
        cam = class_activation_map(activations, gradients, weighting)
        return unit_maps(cam, size or tuple(x.shape[-2:])), chosen

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, min_size={self.min_size}, trained={self.trained}, source={self.source!r}"


def _choose(classes: Classes, logits: torch.Tensor) -> torch.Tensor:
    if classes is None:
        chosen = logits.argmax(dim=1)
    elif callable(classes):
        chosen = classes(logits.detach())
    else:
        chosen = torch.as_tensor(classes)
    chosen = chosen.to(device=logits.device, dtype=torch.long).reshape(-1)
    if chosen.shape[0] != logits.shape[0]:
        raise ValueError(f"GradCam: {chosen.shape[0]} classes for {logits.shape[0]} images")
    return chosen


@contextlib.contextmanager
def _autograd_on():
    """Gradients on, whatever the caller's mode: Grad-CAM needs dS/dA even under no_grad()."""
    with contextlib.ExitStack() as stack:
        if torch.is_inference_mode_enabled():
            stack.enter_context(torch.inference_mode(False))
        stack.enter_context(torch.enable_grad())
        yield


# --- the attention -----------------------------------------------------------------------------------

def jet(maps: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) in [0, 1] -> (N, 3, H, W) RGB in [0, 1]: the jet colour map (OpenCV's COLORMAP_JET, unquantised)."""
    centres = torch.tensor([3.0, 2.0, 1.0], device=maps.device, dtype=maps.dtype).reshape(1, 3, 1, 1)
    return (1.5 - (4 * maps - centres).abs()).clamp(0, 1)


def tint(images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """The code's ``mask2cam``: image + jet(heat map), min-max normalised per image, here to [-1, 1]."""
    tinted = images + jet(maps).to(images.dtype)
    low = tinted.amin(dim=(1, 2, 3), keepdim=True)
    span = (tinted.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-8)
    return (tinted - low) / span * 2 - 1


def as_image(maps: torch.Tensor) -> torch.Tensor:
    """A [0, 1] heat map as a 3-channel image in [-1, 1], the range every loss term expects."""
    return (maps * 2 - 1).expand(-1, 3, -1, -1)


class GradCamAttention(nn.Module, Attention):
    """AT1 = (heat map of x, of x'), AT2 = (x, x' tinted by their heat maps), all at the image size.

    ``cam``: a :class:`GradCam` (:func:`load_gradcam`'s VGG16 or :func:`load_classifier_gradcam`'s).
    ``variant``: ``paper`` (Grad-CAM++ weights, x's per-image top class for both, input normalised
    as the classifier expects) or ``code`` (the public code's weights, the batch's most frequent
    class taken for x and for x' separately, raw [-1, 1] input). ``max_size``: images are
    average-pooled by 2 while larger than this before the classifier sees them (the code trained
    at 256); images smaller than its ``min_size`` are upsampled to it. Heat maps are detached;
    see the module doc.
    """

    name = "gradcam"

    def __init__(self, cam: GradCam, variant: Variant = "paper", max_size: int | None = 256):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.cam, self.variant, self.max_size = cam, variant, max_size

    def heat_maps(self, x: torch.Tensor, x_rec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(h, h', classes)``: (N, 1, H, W) heat maps in [0, 1], no gradient, and the (2N,) classes used."""
        if x.ndim != 4 or x.shape != x_rec.shape or x.shape[1] != 3:
            raise ValueError(f"GradCamAttention: needs two RGB NCHW batches of one shape, got {tuple(x.shape)} "
                             f"and {tuple(x_rec.shape)}")
        n = x.shape[0]
        pair = self._network_input(torch.cat([x.detach(), x_rec.detach()]))
        weighting = "gradcam++" if self.variant == "paper" else "code"
        maps, classes = self.cam(pair, _target_classes(n) if self.variant == "paper" else _batch_classes(n),
                                 weighting=weighting, size=tuple(x.shape[-2:]))
        return maps[:n], maps[n:], classes

    def areas(self, x: torch.Tensor, x_rec: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        h, h_rec, _ = self.heat_maps(x, x_rec)
        return [(as_image(h).to(x.dtype), as_image(h_rec).to(x_rec.dtype)), (tint(x, h), tint(x_rec, h_rec))]

    def _network_input(self, x: torch.Tensor) -> torch.Tensor:
        x = pool_to(x, self.max_size)
        if min(x.shape[-2:]) < self.cam.min_size:
            scale = self.cam.min_size / min(x.shape[-2:])
            size = tuple(max(self.cam.min_size, round(s * scale)) for s in x.shape[-2:])
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x if self.variant == "code" else self.cam.normalise(x)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, max_size={self.max_size}"


def _target_classes(n: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Each target's argmax, reused for its reconstruction (logits of [x; x'])."""
    return lambda logits: logits[:n].argmax(dim=1).repeat(2)


def _batch_classes(n: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The code's choice: the most frequent argmax (lowest index on ties) of x's batch, and of x''s."""
    def choose(logits: torch.Tensor) -> torch.Tensor:
        top = logits.argmax(dim=1)
        modes = [torch.bincount(half, minlength=logits.shape[1]).argmax().expand(n) for half in (top[:n], top[n:])]
        return torch.cat(modes)
    return choose


# --- ImageNet VGG16 weights, offline -----------------------------------------------------------------

def load_gradcam(
    weights: str | Path | None = None,
    hub_repo: str | None = None,
    hub_filename: str = "model.safetensors",
    *,
    allow_untrained: bool = False,
) -> GradCam:
    """Grad-CAM on an ImageNet VGG16 from ``weights``, else ``hub_repo``, else torchvision's cache.

    The same search as :func:`~dse_core.loss.load_lpips` (never a download), but the file
    must hold the classifier too: a whole torchvision ``vgg16`` state dict, or timm's
    ``vgg16.tv_in1k`` layout (e.g. ``timm/vgg16.tv_in1k``). Nothing found: :class:`DseError`,
    or with ``allow_untrained`` one :class:`UntrainedGradCamWarning` and ``trained=False``.
    """
    found = find_vgg16(weights, hub_repo, hub_filename, needed_by="Grad-CAM attention", allow_untrained=allow_untrained,
                       warning=UntrainedGradCamWarning, untrained_means="its heat maps do not locate objects")
    if found is None:
        return GradCam.from_vgg(_vgg16(), trained=False, source="untrained")
    path, source = found
    with torch.device("meta"):
        vgg = _vgg16()  # shapes only: the weights come from the file
    vgg.load_state_dict(_vgg16_state(read_state_dict(path), vgg.state_dict(), path), assign=True)
    return GradCam.from_vgg(vgg, trained=True, source=source)


def _vgg16() -> nn.Module:
    from torchvision.models import vgg16

    return vgg16(weights=None)


# timm's vgg16 holds the first two classifier layers as 7x7 and 1x1 convolutions
_TIMM_KEYS = {"pre_logits.fc1": "classifier.0", "pre_logits.fc2": "classifier.3", "head.fc": "classifier.6"}


def _vgg16_state(state: Mapping[str, torch.Tensor], wanted: Mapping[str, torch.Tensor], path: Path) -> dict:
    """torchvision (or timm) vgg16 tensors renamed and reshaped to torchvision's keys, every key and shape checked."""
    renamed = {}
    for key, value in state.items():
        prefix, _, leaf = key.removeprefix("module.").rpartition(".")
        name = f"{_TIMM_KEYS.get(prefix, prefix)}.{leaf}"
        if prefix in _TIMM_KEYS and name in wanted and value.numel() == wanted[name].numel():
            value = value.reshape(wanted[name].shape)  # timm's 7x7 / 1x1 convolutions are torchvision's linear layers
        renamed[name] = value
    expected = {key: tuple(param.shape) for key, param in wanted.items()}
    missing_classifier = any(key.startswith("classifier") and key not in renamed for key in wanted)
    check_tensors(path, "not a whole torchvision vgg16 state dict",
                  {key: tuple(renamed[key].shape) for key in wanted if key in renamed}, expected,
                  hint="a features-only file serves LPIPS but not Grad-CAM, which needs the ImageNet classifier"
                  if missing_classifier else None)
    return {key: renamed[key].to(torch.float32).contiguous() for key in wanted}


# --- a classifier of your own ------------------------------------------------------------------------

def _three_positive(name: str):
    def check(_, attribute, value) -> None:
        if len(value) != 3 or (name == "std" and min(value) <= 0):
            raise ValueError(f"Grad-CAM classifier {name} must be 3 numbers (R, G, B){', each > 0' if name == 'std' else ''}, "
                             f"got {value}")
    return check


def _floats(value) -> tuple[float, ...]:
    return tuple(float(v) for v in value)


@attrs.frozen
class ClassifierSpec:
    """A classifier for Grad-CAM other than the built-in VGG16; recorded in run.json so ``--resume`` rebuilds it."""

    # "MODULE:CALLABLE" or "FILE.py:CALLABLE": called with no arguments, it returns the nn.Module
    # (images in, (N, classes) logits out), e.g. "torchvision.models:resnet18"
    model: str
    # the module whose (N, C, h, w) output the heat maps explain, by its name in model.named_modules()
    layer: str
    # the input normalisation the classifier expects on images in [0, 1] (ImageNet's by default;
    # mean = std = 0.5 for a classifier trained on [-1, 1] images)
    mean: tuple[float, float, float] = attrs.field(default=IMAGENET_MEAN, converter=_floats,
                                                   validator=_three_positive("mean"))
    std: tuple[float, float, float] = attrs.field(default=IMAGENET_STD, converter=_floats,
                                                  validator=_three_positive("std"))
    # smallest input side it takes (smaller images are upsampled); None: 2 ** (its number of nn.MaxPool2d)
    min_size: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0)))


def load_classifier_gradcam(spec: ClassifierSpec, weights: str | Path | None = None, hub_repo: str | None = None,
                            hub_filename: str = "model.safetensors") -> GradCam:
    """Grad-CAM on ``spec``'s classifier, with the state dict in ``weights`` (a ``.safetensors`` file, or a
    ``torch.save`` file read with ``weights_only``), else ``hub_repo``'s file, else the weights the callable
    itself gave it (``trained`` None). Checked with two blank images, so a layer or input size that
    cannot work fails here, as a :class:`DseError`, not in the first training step."""
    model = build_classifier(spec.model)
    trained, source = None, f"{spec.model}()"
    if weights is not None or hub_repo is not None:
        path = Path(weights) if weights is not None else hub_file(hub_repo, hub_filename)
        if not path.is_file():
            raise DseError(f"{path}: no such Grad-CAM classifier weights file",
                           hint="pass the state dict of the model --gradcam-model builds (--gradcam-weights)")
        _load_classifier_state(model, read_state_dict(path, what=f"{spec.model}()"), path, spec.model)
        trained, source = True, str(path) if weights is not None else f"hf://{hub_repo}/{hub_filename}"
    cam = GradCam(model.eval(), spec.layer, mean=spec.mean, std=spec.std, min_size=spec.min_size, trained=trained,
                  source=source, spec=spec)
    try:
        cam.activations_and_gradients(torch.zeros(2, 3, cam.min_size, cam.min_size))
    except RuntimeError as exc:  # e.g. "Output size is too small", a channel mismatch
        raise DseError(f"the Grad-CAM classifier {spec.model}() fails on {cam.min_size} px RGB images "
                       f"({str(exc).splitlines()[0]})", hint="give its smallest input size (--gradcam-min-size); "
                       "it must take (N, 3, H, W) images") from None
    return cam


def build_classifier(path: str) -> nn.Module:
    """The nn.Module that ``MODULE:CALLABLE`` (or ``FILE.py:CALLABLE``; dotted attributes allowed) returns."""
    where, sep, name = path.rpartition(":")
    if not sep or not where or not name:
        raise DseError(f"Grad-CAM classifier {path!r}: expected MODULE:CALLABLE",
                       hint="e.g. torchvision.models:resnet18, or my_nets.py:build (a function returning the nn.Module)")
    module = _import(where, path)
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            known = [n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None))]
            raise UnknownNameError(f"callable in {where}", name, known, hint=f"--gradcam-model {where}:NAME")
        obj = getattr(obj, part)
    if not callable(obj):
        raise DseError(f"Grad-CAM classifier {path!r}: {name} is a {type(obj).__name__}, not callable",
                       hint="name a class or function that returns the classifier")
    model = obj()
    if not isinstance(model, nn.Module):
        raise DseError(f"Grad-CAM classifier {path}() returned a {type(model).__name__}, not a torch.nn.Module",
                       hint="name a callable that returns the classifier itself")
    return model


def _import(where: str, path: str):
    try:
        if where.endswith(".py"):  # a file of the user's, importable or not
            if not Path(where).is_file():
                raise ImportError(f"no such file {where}")
            spec = importlib.util.spec_from_file_location(f"dse_gradcam_{Path(where).stem}", where)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(where)
    except ImportError as exc:
        raise DseError(f"Grad-CAM classifier {path!r}: cannot import {where} ({type(exc).__name__}: {exc})",
                       hint="install the package, add its folder to PYTHONPATH, or give the file: FILE.py:CALLABLE") from None


def _load_classifier_state(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path, name: str) -> None:
    """``state`` into ``model``, every key and shape checked first (``module.`` prefixes of DataParallel dropped)."""
    state = {key.removeprefix("module."): value for key, value in state.items()}
    wanted = model.state_dict()
    check_tensors(path, f"not a state dict of {name}()", {k: tuple(v.shape) for k, v in state.items()},
                  {k: tuple(v.shape) for k, v in wanted.items()},
                  hint=f"save the weights of the model {name}() builds: torch.save(model.state_dict(), FILE) or "
                  "safetensors.torch.save_file(model.state_dict(), FILE)")
    model.load_state_dict({k: state[k].to(wanted[k].dtype) for k in wanted})
