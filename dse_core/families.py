"""What a plugin registers: a GAN family with its checkpoint formats and model classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import attrs

# Families the project publishes plugins for: an unknown --gan names the package to install.
KNOWN_PACKAGES = {
    "stylegan": "dse-plugin-stylegan",
    "stylegan2": "dse-plugin-stylegan2",
    "pggan": "dse-plugin-pggan",
    "biggan": "dse-plugin-biggan",
}


@attrs.frozen
class CheckpointFormat:
    """A file format a family can read, e.g. rosinality's ``.pt`` checkpoints."""

    name: str  # short id, unique within the family: "rosinality", "genforce"
    description: str  # one line for `dse plugins`
    sniff: Callable[[Path], bool]  # cheap and never raising: does this path look like the format?
    load: Callable[[Path], Any]  # path -> generator in eval mode; raises CheckpointError when it cannot


@attrs.frozen
class GanFamily:
    """One GAN family as a plugin registers it.

    ``generator_class`` is an ``nn.Module`` that implements
    :class:`dse_core.interfaces.Generator` and mixes in
    :class:`dse_core.hub.PretrainedMixin` (its ``family`` equals ``name``).
    """

    name: str  # the --gan name: "stylegan2"
    description: str
    generator_class: type
    formats: tuple[CheckpointFormat, ...] = attrs.field(converter=tuple)
    latent: str  # what inversion predicts, e.g. "w+ (num_ws x w_dim)"
    encoder: Any = None  # the family's encoder variant (none: inversion unavailable)
    demo: Path | None = None  # folder of the embedded demo models, if the plugin ships one
    package: str = ""  # the distribution that registered it; filled in by the plugin host

    def format(self, name: str) -> CheckpointFormat:
        from .errors import UnknownNameError

        for fmt in self.formats:
            if fmt.name == name:
                return fmt
        raise UnknownNameError(f"{self.name} checkpoint format", name, [f.name for f in self.formats])
