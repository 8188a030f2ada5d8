"""Directions computed for a generator: SeFa, GANSpace-style PCA, InterFaceGAN-style boundaries, BigGAN class moves.

Every function returns a :class:`Direction` whose ``std`` (when it has one) is the spread of the generator's own
sampled latent along each component, so strengths read in standard deviations as SeFa and GANSpace users expect.

Sign convention (SeFa, PCA): an eigenvector or principal axis is only defined up to its sign; each component is
flipped so that its largest-magnitude entry is positive, which makes the output the same on every run and machine.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch

from ..errors import DseError, DseWarning
from .direction import Direction

STD_SAMPLES = 10000  # latents sampled for SeFa's per-component std (w has heavy tails: 2000 can be 7% off)
STD_SEED = 0
BATCH = 1000  # latents mapped per call: bounds memory for large mapping networks


def _is_style(G) -> bool:
    from ..interfaces import StyleGenerator

    return isinstance(G, StyleGenerator)


def latent_dim(G) -> int:
    """The width of the latent that directions move: w's where G has per-layer ws, else z's (at most that many
    components)."""
    return G.w_dim if "ws" in G.latent_names else G.z_dim


def made_for(G, spec: str | None = None) -> dict:
    """The generator record a direction carries: family, spec (when known) and fingerprint."""
    from ..models.format import generator_fingerprint

    spec = spec or (getattr(G, "origin", None) or {}).get("spec")
    return {"family": G.family, **({"spec": str(spec)} if spec else {}), "fingerprint": generator_fingerprint(G)}


@torch.no_grad()
def sample_edit_latents(G, n: int, seed: int) -> tuple[str, torch.Tensor]:
    """(latent name, (n, dim)) of the latent computed directions live in: one w per sample (``G.mapping(z)[:, 0]``,
    untruncated) for a style-based generator, else z as the family draws it."""
    device = next(G.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    z = G.sample_z(n, generator=rng)
    if not _is_style(G):
        return "z", z
    c = G.sample_c(n, generator=rng)
    ws = [G.mapping(z[i : i + BATCH].to(device), None if c is None else c[i : i + BATCH].to(device))[:, 0].cpu()
          for i in range(0, n, BATCH)]
    return "ws", torch.cat(ws)


def _fix_signs(vectors: torch.Tensor) -> torch.Tensor:
    """Each row flipped so its largest-magnitude entry is positive (the module's sign convention)."""
    peak = vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True))
    return vectors * torch.where(peak < 0, -1.0, 1.0).to(vectors)


def _check_k(k: int | None, dim: int, method: str) -> int:
    if k is None:
        return dim
    if not 1 <= k <= dim:
        raise DseError(f"{method}: {k} components asked for, the latent has {dim} dimensions", hint=f"ask for 1..{dim}")
    return k


def _check_layers(G, layers: Sequence[int] | None) -> tuple[int, ...] | None:
    if layers is None:
        return None
    if not _is_style(G):
        raise DseError(f"layers {list(layers)}: the {G.family} generator has no per-layer ws", hint="drop --layers")
    bad = [i for i in layers if not 0 <= i < G.num_ws]
    if bad or not layers:
        raise DseError(f"layers {list(layers)}: the {G.family} generator has ws 0..{G.num_ws - 1}")
    return tuple(sorted(set(layers)))


