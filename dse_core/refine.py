"""Refining the inversion of real images (paper Table III): optimise the latents, fine-tune E, or tune G.

The latents and encoder refinements minimise the DSE image loss between the real image y and G(latents): a
preset's Eq. 6-7 image terms with gradients on (``detach_images`` is forced off, or the ``*-s1`` presets would
give no gradient) and no latent term (a real image has no true w). Tuning G minimises PTI's loss instead
(:func:`pti_loss`). LPIPS is a term only when a module is given; without one its weight is 0.

- ``refine_latents``, the paper's "In-domain (W)" row (after In-Domain GAN): start from
  E's latents (ws, z, a predicted class: whatever the family's encoder predicts) and optimise
  them with Adam, G frozen. Each image's loss is summed over
  the batch, not averaged, so every image is optimised on its own: its result does
  not depend on its batch mates or on the batch size (except with the ``code-*``
  presets, whose batch cosine couples a batch).
- ``refine_encoder``, the paper's "DSE (E)" row: fine-tune a deep copy of E on the
  given images with Adam, then re-encode them with the copy. The copy trains in
  **eval mode**: that is the mode which then encodes, so the steps optimise exactly
  the latents that get written (no training noise; conditional batch norm keeps its
  running statistics instead of refitting them to a few images), and it needs no
  random numbers.

- ``tune_generator``, pivotal tuning (PTI, Roich et al. 2022; not in the DSE paper): the latents
  (E's, or refined ones: the pivots) stay fixed and a deep copy of G's weights is tuned with Adam so
  that it decodes them to the image with PTI's loss (MSE, PTI's l2, + LPIPS, weight 1 each, over the
  whole image; the DSE areas and terms are not PTI's), plus a locality regulariser: at latents sampled a
  short step from the pivot, the tuned G's images are pulled (same loss, weight ``locality``, PTI's 0.1)
  towards the original G's, so G changes near the pivot and little elsewhere. The step follows PTI's
  ``locality_regularization``: towards a random latent (ws: ``G.mapping`` at psi 0.5; z: a fresh z),
  ``alpha`` long; PTI's 30 is in 18 x 512 ws, so the default keeps its per-element length
  (30 / sqrt(18 * 512)) times sqrt(the latent's size). Defaults: 300 steps (PTI: 350), lr 3e-4 (PTI's).
  One copy per image (``shared_tune``: one per batch).

Stages chain (``Refinement("latents", then=Refinement("generator"))``): each starts from what the
previous one gave; tuning G must be the last, and fine-tuning E the first (it re-encodes the images, so
whatever an earlier stage gave would be thrown away).

Progress (``progress=True``; off by default): one bar per stage and call, counting that stage's steps over all
its images (tuning G one copy per image: steps x images, "image k/n" beside it); :mod:`dse_core.progress` draws it.

Stopping (``stop``, a zero-argument callable; None: never): checked before every step of every stage, and once it
returns true the step is not taken and :class:`Stopped` is raised (what ``dse app``'s Stop button uses).

None touches G's or the original E's parameters or their ``.grad``: gradients
are taken only with respect to what is optimised. Each call seeds its own RNG
(only ``noise_mode="random"`` draws from it) and leaves the caller's untouched.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Callable, Sequence

import attrs
import torch

from .errors import DseError
from .latents import encode
from .progress import progress_bar
from .loss import DSELoss
from .loss.config import ImageWeights, LossConfig
from .train.presets import DEFAULT_PRESET, get_preset

METHODS = ("latents", "encoder", "generator")
PAPER_ROWS = {"latents": "In-domain (W)", "encoder": "DSE (E)", "generator": "PTI (G tuning, not in the paper)"}
DEFAULT_STEPS = 100
STEPS = {"latents": DEFAULT_STEPS, "encoder": DEFAULT_STEPS, "generator": 300}  # generator: PTI's 350, rounded down
DEFAULT_LR = {"latents": 0.01, "encoder": 1e-3,  # Adam; latents: In-Domain GAN's rate; encoder: near training's 1.5e-3
              "generator": 3e-4}  # PTI's
LOCALITY = 0.1  # PTI's regulariser weight (its regulizer_l2_lambda and regulizer_lpips_lambda)
PTI_ALPHA_PER_ELEMENT = 30 / (18 * 512) ** 0.5  # PTI's step (30) in its 18 x 512 ws, per element


class Stopped(BaseException):
    """A refinement ended by its ``stop`` before a step. A BaseException, not an Exception, so that no
    ``except Exception`` on the way out (e.g. :func:`~dse_core.invert.invert_files`' per-file error handling) swallows
    it; and not a KeyboardInterrupt, whose handling (``dse invert``'s Ctrl-C) writes the images done: whoever gave
    ``stop`` catches it and decides what to keep."""


def _bar_for(bar, steps: int, desc: str, progress: bool):
    """``bar`` (a stage's, shared by its calls) as is; else a bar of the call's own over ``steps`` when ``progress``."""
    return contextlib.nullcontext(bar) if bar is not None else progress_bar(steps, desc, enabled=progress, nested=True)


def image_loss(preset: str = DEFAULT_PRESET, lpips=None) -> DSELoss:
    """The latents and encoder refinements' loss: ``preset``'s image terms with gradients on; LPIPS only when
    ``lpips`` is given."""
    config = attrs.evolve(get_preset(preset).loss, detach_images=False)
    if lpips is None:
        config = attrs.evolve(config, image=attrs.evolve(config.image, lpips=0.0))
    return DSELoss(config, lpips=lpips)


def pti_loss(lpips=None) -> DSELoss:
    """Tuning G's loss, PTI's: per image MSE (its l2) + LPIPS (when ``lpips`` is given), weight 1 each, over the
    whole image only (no AT1 / AT2, no latent term)."""
    image = ImageWeights(kl=0.0, mse=1.0, cos=0.0, lpips=1.0 if lpips is not None else 0.0, ssim=0.0)
    return DSELoss(LossConfig(image=image, area_weights=(1.0, 0.0, 0.0), latent_weight=0.0), lpips=lpips)


def refine_latents(G, latents: dict[str, torch.Tensor], images: torch.Tensor, loss: DSELoss, names: Sequence[str],
                   steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR["latents"], noise_mode: str = "const",
                   seed: int = 0, progress: bool = False, bar=None,
                   stop: Callable[[], bool] | None = None) -> dict[str, torch.Tensor]:
    """Adam on ``latents[names]`` (what the encoder predicted); returns new, detached latents.

    ``progress``: a bar over the steps; ``bar``: a bar to advance by one per step instead (a stage's, see
    :class:`Refinement`). ``stop``: asked before each step; once true, :class:`Stopped` is raised.

    ``images`` (N, C, H, W) in [-1, 1] on G's device; ``latents`` every input of ``G.decode`` (the
    others, a given class or fixed inputs, stay as they are). A predicted class ``c`` (probabilities)
    is optimised as its logits, so that it stays a distribution over the classes.
    """
    if missing := [n for n in names if n not in latents]:
        raise DseError(f"refine_latents: no latents named {missing}; got {sorted(latents)}")
    free = {n: (latents[n].clamp_min(1e-6).log() if n == "c" else latents[n]).detach().clone().requires_grad_(True)
            for n in names}

    def current() -> dict[str, torch.Tensor]:
        return {**latents, **{n: v.softmax(dim=1) if n == "c" else v for n, v in free.items()}}

    def reconstruct() -> torch.Tensor:
        return G.decode(current(), noise_mode=noise_mode)

    with _bar_for(bar, steps, f"refining {', '.join(names)}", progress) as bar:
        _optimise(reconstruct, images, loss, list(free.values()), steps, lr, seed, bar, stop=stop)
    with torch.no_grad():
        return {k: v.detach() for k, v in current().items()}


def refine_encoder(G, E, images: torch.Tensor, loss: DSELoss, c: torch.Tensor | None = None,
                   steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR["encoder"], noise_mode: str = "const",
                   seed: int = 0, progress: bool = False, bar=None, stop: Callable[[], bool] | None = None):
    """A deep copy of E fine-tuned on ``images`` in eval mode (see the module notes), returned frozen.

    E itself is unchanged. ``images`` (N, C, H, W) in [-1, 1] on E's and G's device; ``c`` the given
    class (it conditions a conditional E and replaces E's predicted class). ``progress`` / ``bar`` /
    ``stop``: as :func:`refine_latents`'.
    """
    tuned = copy.deepcopy(E).eval().requires_grad_(True)
    params = list(tuned.parameters())

    def reconstruct() -> torch.Tensor:
        return G.decode(encode(G, tuned, images, c)[0], noise_mode=noise_mode)

    with _bar_for(bar, steps, "fine-tuning E", progress) as bar:
        _optimise(reconstruct, images, loss, params, steps, lr, seed, bar, stop=stop)
    return tuned.requires_grad_(False)


def tune_generator(G, latents: dict[str, torch.Tensor], images: torch.Tensor, loss: DSELoss,
                   steps: int = STEPS["generator"], lr: float = DEFAULT_LR["generator"], locality: float = LOCALITY,
                   alpha: float | None = None, noise_mode: str = "const", seed: int = 0, progress: bool = False,
                   bar=None, stop: Callable[[], bool] | None = None):
    """A deep copy of G tuned so that it decodes ``latents`` (fixed pivots) to ``images``; returned frozen, G unchanged.

    ``loss``: :func:`pti_loss` (what :class:`Refinement` passes), for the image and the regulariser alike.
    ``locality`` weighs the regulariser (0: none); ``alpha`` its step from the pivot (None: PTI's, scaled to
    this G, see the module notes). ``images`` (N, C, H, W) in [-1, 1] on G's device; all N tune the one copy.
    ``progress`` / ``bar`` / ``stop``: as :func:`refine_latents`' (:class:`Refinement` gives one bar to all its images'
    copies).
    """
    if locality < 0:
        raise DseError(f"tune_generator: locality must be >= 0, got {locality}")
    tuned = copy.deepcopy(G).requires_grad_(True)
    params = [p for p in tuned.parameters() if p.is_floating_point()]

    def reconstruct() -> torch.Tensor:
        return tuned.decode(latents, noise_mode=noise_mode)

    def regulariser() -> torch.Tensor:
        near = nearby_latents(G, latents, alpha)
        with torch.no_grad():  # the original G only gives targets: no graph kept through it
            x = G.decode(near, noise_mode=noise_mode)
        return locality * loss.per_sample(x, tuned.decode(near, noise_mode=noise_mode))["total"].sum()

    with _bar_for(bar, steps, "tuning G", progress) as bar:
        _optimise(reconstruct, images, loss, params, steps, lr, seed, bar, extra=regulariser if locality else None,
                  stop=stop)
    return tuned.requires_grad_(False)


def mean_latents(G, n: int, device: torch.device | str | None = None,
                 fixed: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Where latent optimisation without an encoder starts (Image2StyleGAN, NVlabs' projector): G's mean latent, n times.

    ws: ``G.mapping.w_avg`` on every layer (a per-layer w_avg row by row); z: 0, the mean of z's distribution, unless
    G normalises z (PGGAN: G(z) = G(3z)), where 0 has no direction and Adam's fixed-size steps would spin a z that
    small around the sphere (PGGAN's demo: 13 dB after 200 steps from 0, 27 dB from a drawn z): there one z drawn from
    seed 0, the same for every image; c: the uniform mixture 1 / c_dim. ``fixed``: the other inputs of decode
    (BigGAN's truncation), as an encoder records them.
    """
    fixed = fixed or {}
    latents = {}
    for name, shape in G.latent_shapes.items():
        if name == "ws":
            latents[name] = G.mapping.w_avg.detach().to(device).expand(n, *shape).clone()
        elif name in ("z", "c"):
            latents[name] = torch.full((n, *shape), 0.0 if name == "z" else 1.0 / G.c_dim, device=device)
        elif name in fixed:
            latents[name] = torch.full((n, *shape), float(fixed[name]), device=device)
        else:
            raise DseError(f"the {G.family} generator's mean latent needs a value for {name!r}",
                           hint=f"give it as fixed={{{name!r}: ...}} (an encoder records it in config.fixed_latents)")
    if "z" in latents:
        z = G.sample_z(1, generator=torch.Generator().manual_seed(0)).to(device)
        if _normalises_z(G, {k: v[:1] for k, v in latents.items()}, z):
            latents["z"] = z.expand(n, -1).clone()
    return latents


def _normalises_z(G, latents: dict[str, torch.Tensor], z: torch.Tensor) -> bool:
    """Whether G's image ignores z's length: G(z) = G(3z)."""
    with torch.no_grad():
        a, b = (G.decode({**latents, "z": scale * z}) for scale in (1, 3))
    return torch.allclose(a, b, atol=1e-4)


def nearby_latents(G, latents: dict[str, torch.Tensor], alpha: float | None = None) -> dict[str, torch.Tensor]:
    """``latents`` with ws (or z) moved ``alpha`` towards a random one (PTI's locality samples); the rest as is."""
    name = "ws" if "ws" in latents else "z"
    if name not in latents:
        raise DseError(f"tuning G needs ws or z latents to sample near; the {G.family} generator decodes "
                       f"{', '.join(latents)}")
    pivot = latents[name]
    n = len(pivot)
    with torch.no_grad():
        z = G.sample_z(n).to(pivot.device)
        if name == "ws":
            c = latents.get("c") if G.c_dim else None
            c = G.sample_c(n).to(pivot.device) if G.c_dim and c is None else c
            other = G.sample_latents(z, c, truncation_psi=0.5)["ws"]  # PTI's psi: typical, not extreme, ws
        else:
            other = z
    direction = (other - pivot).flatten(1)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-8)
    if alpha is None:
        alpha = PTI_ALPHA_PER_ELEMENT * direction.shape[1] ** 0.5
    return {**latents, name: pivot + alpha * direction.view_as(pivot)}


def _optimise(reconstruct: Callable[[], torch.Tensor], images: torch.Tensor, loss: DSELoss,
              params: list[torch.Tensor], steps: int, lr: float, seed: int, bar,
              extra: Callable[[], torch.Tensor] | None = None, stop: Callable[[], bool] | None = None) -> None:
    """``steps`` Adam steps on ``params`` against the summed per-image loss (+ ``extra()``, a regulariser), each
    advancing ``bar`` by one; gradients reach ``params`` only (``backward(inputs=params)``: nothing else's ``.grad``
    is touched). ``stop`` is asked before each step: once true, :class:`Stopped` instead of the step."""
    if steps < 0 or lr <= 0:
        raise DseError(f"refinement needs steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
    loss = loss.to(images.device)
    optimizer = torch.optim.Adam(params, lr=lr)
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        torch.manual_seed(seed)
        for _ in range(steps):
            if stop is not None and stop():
                raise Stopped
            optimizer.zero_grad(set_to_none=True)
            loss.per_sample(images, reconstruct())["total"].sum().backward(inputs=params)
            if extra is not None:  # its own backward, added in place: one graph through G held at a time, not two
                extra().backward(inputs=params)
            optimizer.step()
            bar.update(1)
    for p in params:
        p.grad = None


@attrs.frozen
class Refined:
    """What a :class:`Refinement` gives: the latents, and for tuning G the tuned copies and their images."""

    latents: dict[str, torch.Tensor]
    generators: list | None = None  # per image: its tuned G (shared_tune: one object N times); None: G itself
    x_rec: torch.Tensor | None = None  # generators' images of latents (decoded as each copy was tuned)


def _then_valid(instance, attribute, value) -> None:
    """Stages that would undo each other are refused (dse invert's --then and dse eval's A+B alike)."""
    if value is None:
        return
    first, then = instance.method, value.method
    order = f"--refine {then} --then {first} (dse eval: {then}+{first})"
    if first == "generator":
        raise DseError(f"{then} after generator: tuning G must be the last stage, nothing can follow it",
                       hint=f"put it first: {order}")
    if then == first:
        raise DseError(f"stage {first} follows itself", hint="give it more steps instead")
    if then == "encoder":  # it re-encodes the images: the earlier stage's latents would be thrown away
        raise DseError(f"encoder after {first}: fine-tuning E re-encodes the images, discarding what {first} gave",
                       hint=f"put it first: {order}")


@attrs.frozen(eq=False)
class Refinement:
    """What :class:`~dse_core.invert.Inverter` does after E: ``method`` ``"latents"``, ``"encoder"`` or
    ``"generator"``, steps, lr, loss; ``then`` the next stage (starting from this one's latents).

    ``steps`` / ``lr`` None take ``STEPS[method]`` / ``DEFAULT_LR[method]``. With ``"encoder"`` each call (one
    batch) fine-tunes its own copy of E from the original; with ``"generator"`` each image tunes its own copy
    of G (``shared_tune``: the batch one copy), regularised by ``locality`` and ``alpha`` (:func:`tune_generator`).
    ``record()`` is what a run stores. ``stop`` (a zero-argument callable, e.g. a ``threading.Event``'s ``is_set``;
    None: never) is asked before every step of every stage (a ``then`` stage without a ``stop`` of its own takes
    this one's); once it returns true, :class:`Stopped` is raised. It is not a setting of the result: not in
    ``record()`` nor the repr.
    """

    method: str = attrs.field(validator=attrs.validators.in_(METHODS))
    steps: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(0)))
    lr: float | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0)))
    preset: str = DEFAULT_PRESET  # whose image terms make the loss (not "generator"'s: PTI's loss)
    lpips: object = None  # an LPIPS module (e.g. load_lpips()) for the loss's LPIPS term; None: no LPIPS term
    seed: int = 0
    progress: bool = False  # per call (batch), one bar per stage over its steps x the copies it tunes
    shared_tune: bool = False  # "generator": one tuned copy per batch instead of one per image
    locality: float = attrs.field(default=LOCALITY, validator=attrs.validators.ge(0))  # "generator": regulariser weight
    alpha: float | None = None  # "generator": the regulariser's step from the pivot (None: PTI's, scaled)
    then: "Refinement | None" = attrs.field(default=None, validator=_then_valid)
    stop: Callable[[], bool] | None = attrs.field(default=None, kw_only=True, repr=False, eq=False)
    loss: DSELoss = attrs.field(init=False)  # "generator": PTI's (``preset`` unused); else the DSE image loss

    def __attrs_post_init__(self) -> None:
        loss = pti_loss(self.lpips) if self.method == "generator" else image_loss(self.preset, self.lpips)
        object.__setattr__(self, "loss", loss)
        if self.steps is None:
            object.__setattr__(self, "steps", STEPS[self.method])
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.method])

    @property
    def stages(self) -> list["Refinement"]:
        return [self] + ([] if self.then is None else self.then.stages)

    @property
    def tunes_generator(self) -> bool:
        return self.stages[-1].method == "generator"

    def __call__(self, G, E, images: torch.Tensor, latents: dict[str, torch.Tensor], names: Sequence[str],
                 c: torch.Tensor | None = None, noise_mode: str = "const") -> dict[str, torch.Tensor]:
        """Refined latents for ``images`` (:meth:`run`'s ``latents``)."""
        return self.run(G, E, images, latents, names, c, noise_mode).latents

    def run(self, G, E, images: torch.Tensor, latents: dict[str, torch.Tensor], names: Sequence[str],
            c: torch.Tensor | None = None, noise_mode: str = "const", *,
            stop: Callable[[], bool] | None = None) -> Refined:
        """Every stage in turn: ``latents`` (for ``G.decode``) are where ``"latents"`` starts, ``names`` what it
        optimises (what E predicted); ``"encoder"`` re-encodes with a tuned copy of E (``c``: a given class);
        ``"generator"`` tunes G on the latents it is given. With ``progress``, one bar per stage: its steps over
        all the images (one copy of G per image: steps x images). ``stop``: the chain's, for a stage without its
        own (how a ``then`` stage gets this one's)."""
        stop = self.stop if self.stop is not None else stop
        copies = len(images) if self.method == "generator" and not self.shared_tune else 1
        desc = {"latents": f"refining {', '.join(names)}", "encoder": "fine-tuning E", "generator": "tuning G"}
        with progress_bar(self.steps * copies, desc[self.method], enabled=self.progress, nested=True) as bar:
            if self.method == "generator":
                refined = self._tune(G, images, latents, noise_mode, bar, stop)
            else:
                refined = Refined(self._refine(G, E, images, latents, names, c, noise_mode, bar, stop))
        return refined if self.then is None else \
            self.then.run(G, E, images, refined.latents, names, c, noise_mode, stop=stop)

    def _kwargs(self, noise_mode: str, bar, stop) -> dict:
        return dict(steps=self.steps, lr=self.lr, noise_mode=noise_mode, seed=self.seed, bar=bar, stop=stop)

    def _refine(self, G, E, images, latents, names, c, noise_mode, bar, stop) -> dict[str, torch.Tensor]:
        if self.method == "latents":
            return refine_latents(G, latents, images, self.loss, names, **self._kwargs(noise_mode, bar, stop))
        tuned = refine_encoder(G, E, images, self.loss, c, **self._kwargs(noise_mode, bar, stop))
        with torch.no_grad():
            return encode(G, tuned, images, c)[0]

    def _tune(self, G, images, latents, noise_mode, bar, stop) -> Refined:
        """One tuned copy per image (or per batch), each decoding its image at once and then kept on the CPU:
        the device holds G and one copy (with Adam's state) at a time. All advance ``bar``."""
        kwargs = dict(locality=self.locality, alpha=self.alpha, **self._kwargs(noise_mode, bar, stop))
        parts = [(images, latents)] if self.shared_tune else \
            [(images[i : i + 1], {k: v[i : i + 1] for k, v in latents.items()}) for i in range(len(images))]
        generators, x_rec = [], []
        for k, (x, part) in enumerate(parts, 1):
            if len(parts) > 1:
                bar.set_postfix_str(f"image {k}/{len(parts)}", refresh=False)
            tuned = tune_generator(G, part, x, self.loss, **kwargs)
            with torch.no_grad():
                x_rec.append(tuned.decode(part, noise_mode=noise_mode))
            generators += [tuned.cpu() if x.device.type != "cpu" else tuned] * len(x)
        return Refined(latents, generators, torch.cat(x_rec))

    @property
    def loss_name(self) -> str:
        """The loss this stage minimises, in words."""
        if self.method == "generator":
            return "PTI's: MSE" + (" + LPIPS" if self.loss.lpips is not None else "") + ", whole image"
        return f"{self.preset} DSE image loss (Eq. 6-7), no latent term"

    def describe(self) -> str:
        """One line for the latents' metadata: each stage's method, steps and lr."""
        return "; then ".join(f"{s.method}, {s.steps} steps, lr {s.lr}" for s in self.stages)

    def record(self) -> dict:
        """This stage's settings, and the next stage's under ``"then"``."""
        lpips = self.loss.lpips
        record = {
            "method": self.method,
            "paper_row": PAPER_ROWS[self.method],
            "steps": self.steps,
            "lr": self.lr,
            "optimizer": "Adam",
            "preset": None if self.method == "generator" else self.preset,
            "loss": self.loss_name,
            "lpips": "not used" if lpips is None else ("VGG, trained backbone" if getattr(lpips, "trained", True)
                                                        else "VGG, UNTRAINED backbone"),
            "loss_config": attrs.asdict(self.loss.config),
            "seed": self.seed,
            "scope": {"latents": "each image on its own",
                      "encoder": "one fine-tuned copy of E per batch (per process under torchrun)",
                      "generator": "one tuned copy of G per batch" if self.shared_tune
                      else "one tuned copy of G per image"}[self.method],
        }
        if self.method == "generator":
            record.update(latents="fixed (the pivots)", locality_weight=self.locality,
                          locality_alpha="PTI's 30 scaled to the latent's size" if self.alpha is None else self.alpha,
                          locality_loss="the same loss between the tuned and the original G at latents near the pivot")
        if self.then is not None:
            record["then"] = self.then.record()
        return record


