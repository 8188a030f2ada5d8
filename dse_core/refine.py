"""Refining the inversion of real images (paper Table III): optimise the latents, or fine-tune E.

Both minimise the DSE image loss between the real image y and G(latents): a preset's
Eq. 6-7 image terms with gradients on (``detach_images`` is forced off, or the
``*-s1`` presets would give no gradient) and no latent term (a real image has no
true w). LPIPS is a term only when a module is given; without one its weight is 0.

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

Neither touches G's or the original E's parameters or their ``.grad``: gradients
are taken only with respect to what is optimised. Each call seeds its own RNG
(only ``noise_mode="random"`` draws from it) and leaves the caller's untouched.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import attrs
import torch

from .errors import DseError
from .latents import encode
from .loss import DSELoss
from .train.presets import DEFAULT_PRESET, get_preset

METHODS = ("latents", "encoder")
PAPER_ROWS = {"latents": "In-domain (W)", "encoder": "DSE (E)"}  # Table III
DEFAULT_STEPS = 100
DEFAULT_LR = {"latents": 0.01, "encoder": 1e-3}  # Adam; latents: In-Domain GAN's rate; encoder: near training's 1.5e-3


def image_loss(preset: str = DEFAULT_PRESET, lpips=None) -> DSELoss:
    """The refinement loss: ``preset``'s image terms with gradients on; LPIPS only when ``lpips`` is given."""
    config = attrs.evolve(get_preset(preset).loss, detach_images=False)
    if lpips is None:
        config = attrs.evolve(config, image=attrs.evolve(config.image, lpips=0.0))
    return DSELoss(config, lpips=lpips)


def refine_latents(G, latents: dict[str, torch.Tensor], images: torch.Tensor, loss: DSELoss, names: Sequence[str],
                   steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR["latents"], noise_mode: str = "const",
                   seed: int = 0, progress: bool = False) -> dict[str, torch.Tensor]:
    """Adam on ``latents[names]`` (what the encoder predicted); returns new, detached latents.

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

    _optimise(reconstruct, images, loss, list(free.values()), steps, lr, seed, progress, f"refining {', '.join(names)}")
    with torch.no_grad():
        return {k: v.detach() for k, v in current().items()}


def refine_encoder(G, E, images: torch.Tensor, loss: DSELoss, c: torch.Tensor | None = None,
                   steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR["encoder"], noise_mode: str = "const",
                   seed: int = 0, progress: bool = False):
    """A deep copy of E fine-tuned on ``images`` in eval mode (see the module notes), returned frozen.

    E itself is unchanged. ``images`` (N, C, H, W) in [-1, 1] on E's and G's device; ``c`` the given
    class (it conditions a conditional E and replaces E's predicted class).
    """
    tuned = copy.deepcopy(E).eval().requires_grad_(True)
    params = list(tuned.parameters())

    def reconstruct() -> torch.Tensor:
        return G.decode(encode(G, tuned, images, c)[0], noise_mode=noise_mode)

    _optimise(reconstruct, images, loss, params, steps, lr, seed, progress, "fine-tuning E")
    return tuned.requires_grad_(False)


def _optimise(reconstruct: Callable[[], torch.Tensor], images: torch.Tensor, loss: DSELoss,
              params: list[torch.Tensor], steps: int, lr: float, seed: int, progress: bool, desc: str) -> None:
    """``steps`` Adam steps on ``params`` against the summed per-image loss; gradients reach ``params`` only."""
    from tqdm import tqdm

    if steps < 0 or lr <= 0:
        raise DseError(f"refinement needs steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
    loss = loss.to(images.device)
    optimizer = torch.optim.Adam(params, lr=lr)
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        torch.manual_seed(seed)
        for _ in tqdm(range(steps), desc=desc, unit="step", leave=False, position=1, disable=not progress):
            total = loss.per_sample(images, reconstruct())["total"].sum()
            grads = torch.autograd.grad(total, params, allow_unused=True)
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()
    for p in params:
        p.grad = None


@attrs.frozen(eq=False)
class Refinement:
    """What :class:`~dse_core.invert.Inverter` does after E: ``method`` ``"latents"`` or ``"encoder"``, steps, lr, loss.

    ``lr`` None takes ``DEFAULT_LR[method]``. With ``"encoder"`` each call (one batch)
    fine-tunes its own copy of E from the original. ``record()`` is what a run stores.
    """

    method: str = attrs.field(validator=attrs.validators.in_(METHODS))
    steps: int = attrs.field(default=DEFAULT_STEPS, validator=attrs.validators.ge(0))
    lr: float | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0)))
    preset: str = DEFAULT_PRESET  # whose image terms make the loss
    lpips: object = None  # an LPIPS module (e.g. load_lpips()) for the loss's LPIPS term; None: no LPIPS term
    seed: int = 0
    progress: bool = False  # a progress bar over the steps
    loss: DSELoss = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "loss", image_loss(self.preset, self.lpips))
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.method])

    def __call__(self, G, E, images: torch.Tensor, latents: dict[str, torch.Tensor], names: Sequence[str],
                 c: torch.Tensor | None = None, noise_mode: str = "const") -> dict[str, torch.Tensor]:
        """Refined latents for ``images``: ``latents`` (for ``G.decode``) are where ``"latents"`` starts, ``names``
        what it optimises (what E predicted); ``"encoder"`` re-encodes with a tuned copy of E (``c``: a given class)."""
        kwargs = dict(steps=self.steps, lr=self.lr, noise_mode=noise_mode, seed=self.seed, progress=self.progress)
        if self.method == "latents":
            return refine_latents(G, latents, images, self.loss, names, **kwargs)
        tuned = refine_encoder(G, E, images, self.loss, c, **kwargs)
        with torch.no_grad():
            return encode(G, tuned, images, c)[0]

    def record(self) -> dict:
        lpips = self.loss.lpips
        return {
            "method": self.method,
            "paper_row": PAPER_ROWS[self.method],
            "steps": self.steps,
            "lr": self.lr,
            "optimizer": "Adam",
            "preset": self.preset,
            "loss": "DSE image loss (Eq. 6-7), no latent term",
            "lpips": "not used" if lpips is None else ("VGG, trained backbone" if getattr(lpips, "trained", True)
                                                        else "VGG, UNTRAINED backbone"),
            "loss_config": attrs.asdict(self.loss.config),
            "seed": self.seed,
            "scope": "each image on its own" if self.method == "latents"
            else "one fine-tuned copy of E per batch (per process under torchrun)",
        }


def make_refinement(method: str | None, steps: int | None = None, lr: float | None = None,
                    preset: str | None = None, lpips=None, progress: bool = False) -> Refinement | None:
    """``dse invert``'s ``--refine*`` options as a :class:`Refinement` (None without a method).

    Options without a method, and invalid values, are :class:`DseError`.
    """
    options = {"steps": steps, "lr": lr, "preset": preset}
    given = {k: v for k, v in options.items() if v is not None}
    if method is None:
        if given:
            raise DseError(f"{', '.join('--refine-' + k for k in given)} given without --refine",
                           hint="add --refine latents or --refine encoder")
        return None
    try:
        return Refinement(method, lpips=lpips, progress=progress, **given)
    except ValueError as exc:
        raise DseError(f"bad refinement option: {exc}") from None
