"""``Direction``: latent direction(s) and what they apply to, saved as safetensors + JSON like everything dse writes.

A direction names the generator latent it edits (``latent``: ``"ws"``, ``"z"`` or ``"c"``, as
``G.latent_shapes`` names them) and holds K components. A ``ws`` component is per layer
(``(num_ws, w_dim)``, applied as it is) or one w (``(w_dim,)``, broadcast over the layers); any
other latent's component has that latent's per-sample shape. ``std`` (when known: PCA, SeFa
projections) makes strengths read in standard deviations of the latent along the component.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import torch
from safetensors.torch import save

from ..config import write_bytes_atomic, write_json_atomic
from ..errors import DseError

SUFFIX = ".safetensors"
METADATA_KEY = "dse_direction"


def _vectors(instance, attribute, value: torch.Tensor) -> None:
    if not isinstance(value, torch.Tensor) or value.ndim < 2 or value.shape[0] < 1:
        raise ValueError(f"vectors must be a (K, ...) tensor of K >= 1 components, got {getattr(value, 'shape', value)}")


@attrs.frozen(eq=False)
class Direction:
    """K latent directions (components) for one latent of a generator."""

    vectors: torch.Tensor = attrs.field(validator=_vectors)  # (K, *shape), float32
    latent: str  # the latent it edits, by the generator's name: "ws", "z", "c"
    std: torch.Tensor | None = None  # (K,): the latent's std along each component (strength units); None: unknown
    layers: tuple[int, ...] | None = None  # ws layers edited by default (e.g. idinvert's manipulate_layers); None: all
    names: tuple[str, ...] | None = None  # a name per component, when the source gives them
    generator: dict = attrs.field(factory=dict)  # what it was made for: {"family", "spec", "fingerprint"} when known
    source: dict = attrs.field(factory=dict)  # where it comes from: {"format", "file", "method", "license", ...}

    def __attrs_post_init__(self):
        object.__setattr__(self, "vectors", self.vectors.detach().float().cpu().contiguous())
        if self.std is not None:
            std = self.std.detach().float().cpu().flatten()
            if std.shape != (len(self),):
                raise ValueError(f"std must hold one value per component ({len(self)}), got {tuple(std.shape)}")
            object.__setattr__(self, "std", std)
        if self.names is not None and len(self.names) != len(self):
            raise ValueError(f"names must name each of the {len(self)} components, got {len(self.names)}")

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """One component's shape."""
        return tuple(self.vectors.shape[1:])

    def component(self, k: int) -> "Direction":
        """Component ``k`` alone (a one-component direction)."""
        if not -len(self) <= k < len(self):
            raise DseError(f"component {k}: this direction set has components 0..{len(self) - 1}")
        k %= len(self)
        return attrs.evolve(self, vectors=self.vectors[k : k + 1], std=None if self.std is None else self.std[k : k + 1],
                            names=None if self.names is None else (self.names[k],),
                            source={**self.source, "component": k})

    def describe(self) -> str:
        what = f"{len(self)} component(s) of shape {self.shape} in {self.latent}"
        return f"{what} ({self.source['format']})" if self.source.get("format") else what

    def check(self, G, origin: str = "the direction") -> None:
        """A :class:`DseError` unless this direction fits ``G``: says what it is and what G takes."""
        shapes = G.latent_shapes
        takes = ", ".join(f"{n} {tuple(s)}" for n, s in shapes.items() if n in G.latent_names)
        if self.latent not in G.latent_names:
            raise DseError(f"{origin} lives in {self.latent} ({self.describe()}), but the {G.family} generator's "
                           f"inverted latents are {takes}", hint=_space_hint(self.latent, G))
        want = shapes[self.latent]
        fits = self.shape == want or (self.latent == "ws" and self.shape == want[1:])
        if not fits:
            raise DseError(f"{origin} is {self.describe()}, but the {G.family} generator takes {self.latent} as "
                           f"{tuple(want)}" + (f" (or one w of {want[1:]})" if self.latent == "ws" else ""),
                           hint="it was made for another generator: compute one for this generator (dse directions)")
        if self.layers is not None and self.latent == "ws" and max(self.layers, default=0) >= want[0]:
            raise DseError(f"{origin} edits layers {list(self.layers)}, the {G.family} generator has {want[0]} ws")

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """``path`` (.safetensors: the vectors, std and a JSON record in its metadata) and ``path``.json beside it."""
        path = Path(path)
        if path.suffix != SUFFIX:
            path = path.with_name(path.name + SUFFIX)
        tensors = {"vectors": self.vectors}
        if self.std is not None:
            tensors["std"] = self.std
        record = self.record()
        write_bytes_atomic(path, save(tensors, metadata={METADATA_KEY: json.dumps(record)}))
        write_json_atomic(path.with_suffix(".json"), {**record, "shape": [len(self), *self.shape]})
        return path

    def record(self) -> dict[str, Any]:
        return {"latent": self.latent, "layers": None if self.layers is None else list(self.layers),
                "names": None if self.names is None else list(self.names), "generator": self.generator,
                "source": self.source}

    @classmethod
    def load(cls, path: str | Path) -> "Direction":
        """A direction saved by :meth:`save`; a :class:`DseError` names a file it cannot read."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        try:
            with safe_open(str(path), "pt") as f:
                meta = json.loads((f.metadata() or {})[METADATA_KEY])
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            return cls(tensors["vectors"], meta["latent"], std=tensors.get("std"),
                       layers=None if meta.get("layers") is None else tuple(meta["layers"]),
                       names=None if meta.get("names") is None else tuple(meta["names"]),
                       generator=meta.get("generator") or {}, source=meta.get("source") or {})
        except (SafetensorError, OSError, KeyError, ValueError, TypeError) as exc:
            raise DseError(f"{path}: not a dse direction file ({type(exc).__name__}: {exc})",
                           hint="write it with dse directions, or pass the original tool's file") from None


def _space_hint(latent: str, G) -> str:
    if latent == "z" and "ws" in G.latent_names:
        return ("a z-space direction moves the mapping network's input, which inversion skips: use a w-space one "
                "(InterFaceGAN's *_w_boundary.npy, or dse directions)")
    return "use a direction made for this family (dse directions computes one)"
