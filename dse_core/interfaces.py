"""The small contracts that plugins implement and the core relies on.

One vocabulary everywhere: ``z`` (input latent, ``z_dim``), ``c`` (class/condition vector,
``c_dim``, 0 = unconditional), ``w`` (one intermediate latent, ``w_dim``), ``ws`` (the
``num_ws`` w vectors the synthesis network consumes, one per layer), ``resolution`` and
``img_channels`` of the output image; ``x`` an image batch and ``x_rec`` its reconstruction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import math
from typing import ClassVar, Literal, Sequence

import torch
from torch import nn

NoiseMode = Literal["const", "random", "none"]
NOISE_MODES: tuple[str, ...] = ("const", "random", "none")


class Generator(nn.Module, ABC):
    """Every family's generator: ``G(z, c) -> NCHW`` images nominally in [-1, 1].

    Images are never clamped here: callers clamp when they write pixels.
    ``noise_mode``: ``const`` uses the stored per-layer noise buffers (deterministic),
    ``random`` draws fresh noise, ``none`` switches noise off. Families without
    noise accept and ignore it.

    A generator is built from one config: ``__init__(self, config)`` stores it as
    ``self.config`` (what ``save_pretrained`` writes) and sets ``resolution``,
    ``z_dim``, ``c_dim`` and ``img_channels``. A wrongly shaped z or c raises
    ValueError (:func:`check_latents`). :func:`dse_core.testing.check_generator_contract`
    checks all of this.

    **Latents.** ``sample_latents(z, c, psi, cutoff)`` returns the latents ``decode`` takes,
    by name; ``decode(sample_latents(z, c, psi, cutoff))`` gives the images
    ``G(z, c, psi, cutoff)`` gives. ``latent_names`` are the ones an encoder predicts (and
    the latent loss compares): ``("ws",)`` for a style-based family, ``("z",)``, ``("z", "c")``.
    ``latent_shapes`` gives each latent's per-sample shape, and may name more than
    ``latent_names``: inputs ``decode`` needs that no encoder predicts because they are
    fixed for a model and a run (BigGAN's truncation, which selects batch-norm
    statistics, is ``{"truncation": ()}``): *truncation lives in the latents* for a family
    whose synthesis depends on it. An encoder records the values it was trained at
    (``EncoderConfig.fixed_latents``) and inversion passes them to ``decode``.

    **Truncation.** ``has_truncation`` says whether ``truncation_psi != 1`` does anything; a
    family without it raises ValueError for any other psi. ``truncation_cutoff`` (truncate
    only the first k ws) is for style-based families.

    **Conditions.** A conditional family (``c_dim`` > 0) takes c as (N, c_dim) class
    vectors (one-hot, or a mixture); ``class_names`` names the classes when known;
    ``sample_z(n, psi)`` draws z (what ``dse sample`` and training feed G), ``sample_c(n)`` draws the training conditions (uniform classes by default) and
    ``class_vector(classes)`` turns indices or names into c.
    """

    family: ClassVar[str]  # GAN family name, e.g. "stylegan2"
    latent_names: ClassVar[tuple[str, ...]]  # what an encoder predicts for decode(): ("ws",), ("z",), ("z", "c")
    has_truncation: ClassVar[bool] = False  # truncation_psi != 1 truncates (else it raises ValueError)
    max_truncation_psi: ClassVar[float] = 2.0  # the largest psi it honours (BigGAN: 1, its statistics' range)
    class_names: tuple[str, ...] | None = None  # the c_dim classes' names, when known
    resolution: int
    z_dim: int
    c_dim: int
    img_channels: int

    @abstractmethod
    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: NoiseMode = "const",
    ) -> torch.Tensor: ...

    @abstractmethod
    def sample_latents(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                       truncation_cutoff: int | None = None) -> dict[str, torch.Tensor]:
        """The latents ``decode`` takes, for given z (and c): the targets of the encoder's latent loss."""

    @abstractmethod
    def decode(self, latents: dict[str, torch.Tensor], noise_mode: NoiseMode = "const") -> torch.Tensor:
        """Images from latents named as in ``latent_shapes`` (an encoder's output, or ``sample_latents``)."""

    @property
    def latent_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of every latent ``decode`` takes: ``latent_names`` first, then fixed inputs.

        Known for ``z`` (z_dim,) and ``c`` (c_dim,); a family with other latents overrides this.
        """
        known = {"z": (self.z_dim,), "c": (self.c_dim,)}
        missing = [name for name in self.latent_names if name not in known]
        if missing:
            raise NotImplementedError(f"{type(self).__name__} must define latent_shapes for {missing}")
        return {name: known[name] for name in self.latent_names}

    def sample_z(self, n: int, truncation_psi: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents z (n, z_dim) as the family draws them at this truncation: N(0, 1) here, where G truncates inside
        (in w); a family whose truncation shapes z itself (BigGAN: a truncated normal times psi) overrides this."""
        return torch.randn(n, self.z_dim, generator=generator)

    def condition_vector(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """(N, cond_dim): the vector this generator's conditional layers read, for an encoder conditioned on it
        (``EncoderConfig.condition == "generator"``); BigGAN: [z, class embedding]. Most families have none."""
        raise NotImplementedError(f"the {self.family} generator has no condition vector")

    def style_weights(self, layers: Sequence[int] | None = None) -> torch.Tensor:
        """(M, latent_dim): the stacked weights of the linear maps that first read the edited latent, as applied
        (equalized-lr gain included): what SeFa factorizes. Style-based families: every style affine reading
        ``ws[:, i]`` for i in ``layers`` (all when None); z-space families: the first layer's weight on z."""
        raise NotImplementedError(f"the {self.family} generator exposes no style weights")

    def sample_c(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Training conditions for n samples: uniformly drawn classes, one-hot (None for an unconditional model)."""
        if not self.c_dim:
            return None
        return self.class_vector(torch.randint(self.c_dim, (n,), generator=generator).tolist())

    def class_vector(self, classes: int | str | Sequence[int | str] | torch.Tensor) -> torch.Tensor:
        """(N, c_dim) class vectors: one-hot for class indices or names (:meth:`class_index`), one or a list of
        them; an (N, c_dim) tensor of one-hot or probability rows is checked and returned as float."""
        from .errors import DseError

        if isinstance(classes, torch.Tensor) and classes.is_floating_point():
            if classes.ndim != 2 or classes.shape[1] != self.c_dim or (classes < 0).any() or \
                    not torch.allclose(classes.sum(dim=1), torch.ones(len(classes), device=classes.device), atol=1e-3):
                raise DseError(f"class vectors must be (N, {self.c_dim}) rows of one-hot or probabilities summing to "
                               f"1, got a {tuple(classes.shape)} tensor", hint="or give class indices or names")
            return classes.float()
        if isinstance(classes, torch.Tensor):
            classes = classes.flatten().tolist()
        elif isinstance(classes, (str, int)):
            classes = [classes]
        indices = [self.class_index(item) for item in classes]
        return nn.functional.one_hot(torch.tensor(indices, dtype=torch.long), self.c_dim).float()

    def class_index(self, item: int | str) -> int:
        """One class's index, from an index (``207``, ``"207"``) or a name: exact, else matched case-insensitively
        with ``_``, ``-`` and spaces alike (``golden_retriever`` is "golden retriever"); a :class:`DseError` names
        a wrong one, with close matches."""
        from .errors import DseError

        if not self.c_dim:
            raise DseError(f"the {self.family} generator is unconditional: it takes no class")
        if isinstance(item, str) and not item.strip().lstrip("-").isdigit():
            return self._class_by_name(item)
        index = int(item)
        if not 0 <= index < self.c_dim:
            raise DseError(f"class {index}: the {self.family} generator has classes 0..{self.c_dim - 1}")
        return index

    def _class_by_name(self, name: str) -> int:
        from .errors import DseError, UnknownNameError, name_key

        names = list(self.class_names or [])
        if name in names:  # exact first: ImageNet has both "Cardigan" (the corgi) and "cardigan"
            return names.index(name)
        found = [i for i, known in enumerate(names) if name_key(known) == name_key(name)]
        if len(found) > 1:
            raise DseError(f"class {name!r} is ambiguous: " + ", ".join(f"{i} {names[i]!r}" for i in found),
                           hint="give the exact name or the index")
        if not found:
            hint = (f"or give the class index 0..{self.c_dim - 1}" if names else
                    f"the {self.family} generator's classes have no names: give the class index 0..{self.c_dim - 1}")
            raise UnknownNameError(f"{self.family} class", name, names, hint=hint)
        return found[0]


class StyleGenerator(Generator):
    """Style-based generators (StyleGAN, StyleGAN2): z -> mapping -> ws -> synthesis.

    ``mapping`` and ``synthesis`` are sub-modules (so state-dict keys read
    ``mapping.fc0.weight``, ``synthesis.b4.const``) callable as::

        G.mapping(z, c=None, truncation_psi=1.0, truncation_cutoff=None) -> ws (N, num_ws, w_dim)
        G.synthesis(ws, noise_mode="const") -> images (N, img_channels, resolution, resolution)

    The encoder predicts ws, one w per synthesis layer (the paper's w+).
    ``truncation_cutoff=k`` truncates ws[:, :k] only; None is the generator's own default: all
    of them for StyleGAN2 (as NVlabs), the first 8 for StyleGAN (as official StyleGAN and
    genforce), num_ws / 2 for the DSE authors' StyleGAN (their sampling).
    """

    latent_names: ClassVar[tuple[str, ...]] = ("ws",)
    has_truncation: ClassVar[bool] = True
    w_dim: int
    num_ws: int
    mapping: nn.Module
    synthesis: nn.Module

    @property
    def latent_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"ws": (self.num_ws, self.w_dim)}

    def sample_latents(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        return {"ws": self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)}

    def decode(self, latents, noise_mode="const"):
        return self.synthesis(latents["ws"], noise_mode=noise_mode)

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


MAX_TRUNCATION_PSI = 2.0  # beyond 1 truncation exaggerates; further out the images are noise


def psi_problem(psi) -> str | None:
    """Why ``psi`` is no truncation psi (a real number from 0 to MAX_TRUNCATION_PSI), or None when it is one."""
    try:
        value = float(psi)
    except (TypeError, ValueError):
        value = None
    if isinstance(psi, bool) or value is None or not math.isfinite(value) or not 0 <= value <= MAX_TRUNCATION_PSI:
        return f"must be a number from 0 (the average) to {MAX_TRUNCATION_PSI:g} (1 = no truncation), got {psi}"
    return None


def check_psi(psi) -> None:
    """A :class:`DseError` unless ``psi`` is a truncation psi: what a command checks before it loads a model."""
    from .errors import DseError

    if problem := psi_problem(psi):
        raise DseError(f"truncation psi {psi}: {problem.rpartition(', got')[0]}")


def num_ws_of(G) -> int:
    """How many per-layer ws a generator's synthesis takes: 0 for a family that is not style-based."""
    return G.num_ws if isinstance(G, StyleGenerator) else 0


def check_truncation(G: Generator, truncation_psi: float, truncation_cutoff: int | None = None) -> None:
    """A :class:`DseError` unless ``G`` can honour this truncation (every command checks it before sampling)."""
    from .errors import DseError

    psi, cutoff = truncation_psi, truncation_cutoff
    check_psi(psi)
    if psi != 1 and not G.has_truncation:
        raise DseError(f"truncation psi {psi}: the {G.family} generator has no truncation", hint="leave psi at 1")
    if psi > G.max_truncation_psi:
        raise DseError(f"truncation psi {psi}: the {G.family} generator takes psi from 0 to {G.max_truncation_psi:g}",
                       hint=f"give a psi of at most {G.max_truncation_psi:g}")
    if cutoff is None:
        return
    num_ws = num_ws_of(G)
    if not num_ws:
        raise DseError(f"truncation cutoff {cutoff}: the {G.family} generator has no per-layer ws to cut",
                       hint="drop the cutoff")
    if psi == 1:
        raise DseError(f"truncation cutoff {cutoff} with psi 1 truncates nothing", hint="give a psi below 1 too, or "
                       "drop the cutoff")
    if not 1 <= cutoff <= num_ws:
        raise DseError(f"truncation cutoff {cutoff}: the {G.family} generator has {num_ws} ws; the cutoff must be 1..{num_ws}")


def check_latents(owner: str, z: torch.Tensor, z_dim: int, c: torch.Tensor | None, c_dim: int) -> None:
    """Check z (N, z_dim) and, for a conditional model (``c_dim > 0``), c (N, c_dim); raise ValueError otherwise.

    Call it first thing in ``forward`` / ``sample_latents`` (``owner`` names the model in the
    message): the contract test feeds wrongly shaped z and requires a ValueError, not whatever
    error a matmul further in happens to raise.
    """
    if z.ndim != 2 or z.shape[1] != z_dim:
        raise ValueError(f"{owner}: z must be (N, {z_dim}), got {tuple(z.shape)}")
    if c_dim and (c is None or tuple(c.shape) != (z.shape[0], c_dim)):
        got = None if c is None else tuple(c.shape)
        raise ValueError(f"{owner}: c must be (N, {c_dim}) for this conditional model, got {got}")


def check_ws(owner: str, ws: torch.Tensor, num_ws: int, w_dim: int) -> None:
    """Check ws (N, num_ws, w_dim) at a synthesis entry point; raise ValueError otherwise."""
    if ws.ndim != 3 or tuple(ws.shape[1:]) != (num_ws, w_dim):
        raise ValueError(f"{owner}: ws must be (N, {num_ws}, {w_dim}), got {tuple(ws.shape)}")


def check_noise_mode(noise_mode: str) -> None:
    """Raise ValueError unless ``noise_mode`` is one of :data:`NOISE_MODES`."""
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None) -> torch.Tensor:
    """Move ws towards ``w_avg`` by ``psi`` on the first ``cutoff`` layers (all when None).

    ``w_avg`` is one (w_dim,) vector, or one row per layer (num_ws, w_dim) (the DSE authors' StyleGAN centre tensor).
    """
    if psi == 1:
        return ws
    if cutoff is None:
        return w_avg.lerp(ws, psi)
    head = (w_avg[:cutoff] if w_avg.ndim == 2 else w_avg).lerp(ws[:, :cutoff], psi)
    return torch.cat([head, ws[:, cutoff:]], dim=1)


class LossTerm(ABC):
    """A similarity term between a target and its reconstruction, one value per sample.

    Returning (N,) rather than a scalar keeps the loss identical however a batch is
    split across processes.
    """

    name: ClassVar[str]

    @abstractmethod
    def __call__(self, x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor: ...


class Attention(ABC):
    """Picks the extra image areas (AT1, AT2) compared besides the whole image."""

    @abstractmethod
    def areas(self, x: torch.Tensor, x_rec: torch.Tensor) -> Sequence[tuple[torch.Tensor, torch.Tensor]]: ...
