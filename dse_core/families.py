"""What a plugin registers: a GAN family with its checkpoint formats and model classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import attrs

# Families the project publishes plugins for: an unknown --gan names the package to install, and
# only that distribution may register the name (the plugin host refuses it from any other).
KNOWN_PACKAGES = {
    "stylegan": "dse-plugin-stylegan",
    "stylegan2": "dse-plugin-stylegan2",
    "pggan": "dse-plugin-pggan",
    "biggan": "dse-plugin-biggan",
}


@attrs.frozen
class CheckpointFormat:
    """A file format a family can read, e.g. rosinality's ``.pt`` checkpoints.

    ``load_generator`` tries every format whose ``sniff`` says yes (the project's families
    first, then the others by name; a family's formats in its order) until a ``load``
    succeeds; when none does, one CheckpointError lists each reader's failure. So ``sniff``
    should look at the content (tensor names, a magic header), not just the suffix, and
    ``load`` should raise CheckpointError saying what it found: anything else is reported
    as a bug in the plugin.
    """

    name: str  # short id, unique within the family: "rosinality", "genforce"
    description: str  # one line for `dse plugins`
    sniff: Callable[[Path], bool]  # cheap and never raising: do this file's keys / magic say it is this format?
    load: Callable[[Path], Any]  # path -> generator (an Encoder for encoder formats) in eval mode; CheckpointError when it cannot


@attrs.frozen
class GanFamily:
    """One GAN family as a plugin registers it.

    ``generator_class`` is an ``nn.Module`` that implements
    :class:`dse_core.interfaces.Generator` and mixes in
    :class:`dse_core.PretrainedMixin` (its ``family`` equals ``name``).
    """

    name: str  # the --gan name: "stylegan2"
    description: str
    generator_class: type
    formats: tuple[CheckpointFormat, ...] = attrs.field(converter=tuple)
    latent: str  # what inversion predicts, in words: "ws (num_ws x w_dim)", "z (z_dim)"
    # generator -> EncoderConfig of the DSE encoder that inverts it (its outputs named as the
    # generator's latent_names, shaped as decode() takes them); None: inversion unavailable
    encoder: Callable[[Any], Any] | None = None
    demo: Path | None = None  # folder of the embedded demo models, if the plugin ships one
    # encoder checkpoint formats (e.g. the DSE authors' encoders for this family): load returns an Encoder
    encoder_formats: tuple[CheckpointFormat, ...] = attrs.field(default=(), converter=tuple)
    # the truncation its encoders train at when neither the user nor the preset picks one (BigGAN: the authors' 0.4)
    train_truncation_psi: float | None = None
    # a small config of generator_class: the contract tests run every installed family on it (tests/test_families.py)
    tiny_config: Any = None
    package: str = ""  # the distribution that registered it; filled in by the plugin host

    def format(self, name: str) -> CheckpointFormat:
        from .errors import UnknownNameError

        for fmt in self.formats:
            if fmt.name == name:
                return fmt
        raise UnknownNameError(f"{self.name} checkpoint format", name, [f.name for f in self.formats])
