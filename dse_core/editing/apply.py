"""Edits of latents: ``x + alpha d`` along a direction, and interpolation between two latents."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import DseError
from .direction import Direction


def parse_layers(text: str | None, num_ws: int) -> tuple[int, ...] | None:
    """``"0-5"``, ``"0,2,4"``, ``"8-"`` -> layer indices (checked against ``num_ws``); None -> None (all)."""
    if text is None:
        return None
    layers: list[int] = []
    try:
        for part in text.split(","):
            first, dash, last = part.strip().partition("-")
            start = int(first)
            stop = (int(last) if last else num_ws - 1) if dash else start
            if stop < start:
                raise DseError(f"--layers {text!r}: {part.strip()} runs backwards", hint=f"write {stop}-{start}")
            layers.extend(range(start, stop + 1))
    except ValueError:
        raise DseError(f"--layers {text!r}: expected indices and ranges like 0-5 or 0,2,4 or 8-") from None
    bad = [i for i in layers if not 0 <= i < num_ws]
    if bad or not layers:
        raise DseError(f"--layers {text!r}: the generator has ws 0..{num_ws - 1}")
    return tuple(sorted(set(layers)))


def layer_indices(G, text: str | None, hint: str | None = None) -> tuple[int, ...] | None:
    """:func:`parse_layers` against ``G``'s ws, or the one-line error where ``G`` has no per-layer ws (z-space
    families); None -> None (all). ``hint``: what the caller's user should do about the latter."""
    if text is None:
        return None
    if "ws" not in G.latent_shapes:
        raise DseError(f"--layers {text}: the {G.family} generator has no per-layer ws", hint=hint)
    return parse_layers(text, G.latent_shapes["ws"][0])


def parse_strengths(text: str, steps: int | None = None) -> list[float]:
    """``"2"`` -> [2]; ``"-3:3"`` with ``steps`` (default 7) -> evenly spaced from -3 to 3; ``"-2,0,2"`` -> as listed."""
    try:
        if ":" in text:
            low, high = (float(v) for v in text.split(":"))
            n = 7 if steps is None else steps
            if n < 2:
                raise DseError(f"--steps {n}: a range needs at least 2 steps")
            values = torch.linspace(low, high, n).tolist()
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise DseError(f"--strength {text!r}: expected a number, a range like -3:3, or a list like -2,0,2") from None
    if not all(math.isfinite(v) for v in values):
        raise DseError(f"--strength {text!r}: strengths must be finite numbers")
    return values


def edit(latents: dict[str, torch.Tensor], direction: Direction, strengths: Sequence[float], *, component: int = 0,
         layers: Sequence[int] | None = None, renormalize: bool = False) -> list[dict[str, torch.Tensor]]:
    """For each strength alpha, ``latents`` with ``direction.latent += alpha * std * d`` (std 1 when unknown).

    ``latents``: G.decode's inputs by name, (N, ...) each. ``component`` picks one of the direction's
    components; ``layers`` (ws only) restricts the edit to those layers (default: the direction's own
    ``layers``, else all); ``renormalize`` keeps each edited sample's norm (z-space edits stay where z lives).
    """
    name = direction.latent
    if name not in latents:
        raise DseError(f"the direction edits {name}, and these latents hold {', '.join(latents)}")
    one = direction.component(component) if len(direction) > 1 or component else direction
    d = one.vectors[0].to(latents[name])
    scale = 1.0 if one.std is None else float(one.std[0])
    base = latents[name]
    if name == "ws":
        d = d.expand(base.shape[1:]) if d.ndim == 1 else d
        chosen = layers if layers is not None else one.layers
        if chosen is not None:
            mask = torch.zeros(base.shape[1], 1, dtype=base.dtype, device=base.device)
            mask[list(chosen)] = 1
            d = d * mask
    elif layers is not None:
        raise DseError(f"--layers applies to per-layer ws; this direction edits {name}")
    dims = tuple(range(1, base.ndim))
    radius = base[0].numel() ** 0.5
    if renormalize:  # onto the sphere where Gaussian z concentrates, and back there after the move (InterFaceGAN)
        base = base * (radius / base.norm(dim=dims, keepdim=True).clamp_min(1e-12))
    out = []
    for alpha in strengths:
        moved = base + float(alpha) * scale * d
        if renormalize:
            moved = moved * (radius / moved.norm(dim=dims, keepdim=True).clamp_min(1e-12))
        out.append({**latents, name: moved})
    return out


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation per sample (flattened), the norm interpolated linearly: the path for Gaussian z."""
    fa, fb = a.flatten(1), b.flatten(1)
    na, nb = fa.norm(dim=1, keepdim=True), fb.norm(dim=1, keepdim=True)
    ua, ub = fa / na.clamp_min(1e-12), fb / nb.clamp_min(1e-12)
    omega = torch.acos((ua * ub).sum(dim=1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so
    return (direction * ((1 - t) * na + t * nb)).view_as(a)


def interpolate(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], steps: int,
                z_space: Sequence[str] = ("z",)) -> list[dict[str, torch.Tensor]]:
    """``steps`` latents from ``a`` to ``b`` (both ends included): :func:`blend` at evenly spaced t."""
    if steps < 2:
        raise DseError(f"--steps {steps}: an interpolation needs at least 2 steps")
    return [blend(a, b, t, z_space) for t in torch.linspace(0, 1, steps).tolist()]


def blend(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], t: float,
          z_space: Sequence[str] = ("z",)) -> dict[str, torch.Tensor]:
    """The latents a fraction ``t`` of the way from ``a`` to ``b``: slerp for the latents named in ``z_space``
    (Gaussian inputs), linear for the others (ws, class vectors); fixed inputs (BigGAN's truncation) must agree."""
    if set(a) != set(b):
        raise DseError(f"the two latents hold different inputs: {sorted(a)} and {sorted(b)}")
    if "truncation" in a and not torch.equal(a["truncation"], b["truncation"]):
        raise DseError("the two latents were inverted at different truncations: a path between them would cross "
                       "statistics neither was made with", hint="interpolate latents of one encoder")
    return {name: slerp(a[name], b[name], t) if name in z_space else torch.lerp(a[name], b[name], t) for name in a}
