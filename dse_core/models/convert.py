r"""The conversion toolkit plugin authors build their checkpoint readers from.

A reader of another project's generator declares, under the file's own tensor names, which tensor becomes
which of ours and the shape it must have (:class:`ForeignState`): sizes (widths, z/w sizes, filter length)
are then read from the shapes by majority, so one damaged tensor is reported by its own name; a gap in a
layer sequence, a tensor nobody declared or a wrong shape is refused naming the tensor as the file names
it. :func:`layer_count` reads how many layers a sequence has, :func:`separable_filter` recovers a stored
2-D FIR kernel's 1-D factor. One key-and-shape checker (:func:`check_tensors`) serves every reader and
:func:`dse_core.load_state`. Nothing here is typed by hand per architecture.

A StyleGAN2 reader, in short (see the StyleGAN2 plugin's ``convert.py`` for the whole)::

    state = ForeignState(path, "g_ema", file_state)
    for i in range(layer_count(file_state, r"style\.(\d+)\.")):
        state.take(f"style.{i + 1}.weight", ("w", "z" if i == 0 else "w"), f"mapping.fc{i}.weight")
    sizes = state.sizes()        # {"z": 512, "w": 512, ...}: the majority of the tensors that carry each
    state.verify(sizes)          # missing / undeclared / mis-shaped tensors: one CheckpointError
    load_state(G, state.converted(), path)
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..errors import CheckpointError

Shape = tuple  # a tensor's shape in the file: ints are fixed sizes, strings name a size read from the file


def _same(t: torch.Tensor) -> torch.Tensor:
    return t


class ForeignState:
    """A foreign state dict: which of its tensors become which of ours, and the shapes they must have.

    ``take`` declares a tensor to convert (``convert`` reshapes, flips or rescales it), ``check`` a
    tensor read but not loaded (a stored resampling kernel, say: optional). ``sizes`` reads each named
    size by majority; ``verify`` refuses missing tensors, tensors nobody declared and wrong shapes, each
    by the file's name; ``converted`` is the state dict under our names. ``where`` names the part of the
    file (``"g_ema"``) in messages.
    """

    def __init__(self, path: str | Path, where: str, state: Mapping[str, Any]):
        self.path, self.where, self.state = Path(path), where, state
        self.rules: list[tuple[str, Shape, str | None, Callable]] = []  # theirs, shape, ours (None: not loaded), convert
        self.optional: set[str] = set()

    def take(self, theirs: str, shape: Shape, ours: str | None, convert: Callable = _same) -> None:
        self.rules.append((theirs, shape, ours, convert))

    def check(self, theirs: str, shape: Shape) -> None:
        self.take(theirs, shape, None)
        self.optional.add(theirs)

    def present(self, names: list[str]) -> list[str]:
        return [name for name in names if name in self.state]

    def error(self, problem: str, hint: str | None = None) -> CheckpointError:
        return CheckpointError(self.path, f"{self.where}: {problem}", hint=hint)

    def sizes(self) -> dict[str, int]:
        """Each named size, as most tensors that carry it have it."""
        votes: dict[str, Counter] = defaultdict(Counter)
        for theirs, shape, _, _ in self.rules:
            tensor = self.state.get(theirs)
            if isinstance(tensor, torch.Tensor) and tensor.ndim == len(shape):
                for want, got in zip(shape, tensor.shape):
                    if isinstance(want, str):
                        votes[want][got] += 1
        return {name: counts.most_common(1)[0][0] for name, counts in votes.items()}

    def verify(self, sizes: Mapping[str, int], what: str = "a generator") -> None:
        """Every declared tensor present (optional ones aside), nothing undeclared, every shape as ``sizes`` says."""
        expected = {theirs: tuple(sizes.get(d, d) for d in shape) for theirs, shape, _, _ in self.rules
                    if theirs in self.state or theirs not in self.optional}
        found = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for k, v in self.state.items()}
        check_tensors(self.path, f"{self.where}: cannot read it as {what}", found, expected)

    def converted(self) -> dict[str, torch.Tensor]:
        return {ours: convert(self.state[theirs]) for theirs, _, ours, convert in self.rules if ours is not None}


def layer_count(state: Mapping[str, Any], pattern: str) -> int:
    """One more than the highest index (``pattern``'s group 1) among the keys matching ``pattern``; 0 if none.

    The count of a layer sequence as the file's last layer says: declaring that many makes a gap in the
    sequence a missing tensor, never a silently smaller network.
    """
    regex = re.compile(pattern)
    if regex.groups < 1:
        raise ValueError(f"layer_count: {pattern!r} needs a group around the layer index, e.g. r'blocks\\.(\\d+)\\.'")
    return max((int(m.group(1)) for k in state if (m := regex.match(k))), default=-1) + 1


def separable_filter(kernel_2d: torch.Tensor) -> tuple[float, ...]:
    """The 1-D factor f of a stored separable 2-D FIR kernel (an outer product f x f), scaled so its ends read 1.

    Raises ValueError when the kernel is not separable.
    """
    kernel_2d = kernel_2d.reshape(kernel_2d.shape[-2:]).double()
    row = kernel_2d.sum(dim=1)
    row = row / (row[0] if row[0] != 0 else row.sum())
    if not torch.allclose(torch.outer(row, row) / torch.outer(row, row).sum(), kernel_2d / kernel_2d.sum(), atol=1e-5):
        raise ValueError("the stored kernel is not separable")
    return tuple(round(v, 6) for v in row.tolist())


def check_tensors(path: str | Path, what: str, found: Mapping[str, tuple], expected: Mapping[str, tuple],
                  hint: str | None = None) -> None:
    """Raise CheckpointError(``what``: missing / unexpected / mis-shaped tensors) unless ``found`` is ``expected``."""
    missing = [k for k in expected if k not in found]  # in the order the architecture declares them
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k}: file {found[k]} vs expected {v}" for k, v in expected.items() if k in found and found[k] != v]
    problems = []
    if missing:
        problems.append(f"missing {_count(missing, 'tensor')} ({preview(missing)})")
    if unexpected:
        problems.append(f"{_count(unexpected, 'unexpected tensor')} ({preview(unexpected)})")
    if shapes:
        problems.append(f"{_count(shapes, 'shape mismatch', 'es')} ({preview(shapes)})")
    if problems:
        raise CheckpointError(path, f"{what}: " + "; ".join(problems), hint=hint)


def _count(items: list, noun: str, plural: str = "s") -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else plural}"


def preview(items: list[str], n: int = 4) -> str:
    """The first ``n`` items and how many more, for error messages."""
    return ", ".join(items[:n]) + (f", ... {len(items) - n} more" if len(items) > n else "")
