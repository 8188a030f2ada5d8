"""dse: invert images into the latent space of pretrained GANs with a Diverse Similarity Encoder.

The public API, and everything a GAN plugin needs: the contracts (``Generator``,
``StyleGenerator``, ``PretrainedMixin``, ``GanFamily``, ``CheckpointFormat``, ``hookimpl``;
``EncoderConfig`` and ``block_resolutions`` for the encoder plan), the entry-point checks
(``check_latents``, ``check_ws``, ``check_noise_mode``, ``truncate``), the checkpoint helpers
(``torch_load``, ``load_state``, ``check_tensors``, ``state_dict_in``, ``describe``) and the
errors. Plugins import from here, ``dse_core.nn`` (layers) and ``dse_core.testing`` (contract
tests); the submodules behind these names stay importable but are not the plugin interface.
"""

from .checkpoints import describe, state_dict_in, torch_load
from .encoder import Encoder, EncoderConfig, EncoderOutput, block_resolutions
from .errors import CheckpointError, ConfigError, DamagedFileError, DseError, DseWarning, PluginError, UnknownNameError
from .families import CheckpointFormat, GanFamily
from .hookspecs import hookimpl
from .hub import ChecksumError, PretrainedMixin, check_tensors, generator_fingerprint, load_state, push_folder
from .interfaces import Generator, StyleGenerator, check_latents, check_noise_mode, check_ws, truncate
from .invert import Inversion, Inverter
from .loading import check_encoder_matches, load_encoder, load_generator, resolve_device
from .plugins import PluginHost, get_host, use_host
from .refine import Refinement, refine_encoder, refine_w
from .registry import CheckpointEntry, HubLocation

__version__ = "0.1.0"

__all__ = [
    "CheckpointEntry", "CheckpointError", "CheckpointFormat", "ChecksumError", "ConfigError", "DamagedFileError", "DseError", "DseWarning",
    "Encoder", "EncoderConfig", "EncoderOutput", "GanFamily", "Generator", "HubLocation", "Inversion", "Inverter",
    "PluginError", "PluginHost", "PretrainedMixin", "Refinement", "StyleGenerator", "UnknownNameError",
    "block_resolutions", "check_encoder_matches", "check_latents", "check_noise_mode", "check_tensors", "check_ws",
    "describe", "generator_fingerprint", "get_host", "hookimpl", "load_encoder", "load_generator", "load_state", "push_folder",
    "refine_encoder", "refine_w", "resolve_device", "state_dict_in", "torch_load", "truncate", "use_host",
]
