"""dse: invert images into the latent space of pretrained GANs with a Diverse Similarity Encoder.

The public API, and everything a GAN plugin needs: the contracts (``Generator``,
``StyleGenerator``, ``PretrainedMixin``, ``GanFamily``, ``CheckpointFormat``, ``hookimpl``;
``EncoderConfig`` and ``resolutions`` for the encoder plan), the entry-point checks
(``check_latents``, ``check_ws``, ``check_noise_mode``, ``truncate``), the conversion toolkit
(``torch_load``, ``ForeignState``, ``check_tensors``, ``load_state``, ``state_dict_in``,
``describe``, ...) and the errors. Plugins import from here, ``dse_core.nn`` (layers) and
``dse_core.testing`` (contract tests); the submodules behind these names are not the plugin interface.

Names are imported on first use (PEP 562), so ``import dse_core`` (and ``dse --help``) stays
light: torch loads with the first name that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "dse_core.errors": ["CheckpointError", "ConfigError", "DamagedFileError", "DseError", "DseWarning", "PluginError",
                        "UnknownNameError"],
    "dse_core.config": ["channel_plan", "from_dict", "power_of_two", "resolutions", "to_dict"],
    "dse_core.hookspecs": ["hookimpl"],
    "dse_core.families": ["CheckpointFormat", "GanFamily"],
    "dse_core.interfaces": ["Generator", "StyleGenerator", "check_latents", "check_noise_mode", "check_ws", "truncate"],
    "dse_core.plugins": ["PluginHost", "get_host", "use_host"],
    "dse_core.models.files": ["describe", "find_state_dict", "state_dict_in", "torch_load"],
    "dse_core.models.convert": ["ForeignState", "check_tensors", "layer_count", "preview", "separable_filter"],
    "dse_core.models.format": ["generator_fingerprint", "load_state"],
    "dse_core.models.pretrained": ["PretrainedMixin"],
    "dse_core.models.hub": ["ChecksumError", "push_folder"],
    "dse_core.models.registry": ["CheckpointEntry", "HubLocation"],
    "dse_core.models.safe_pickle": ["PICKLE_DATA_GLOBALS", "PersistentRecord", "persistent_record", "safe_load"],
    "dse_core.loading": ["check_encoder_matches", "load_encoder", "load_generator"],
    "dse_core.device": ["resolve_device"],
    "dse_core.encoder": ["Encoder", "EncoderConfig"],
    "dse_core.encoder.authors": ["load_authors_encoder", "load_authors_pg_encoder", "sniff_authors_encoder",
                                 "sniff_authors_pg_encoder"],
    "dse_core.encoder.authors_big": ["load_authors_big_encoder", "sniff_authors_big_encoder"],
    "dse_core.encoder.plans": ["encoder_widths", "style_encoder_plan"],
    "dse_core.editing": ["Direction", "edit", "interpolate", "load_direction"],
    "dse_core.invert": ["Inversion", "Inverter"],
    "dse_core.refine": ["Refinement", "refine_encoder", "refine_latents"],
    "dse_core.train.config": ["TrainConfig"],
    "dse_core.train.setup": ["train_encoder"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "PICKLE_DATA_GLOBALS", "CheckpointEntry", "CheckpointError", "CheckpointFormat", "ChecksumError", "ConfigError", "DamagedFileError",
    "Direction", "DseError", "DseWarning", "Encoder", "EncoderConfig", "ForeignState", "GanFamily", "Generator", "HubLocation",
    "Inversion", "Inverter", "PersistentRecord", "PluginError", "PluginHost", "PretrainedMixin", "Refinement",
    "StyleGenerator", "TrainConfig", "UnknownNameError", "channel_plan", "check_encoder_matches", "check_latents",
    "check_noise_mode", "check_tensors", "check_ws", "describe", "edit", "encoder_widths", "find_state_dict", "from_dict", "generator_fingerprint", "get_host",
    "hookimpl", "interpolate", "layer_count", "load_authors_big_encoder", "load_direction", "load_authors_encoder", "load_authors_pg_encoder", "load_encoder", "load_generator", "load_state", "persistent_record", "power_of_two",
    "preview", "push_folder", "refine_encoder", "refine_latents", "resolutions", "resolve_device", "safe_load",
    "separable_filter", "sniff_authors_big_encoder", "sniff_authors_encoder", "sniff_authors_pg_encoder", "state_dict_in", "style_encoder_plan", "to_dict", "torch_load", "train_encoder", "truncate",
    "use_host",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'dse_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .config import channel_plan, from_dict, power_of_two, resolutions, to_dict
    from .device import resolve_device
    from .encoder import Encoder, EncoderConfig
    from .encoder.authors import (load_authors_encoder, load_authors_pg_encoder, sniff_authors_encoder,
                                  sniff_authors_pg_encoder)
    from .encoder.authors_big import load_authors_big_encoder, sniff_authors_big_encoder
    from .editing import Direction, edit, interpolate, load_direction
    from .encoder.plans import encoder_widths, style_encoder_plan
    from .errors import (CheckpointError, ConfigError, DamagedFileError, DseError, DseWarning, PluginError,
                         UnknownNameError)
    from .families import CheckpointFormat, GanFamily
    from .hookspecs import hookimpl
    from .interfaces import Generator, StyleGenerator, check_latents, check_noise_mode, check_ws, truncate
    from .invert import Inversion, Inverter
    from .models.convert import ForeignState, check_tensors, layer_count, preview, separable_filter
    from .models.files import describe, find_state_dict, state_dict_in, torch_load
    from .models.format import generator_fingerprint, load_state
    from .models.hub import ChecksumError, push_folder
    from .loading import check_encoder_matches, load_encoder, load_generator
    from .models.pretrained import PretrainedMixin
    from .models.registry import CheckpointEntry, HubLocation
    from .models.safe_pickle import PICKLE_DATA_GLOBALS, PersistentRecord, persistent_record, safe_load
    from .plugins import PluginHost, get_host, use_host
    from .refine import Refinement, refine_encoder, refine_latents
    from .train.config import TrainConfig
    from .train.setup import train_encoder