def factorize(weight: torch.Tensor, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """SeFa's closed form: (eigenvalues (k,), eigenvectors (k, dim) as rows) of A^T A, largest first.

    ``weight`` A (M, dim) holds one row per style output; each row is scaled to unit norm first (as genforce/sefa),
    so every output counts once whatever its layer's gain or learned scale.
    """
    a = weight.detach().double().cpu()
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    values, vectors = torch.linalg.eigh(a.T @ a)  # symmetric: real, ascending
    order = values.argsort(descending=True)[: _check_k(k, a.shape[1], "sefa")]
    return values[order].float(), _fix_signs(vectors[:, order].T).float()


def sefa(G, layers: Sequence[int] | None = None, k: int | None = None, *, spec: str | None = None) -> Direction:
    """SeFa (Shen & Zhou 2021): the top-``k`` eigenvectors of the generator's normalized style weights.

    Style-based generators: the affine (modulation) weights of every layer reading the ws in ``layers`` (all when
    None); the direction is one w broadcast over those layers, and edits only them by default. PGGAN: the weight
    of the dense start on z. ``std`` is the spread of sampled w (or z) along each component.
    """
    layers = _check_layers(G, layers)
    try:
        weight = G.style_weights(layers)
    except NotImplementedError:
        raise DseError(f"sefa: the {G.family} generator exposes no style weights to factorize",
                       hint="use --method pca (sampled latents) or svm (labelled latents)") from None
    values, vectors = factorize(weight, k)
    name, samples = sample_edit_latents(G, STD_SAMPLES, STD_SEED)
    std = (samples @ vectors.T).std(dim=0)
    source = {"method": "sefa", "eigenvalues": [round(v, 6) for v in values.tolist()],
              "std_samples": STD_SAMPLES, "std_seed": STD_SEED}
    return Direction(vectors, name, std=std, layers=layers, names=tuple(f"sefa-{i}" for i in range(len(vectors))),
                     generator=made_for(G, spec), source=source)


def pca(G, k: int = 20, samples: int = 10000, seed: int = 0, *, layers: Sequence[int] | None = None,
        spec: str | None = None) -> Direction:
    """GANSpace-style PCA of ``samples`` sampled w (z for a family without a mapping network).

    Components are the principal axes (unit norm, orthogonal), largest variance first; ``std`` the square root
    of each axis's explained variance. ``layers`` (style-based generators) restricts where the edits apply by
    default, as GANSpace's layer ranges do; the axes are the same for all layers.
    """
    layers = _check_layers(G, layers)
    name, x = sample_edit_latents(G, samples, seed)
    k = _check_k(k, min(x.shape[1], samples - 1), "pca")
    if name == "z":
        warnings.warn(f"the {G.family} generator's z is isotropic noise: its principal axes are arbitrary "
                      "(SeFa finds the directions its first layer responds to)", DseWarning, stacklevel=2)
    centred = (x - x.mean(dim=0)).double()
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    std = (s[:k] / (len(x) - 1) ** 0.5).float()
    source = {"method": "pca", "samples": samples, "seed": seed,
              "explained_variance_ratio": [round(v, 6) for v in (s[:k].square() / s.square().sum()).tolist()]}
    return Direction(_fix_signs(vh[:k]).float(), name, std=std, layers=layers,
                     names=tuple(f"pca-{i}" for i in range(k)), generator=made_for(G, spec), source=source)


def _linear_classifier():
    try:
        from sklearn.svm import LinearSVC
    except ImportError:
        raise DseError("fitting a boundary needs scikit-learn", hint="pip install 'dse-gan[edit]'") from None
    # InterFaceGAN's C on rescaled features (inverted latents vary far less than sampled ones); balanced classes,
    # as an attribute is rarely half of a set
    return LinearSVC(C=1.0, dual="auto", max_iter=20000, class_weight="balanced")


def svm_boundary(latents: torch.Tensor, labels: torch.Tensor | Sequence[int], latent_name: str, *,
                 layers: Sequence[int] | None = None, generator: dict | None = None) -> Direction:
    """InterFaceGAN-style boundary: a linear SVM separating ``latents`` (N, ...) labelled 0/1; its unit normal,
    pointing towards label 1, is the direction.

    Per-layer ws (N, num_ws, w_dim), e.g. inverted w+, are fitted on their mean w over the layers (InterFaceGAN
    fits on one w per image), and the direction is that one w, broadcast over the layers (``layers`` limits it).
    Any other latent is fitted as it is. ``std`` is the spread of the latents' projections on the normal; the
    training accuracy and the boundary's offset along the normal are recorded in ``source``.
    """
    x = latents.detach().float().cpu()
    y = torch.as_tensor(labels).flatten().long().cpu()
    if len(x) != len(y):
        raise DseError(f"{len(x)} latents and {len(y)} labels: every latent needs one label")
    if not set(y.tolist()) <= {0, 1}:
        raise DseError(f"labels must be 0 or 1, got {sorted(set(y.tolist()))}")
    counts = torch.bincount(y, minlength=2).tolist()
    if min(counts) < 2:
        raise DseError(f"a boundary needs both labels, at least 2 latents each: {counts[0]} of 0, {counts[1]} of 1")
    features = x.mean(dim=1) if latent_name == "ws" and x.ndim == 3 else x.flatten(1)
    shape = features.shape[1:] if latent_name == "ws" else x.shape[1:]
    f = features.double()
    # one scale for every feature (the geometry stays): C means the same for sampled and for inverted latents
    mean, scale = f.mean(dim=0), f.std().clamp_min(1e-12)
    classifier = _linear_classifier().fit(((f - mean) / scale).numpy(), y.numpy())
    coef = torch.as_tensor(classifier.coef_[0], dtype=torch.float64) / scale
    norm = float(coef.norm())
    if norm == 0:
        raise DseError("the boundary is degenerate (zero normal): the labels do not depend on the latents linearly")
    normal = (coef / norm).float()
    predicted = torch.as_tensor(classifier.predict(((f - mean) / scale).numpy()))
    accuracy = float((predicted == y).double().mean())
    balanced = float(sum(((predicted == y) & (y == k)).sum() / max(1, int((y == k).sum())) for k in (0, 1)) / 2)
    if balanced < 0.6:
        warnings.warn(f"the boundary separates the labels poorly (balanced training accuracy {balanced:.2f}): its "
                      "direction may mean little; label more latents", DseWarning, stacklevel=2)
    offset = -float(classifier.intercept_[0]) / norm + float(mean @ (coef / norm))
    source = {"method": "svm", "classifier": "sklearn.svm.LinearSVC", "samples": len(y), "positives": counts[1],
              "train_accuracy": round(accuracy, 4), "balanced_accuracy": round(balanced, 4), "offset": round(offset, 6),
              **({"fitted_on": "mean w over the layers"} if latent_name == "ws" and x.ndim == 3 else {})}
    return Direction(normal.view(1, *shape), latent_name, std=(features @ normal).std().view(1), names=("svm",),
                     layers=None if layers is None else tuple(layers), generator=generator or {}, source=source)


def class_direction(G, a: int | str, b: int | str, *, spec: str | None = None) -> Direction:
    """BigGAN-style class move: ``onehot(b) - onehot(a)`` in c. Strength 0..1 (no std: strengths are raw)
    interpolates the class embedding from a to b; strength 1 on class a's latents decodes class b."""
    if not getattr(G, "c_dim", 0) or "c" not in G.latent_names:
        raise DseError(f"a class direction needs a conditional generator; the {G.family} generator takes no class",
                       hint="use --method sefa, pca or svm")
    ia, ib = G.class_index(a), G.class_index(b)
    if ia == ib:
        raise DseError(f"classes {a!r} and {b!r} are the same class ({ia}): nothing to move")
    vector = G.class_vector([ib]) - G.class_vector([ia])
    names = G.class_names

    def label(i: int) -> str:
        return names[i] if names else str(i)

    return Direction(vector, "c", names=(f"{label(ia)}->{label(ib)}",), generator=made_for(G, spec),
                     source={"method": "class", "from": ia, "to": ib})