def make_refinement(method: str | None, steps: int | None = None, lr: float | None = None,
                    preset: str | None = None, lpips=None, progress: bool = False, then: str | None = None,
                    then_steps: int | None = None, then_lr: float | None = None,
                    shared_tune: bool = False, stop: Callable[[], bool] | None = None) -> Refinement | None:
    """``dse invert``'s ``--refine*`` / ``--then*`` / ``--shared-tune`` options as a :class:`Refinement` (None without a
    method); ``steps`` / ``lr`` are the first stage's, ``then_steps`` / ``then_lr`` the second's. ``stop``: both
    stages' (see :class:`Refinement`); no option of the command.

    Options without a method, and invalid values, are :class:`DseError`.
    """
    options = {"--refine-steps": steps, "--refine-lr": lr, "--refine-preset": preset, "--then": then}
    given = [k for k, v in options.items() if v is not None] + (["--shared-tune"] if shared_tune else [])
    if method is None:
        if given:
            raise DseError(f"{', '.join(given)} given without --refine",
                           hint="add --refine latents, --refine encoder or --refine generator")
        return None
    if then is None and (then_steps is not None or then_lr is not None):
        raise DseError("--then-steps / --then-lr given without --then", hint="add --then generator (or another stage)")
    if shared_tune and "generator" not in (method, then):
        raise DseError("--shared-tune needs a generator stage", hint="add --refine generator or --then generator")
    common = dict(lpips=lpips, progress=progress, stop=stop, **({"preset": preset} if preset is not None else {}))
    tune = dict(shared_tune=shared_tune)
    try:
        second = None if then is None else Refinement(then, steps=then_steps, lr=then_lr, **common,
                                                      **(tune if then == "generator" else {}))
        return Refinement(method, steps=steps, lr=lr, then=second, **common,
                          **(tune if method == "generator" else {}))
    except ValueError as exc:
        raise DseError(f"bad refinement option: {exc}") from None
